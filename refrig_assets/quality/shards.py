"""The quality step in device shards, so its memory does not grow with the fleet.

Every quality rule but the file-level ones looks at one device at a time (duplicates, repeated
values and stuck runs per device in time order, unit checks per device-hour), so the hour can be
cleaned a group of devices at a time with the same result. The number of shards comes from the
memory budget in ``config/performance.yaml``: the hour's readings times the working memory of one
reading, divided by the budget.

Shards are contiguous ranges of device ids, cut where the running count of readings crosses a
multiple of ``rows / shards``. Written one after the other, they keep the clean readings in
(device_id, ts) order, so the partition is the same file whatever the shard count, its key check
stays one ordered pass, and the feature step reads sorted data. Boundaries depend only on the
hour's device ids and reading counts: rerunning an hour cuts it the same way.

Each shard reads its device range straight from the hour's file. Typed readings are written in
device order, so the Parquet row-group statistics of ``device_id`` let the range's read skip the
other shards' row groups, and the rows come in the file's own order: a shard in (device_id, ts)
order needs no sort (see :func:`refrig_assets.quality.rules.clean_hour`). A temporary split of the
hour into one file per shard would cost a full write of the hour and, written by parallel
threads, come back out of order, so that every shard would be sorted again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrig_assets.core.contracts import Contract, quality_flag_names
from refrig_assets.core.device_ranges import device_cuts, in_range_sql, threads
from refrig_assets.core.duck import connect, sql_str, utc_cursor
from refrig_assets.core.fleet_sensors import fleet_sensor_columns
from refrig_assets.core.storage import DUCKDB_ROW_GROUP_SIZE, ParquetStore
from refrig_assets.engines.device_shards import stream_query
from refrig_assets.engines.memory import (
    SPILL_DIR,
    MemoryBudget,
    hold_to_budget,
    load_memory_budget,
)
from refrig_assets.quality.rules import (
    QualityResult,
    case_variants,
    clean_hour,
    file_findings,
    quarantine_frame,
)


def shard_bounds(con: duckdb.DuckDBPyConnection, source: str, shards: int) -> list[str]:
    """The first device id of shards 1..n-1: cut where the running count of readings (in
    device_id order) crosses a multiple of rows / shards. Fewer bounds when the hour has fewer
    devices than shards."""
    if shards <= 1:
        return []
    rows = con.execute(
        f"""
        WITH per_device AS (
          SELECT device_id, count(*) AS n FROM {source}
          WHERE device_id IS NOT NULL AND source_row >= 0 GROUP BY device_id),
        running AS (
          SELECT device_id, sum(n) OVER (ORDER BY device_id ROWS UNBOUNDED PRECEDING) - n AS before,
                 sum(n) OVER () AS total
          FROM per_device)
        SELECT min(device_id) FROM running
        GROUP BY CAST(floor(before * {int(shards)} / total) AS BIGINT)
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows if r[0] is not None][1:] if rows else []


def hour_shard_bounds(
    con: duckdb.DuckDBPyConnection, source: Path, relation: str, shards: int
) -> list[str]:
    """The shard bounds of the hour's file ``source`` (viewed as ``relation``): cut at its row
    groups from the footer statistics of ``device_id`` when the file is in device order and
    has enough row groups for ``shards`` (no pass over the hour), else :func:`shard_bounds`.

    Any bounds give the same result; these only move each cut to the start of a row group,
    so a shard holds at most one row group more than rows / shards."""
    if shards <= 1:
        return []
    cuts = device_cuts(source, shards, nulls=True)
    return cuts if len(cuts) == shards - 1 else shard_bounds(con, relation, shards)


def clean_hour_in_shards(
    con: duckdb.DuckDBPyConnection,
    store: ParquetStore,
    partition_key: str,
    source: Path,
    contract: Contract,
    registered_devices: pa.Table,
    *,
    previous_tails: Path | None = None,
    shards: int | None = None,
    clean_dataset: str = "clean_readings",
    tails_dataset: str = "stuck_sensor_tails",
    ranges: int | None = None,
    meanwhile: Callable[[Path, QualityResult], object] | None = None,
    budget_held: bool = False,
) -> tuple[Path, QualityResult]:
    """Clean the typed readings in ``source`` (one hour's Parquet file), writing the clean rows
    and the stuck-run tails as partitions of ``store``; returns the clean path and the result.

    ``shards`` defaults to what the memory budget needs for the hour's readings. The clean rows,
    tails, quarantine and counts are the same for any shard count. Each shard's previous-row
    pass runs in ``ranges`` device ranges side by side (default: one per DuckDB thread; cut at
    the file's row groups, so a file of one row group is taken whole), with the same result.

    ``meanwhile(file, result)`` runs on the written clean file before it becomes the partition,
    while its fsync runs (the contract check; the shards' connections are closed by then). The
    stuck-run tails partition is in place before the clean one, with or without shards.

    ``budget_held``: ``con`` is already held to the memory budget, spilling under the store
    (a range's connection, held once for all its hours).
    """
    settings = load_memory_budget()
    if not budget_held:
        hold_to_budget(con, settings, store.root / SPILL_DIR)
    whole = f"read_parquet({sql_str(str(source))})"
    # the rows with their place in the file: an hour in order is cleaned without storing it
    placed = f"read_parquet({sql_str(str(source))}, file_row_number = true)"
    tails = f"read_parquet({sql_str(str(previous_tails))})" if previous_tails else None
    if shards is None:
        shards = settings.shards_for(pq.ParquetFile(source).metadata.num_rows)
    bounds = hour_shard_bounds(con, source, whole, shards)
    # the previous-row pass of each shard in device ranges side by side, one per DuckDB thread
    # (rows without a device id are in no range: they are quarantined, not passed over)
    cuts = device_cuts(source, (ranges or threads(con)) * (len(bounds) + 1), nulls=True)
    findings = file_findings(con, whole, contract, source)  # once, not once per shard
    path = store.path(clean_dataset, partition_key)
    if not bounds:
        with ExitStack() as clean_written:
            # A cursor of the caller's connection (a new database costs a small hour ~17 ms of
            # CPU): what the hour creates in it goes when it closes, as a shard's connection's.
            with closing(utc_cursor(con)) as hour_con:
                clean_sql, result = clean_hour(
                    hour_con,
                    placed,
                    contract,
                    registered_devices,
                    previous_tails=tails,
                    findings=findings,
                    cuts=cuts,
                    positions=True,
                )
                written = clean_written.enter_context(
                    store.written_from_duckdb(clean_dataset, partition_key, hour_con, clean_sql)
                )
                store.write_from_duckdb(tails_dataset, partition_key, hour_con, result.tails_sql)
            # read after the hour's tables are gone, while the clean file's fsync runs
            if meanwhile is not None:
                meanwhile(written, result)
        return path, result
    results: list[QualityResult] = []
    with (
        store.writer(clean_dataset, partition_key, dictionary=False) as clean_out,
        store.writer(tails_dataset, partition_key, dictionary=False) as tails_out,
    ):
        for k in range(len(bounds) + 1):
            part = f"(SELECT * FROM {placed} WHERE {in_range_sql(bounds, k)})"
            shard_tails = (
                f"(SELECT * FROM {tails} WHERE {in_range_sql(bounds, k)})" if tails else None
            )
            # A connection per shard: its temporary tables and buffers go with it.
            with _shard_connection(settings, store) as shard_con:
                clean_sql, result = clean_hour(
                    shard_con,
                    part,
                    contract,
                    registry_in_shard(registered_devices, bounds, k),
                    previous_tails=shard_tails,
                    file_entries_here=k == 0,
                    findings=findings,
                    cuts=_cuts_within(cuts, bounds, k),
                    positions=True,
                )
                stream_query(shard_con, clean_sql, clean_out, DUCKDB_ROW_GROUP_SIZE)
                stream_query(shard_con, result.tails_sql, tails_out, DUCKDB_ROW_GROUP_SIZE)
            results.append(result)
        merged = merge_results(results, len(fleet_sensor_columns(contract)))
        if merged.flag_counts.get("UNREGISTERED_DEVICE"):
            # a shard looks its devices up among its own: a variant may sort into another
            merged.case_variants = hour_case_variants(con, whole, registered_devices)
        tails_out.commit()
        with clean_out.committing() as written:
            if meanwhile is not None:
                meanwhile(written, merged)
    return path, merged


@contextmanager
def _shard_connection(
    settings: MemoryBudget, store: ParquetStore
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection of its own held to the memory budget (spilling under the store),
    closed with its temporary tables and buffers when the shard is written."""
    con = connect()
    try:
        hold_to_budget(con, settings, store.root / SPILL_DIR)
        yield con
    finally:
        con.close()


def hour_case_variants(
    con: duckdb.DuckDBPyConnection, hour: str, registered_devices: pa.Table
) -> dict[str, str]:
    """:func:`~refrig_assets.quality.rules.case_variants` of the devices of relation ``hour``
    (the hour's typed readings) against the whole registry."""
    with closing(utc_cursor(con)) as cursor:
        cursor.register("hour_registry", registered_devices)
        unregistered = (
            f"(SELECT device_id FROM {hour} WHERE source_row >= 0 AND device_id IS NOT NULL "
            "AND device_id NOT IN (SELECT device_id FROM hour_registry))"
        )
        return case_variants(cursor, unregistered, "hour_registry")


def registry_in_shard(registry: pa.Table, bounds: list[str], k: int) -> pa.Table:
    """The registered devices of shard ``k`` of those ``bounds`` make, so a shard looks its
    devices up among its own (at 1M devices a shard's lookup against the whole registry costs
    ~0.1 CPU-s, once per shard). A NULL id stays in every shard: against it no device is
    found unregistered (SQL's ``NOT IN``), as against the whole registry."""
    ids = registry.column("device_id")
    terms = []
    if k > 0:
        terms.append(pc.greater_equal(ids, bounds[k - 1]))
    if k < len(bounds):
        terms.append(pc.less(ids, bounds[k]))
    if not terms:
        return registry
    inside = pc.fill_null(terms[0] if len(terms) == 1 else pc.and_(*terms), False)
    return registry.filter(pc.or_(pc.is_null(ids), inside))


def _cuts_within(cuts: list[str], bounds: list[str], k: int) -> list[str]:
    """The device cuts that fall inside shard ``k`` of those ``bounds`` make."""
    low = bounds[k - 1] if k > 0 else None
    high = bounds[k] if k < len(bounds) else None
    return [c for c in cuts if (low is None or c > low) and (high is None or c < high)]


def merge_results(results: list[QualityResult], sensors: int) -> QualityResult:
    """One hour's result from its shards' (counts add up; file-level findings are the hour's,
    the same in every shard)."""
    first = results[0]
    rows_clean = sum(r.rows_clean for r in results)
    present = sum(r.sensor_values_present for r in results)
    flag_counts = {f: sum(r.flag_counts.get(f, 0) for r in results) for f in quality_flag_names()}
    sensor_counts: dict[tuple[str, str], int] = {}
    for r in results:
        for k, v in r.sensor_flag_counts.items():
            sensor_counts[k] = sensor_counts.get(k, 0) + v
    quarantine = quarantine_frame(
        pd.concat([r.quarantine for r in results], ignore_index=True).sort_values(
            ["source_file", "row", "rule"], kind="stable", ignore_index=True
        )
    )
    return QualityResult(
        rows_read=sum(r.rows_read for r in results),
        rows_clean=rows_clean,
        rows_quarantined=sum(r.rows_quarantined for r in results),
        quarantine=quarantine,
        files=first.files,
        rejected_files=first.rejected_files,
        notices=first.notices,
        flag_counts=flag_counts,
        sensor_flag_counts=sensor_counts,
        completeness=present / (rows_clean * sensors) if rows_clean and sensors else 0.0,
        sensor_values_present=present,
        nan_storm_files=first.nan_storm_files,
        tails_sql="",
    )
