"""The embedded engine: feature windows computed by DuckDB, in this process, Parquet to Parquet.

The clean readings are never loaded into pandas: DuckDB scans only the columns the feature SQL
uses, aggregates in parallel and streams the windows to Parquet. Checks and summaries of the
written file run in SQL over the file as well, so the cost stays a scan, not a DataFrame.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contract_sql import sql_violations
from refrig_assets.core.contracts import Contract
from refrig_assets.core.device_ranges import device_cuts, in_range_sql, threads
from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import stream_query
from refrig_assets.engines.memory import SPILL_DIR, MemoryBudget, hold_to_budget, load_memory_budget
from refrig_assets.features.windows import (
    ORDER_ERROR,
    expected_readings_per_window,
    feature_sql,
    settle_carry_sql,
    window_minutes,
)

_ARROW_TYPE_CHECKS = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "timestamp": lambda t: pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00", "Etc/UTC"),
    "float": pa.types.is_floating,
    "int": pa.types.is_integer,
    "bool": pa.types.is_boolean,
}


# A window holds ~75 values: in the readings' row groups (500K rows) a 100K-device hour of
# windows is one row group, which a reader (the contract check, the score steps) decodes on one
# thread. DuckDB's default row group size gives it one per thread.
FEATURE_ROW_GROUP_SIZE = 122_880


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_features(
    source: Path,
    store: ParquetStore,
    partition_key: str,
    *,
    cadence_seconds: int | None = None,
    dataset: str = "device_features",
    ranges: int | None = None,
    shards: int | None = None,
    previous: Path | None = None,
) -> Path:
    """Compute the feature windows of one clean_readings file and write them atomically.

    clean_readings files are in (device_id, ts) order, so the run and streak features follow
    the rows as read (no sort by device). DuckDB streams that pass on one thread, so the file
    is cut into device-id ranges (:mod:`refrig_assets.core.device_ranges`), one per DuckDB
    thread (or ``ranges``), computed side by side and written one after the other: every
    device lies in one range, so the windows are those of the whole file, in the same order.
    A file out of (device_id, ts) order is computed with the device-partitioned window
    instead, with the same results.

    ``shards`` (default: what the memory budget of config/performance.yaml needs for the
    file's readings and the windows they make at the fleet's cadence) groups the ranges into
    memory shards computed one after the other, each on its own connection, so memory stays
    flat however large the fleet.

    ``previous``: the clean readings of the hour before, if any: where the running state's
    settle applies, it carries from there (:func:`refrig_assets.features.windows.settle_carry_sql`)."""
    budget = load_memory_budget()
    if shards is None:
        readings = pq.ParquetFile(source).metadata.num_rows
        per_window = expected_readings_per_window(
            window_minutes(cadence_seconds=cadence_seconds), cadence_seconds
        )
        shards = budget.feature_shards_for(readings, readings / per_window)
    con = duckdb.connect()
    try:
        hold_to_budget(con, budget, spill_dir=store.root / SPILL_DIR)
        con.execute(f"CREATE VIEW clean AS SELECT * FROM read_parquet({_quote(source)})")
        carry = _carry(con, previous, cadence_seconds)
        per_shard = threads(con) if ranges is None else ranges
        cuts = device_cuts(source, per_shard * max(1, shards))
        bounds = cuts[per_shard - 1 :: per_shard] if shards > 1 else []
        if bounds:
            written = _write_in_shards(
                source,
                store,
                partition_key,
                dataset,
                cuts,
                bounds,
                cadence_seconds,
                budget,
                previous,
            )
            if written is not None:
                return written
        try:
            if cuts:
                sql = _features_in_ranges(con, cuts, cadence_seconds, carry)
            else:
                sql = feature_sql(
                    "clean", cadence_seconds=cadence_seconds, ordered=True, carry=carry
                )
            return store.write_from_duckdb(
                dataset, partition_key, con, sql, row_group_size=FEATURE_ROW_GROUP_SIZE
            )
        except duckdb.Error as exc:
            if ORDER_ERROR not in str(exc):
                raise
        sql = feature_sql("clean", cadence_seconds=cadence_seconds, carry=carry)
        return store.write_from_duckdb(
            dataset, partition_key, con, sql, row_group_size=FEATURE_ROW_GROUP_SIZE
        )
    finally:
        con.close()


def _write_in_shards(
    source: Path,
    store: ParquetStore,
    partition_key: str,
    dataset: str,
    cuts: list[str],
    bounds: list[str],
    cadence_seconds: int | None,
    budget: MemoryBudget,
    previous: Path | None = None,
) -> Path | None:
    """The feature windows of each memory shard (device ids between ``bounds``, its ranges
    between the ``cuts`` inside it side by side), streamed to the partition one shard after
    the other; None (nothing written) when a shard's readings are out of (device_id, ts)
    order, for the caller's device-partitioned window."""
    with store.writer(dataset, partition_key, dictionary=False) as out:
        for k in range(len(bounds) + 1):
            inside = [
                c
                for c in cuts
                if (k == 0 or c > bounds[k - 1]) and (k == len(bounds) or c < bounds[k])
            ]
            con = connect()  # its buffers go with it before the next shard (UTC: the
            # timestamps' zone as DuckDB writes it to Parquet)
            try:
                hold_to_budget(con, budget, spill_dir=store.root / SPILL_DIR)
                con.execute(
                    f"CREATE VIEW clean AS SELECT * FROM read_parquet({_quote(source)}) "
                    f"WHERE {in_range_sql(bounds, k)}"
                )
                carry = _carry(con, previous, cadence_seconds)
                sql = (
                    _features_in_ranges(con, inside, cadence_seconds, carry)
                    if inside
                    else feature_sql(
                        "clean", cadence_seconds=cadence_seconds, ordered=True, carry=carry
                    )
                )
                # device_cuts found no NULL device id (else no shards): DuckDB marks the
                # whole file's device_id not null, and so do the shards
                stream_query(con, sql, out, FEATURE_ROW_GROUP_SIZE, required=["device_id"])
            except duckdb.Error as exc:
                if ORDER_ERROR not in str(exc):
                    raise
                out.discard()
                return None
            finally:
                con.close()
    return store.path(dataset, partition_key)


def _carry(
    con: duckdb.DuckDBPyConnection, previous: Path | None, cadence_seconds: int | None
) -> str | None:
    """The table ``settle_carry`` of the running state's settle from ``previous`` (the hour
    before's clean readings) and its name; None when there is none or no settle applies."""
    if previous is None or not previous.exists():
        return None
    sql = settle_carry_sql(f"read_parquet({_quote(previous)})", cadence_seconds=cadence_seconds)
    if sql is None:
        return None
    con.execute(f"CREATE TABLE settle_carry AS {sql}")
    return "settle_carry"


def _features_in_ranges(
    con: duckdb.DuckDBPyConnection,
    cuts: list[str],
    cadence_seconds: int | None,
    carry: str | None = None,
) -> str:
    """SQL of the feature windows of each device-id range between ``cuts``, one after the
    other (UNION ALL): DuckDB computes the ranges side by side and, writing the result in
    order, emits them in range order (each range's windows sorted, as the whole file's).
    The file has no NULL device id (:func:`device_cuts` checks its statistics), so the parts
    hold every row, and DuckDB knows device_id is never NULL, as it does for the whole file."""
    parts = []
    for i in range(len(cuts) + 1):
        inside = in_range_sql(cuts, i, null_in_first=False)
        con.execute(f"CREATE VIEW clean_{i} AS SELECT * FROM clean WHERE {inside}")
        sql = feature_sql(f"clean_{i}", cadence_seconds=cadence_seconds, ordered=True, carry=carry)
        parts.append(f"SELECT * FROM ({sql})")
    return " UNION ALL ".join(parts)


def schema_violations(path: Path, contract: Contract) -> list[tuple[str, str, int, object]]:
    """Columns of a Parquet file whose stored type is not the contract's (or that are extra)."""
    schema = pq.read_schema(path)
    rows: list[tuple[str, str, int, object]] = []
    for c in contract.columns:
        if c.name in schema.names:
            stored = schema.field(c.name).type
            if not _ARROW_TYPE_CHECKS[c.type](stored):
                rows.append((c.name, f"dtype({c.type})", 1, str(stored)))
    for name in schema.names:
        if name not in contract.column_names:
            rows.append((name, "column_in_contract", 1, None))
    return rows


def file_violations(path: Path, contract: Contract) -> pd.DataFrame:
    """Failing contract checks of a Parquet file: types, presence, nulls, ranges, allowed values
    and primary key — evaluated in SQL over the file (column, check, failures, example)."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW data AS SELECT * FROM read_parquet({_quote(path)})")
        found = sql_violations(con, "data", contract)
    finally:
        con.close()
    typed = pd.DataFrame(schema_violations(path, contract), columns=found.columns)
    return pd.concat([typed, found], ignore_index=True) if len(typed) else found


def feature_summary(path: Path, min_completeness: float) -> dict[str, float | int]:
    """Counts an operator checks on a feature partition (windows, devices, completeness)."""
    con = duckdb.connect()
    try:
        row = con.execute(
            "SELECT count(*), count(DISTINCT device_id), coalesce(avg(sensor_completeness), 0), "
            "count(*) FILTER (sensor_completeness < ?), "  # 0, not NULL, for an empty hour
            "count(*) FILTER (quality_mask <> 0) "
            f"FROM read_parquet({_quote(path)})",
            [min_completeness],
        ).fetchall()[0]
    finally:
        con.close()
    return {
        "windows": int(row[0]),
        "devices": int(row[1]),
        "mean_completeness": float(row[2]),
        "windows_below_scoring_floor": int(row[3]),
        "windows_with_flags": int(row[4]),
    }
