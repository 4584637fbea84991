"""Feature windows of a range of hours in one pass, each hour written as its own partition.

A history backfill computes the features of many hours in one step. Computing them hour by hour
costs one DuckDB connection, one file scan, one summary and one contract check per hour, which
for a small fleet is most of the hour's cost. Here the hours' clean readings are scanned in one
statement (the feature SQL over all of them, each hour's devices kept apart, so every hour's
windows, streaks and runs are those of its own file, as hour by hour), held in one table, and
each hour is then written from it to its own file; the group's files are made durable together
and only then renamed over their partitions
(:meth:`refrig_assets.core.storage.ParquetStore.staged`), so a crash leaves every hour's
partition whole, old or new, as :func:`refrig_assets.engines.embedded.write_features` does for
one hour. The summary of every hour is one grouped query, and the contract check one scan of
the whole range: every contract check is a per-row predicate or a key that must be
unique, so a range without a violation has none in any of its hours; a range with one is
checked again hour by hour (:func:`refrig_assets.engines.embedded.file_violations`), so every
hour reports exactly its own.

Hours are taken in groups whose readings fit the memory budget of config/performance.yaml in
one shard. A group whose clean readings are out of (device_id, ts) order cannot be computed
this way (:data:`refrig_assets.features.windows.ORDER_ERROR`): its hours are computed one by
one, exactly as the hourly step computes them, and say so (:attr:`FeatureHour.mode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contract_sql import sql_violations
from refrig_assets.core.contracts import Contract
from refrig_assets.core.duck import sql_str
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.embedded import (
    FEATURE_ROW_GROUP_SIZE,
    feature_summary,
    file_violations,
    schema_violations,
    write_features,
)
from refrig_assets.engines.memory import SPILL_DIR, hold_to_budget, load_memory_budget
from refrig_assets.features.windows import (
    ORDER_ERROR,
    expected_readings_per_window,
    feature_sql,
    settle_carry_sql,
    window_minutes,
)

HOUR = "_range_hour"  # the hour (its place in the range) of a window in the range's table
SEP = "chr(31)"  # between an hour's place and a device id (SQL)


class RangeNotApplicable(Exception):
    """The range cannot be computed in one pass (the message says why): run it hour by hour."""


@dataclass(frozen=True)
class FeatureHour:
    """One hour of a range: its written partition, its summary and its contract violations."""

    key: str
    path: Path
    summary: dict[str, float | int]
    violations: pd.DataFrame
    mode: str | None = None  # None: computed in the range's pass; else how and why not


def hour_groups(rows: dict[str, int], per_group: int) -> list[list[str]]:
    """The hours (in order) in consecutive groups of at most ``per_group`` readings (an hour
    larger than that is a group of its own)."""
    groups: list[list[str]] = []
    total = 0
    for key, n in rows.items():
        if not groups or total + n > per_group:
            groups.append([])
            total = 0
        groups[-1].append(key)
        total += n
    return groups


def write_feature_range(
    sources: dict[str, Path],
    store: ParquetStore,
    contract: Contract,
    min_completeness: float,
    *,
    cadence_seconds: int | None = None,
    dataset: str = "device_features",
    previous: Path | None = None,
) -> Iterator[FeatureHour]:
    """Compute the feature windows of every hour of ``sources`` (hour key -> its clean_readings
    file, in hour order) and write each hour's partition; yields each hour once its group of
    hours is written. ``previous``: the clean readings of the hour before the first, if any
    (where the running state's settle applies, it carries from there)."""
    budget = load_memory_budget()
    rows = {k: pq.ParquetFile(p).metadata.num_rows for k, p in sources.items()}
    # as the hourly step sizes its shards: by readings, and by the windows they make (an
    # aggregate that comes near DuckDB's limit goes out of core and costs more than it saves)
    per_window = expected_readings_per_window(
        window_minutes(None, cadence_seconds), cadence_seconds
    )
    per_reading = max(budget.reading_bytes, (budget.window_bytes or 0) / per_window)
    per_group = max(1, int(budget.memory_budget_mb * 2**20 // per_reading))
    keys = list(sources)
    before = {k: (sources[keys[i - 1]] if i else previous) for i, k in enumerate(keys)}
    carries = settle_carry_sql("prev", cadence_seconds=cadence_seconds) is not None
    for group in hour_groups(rows, per_group):
        args = (store, contract, min_completeness, cadence_seconds, dataset)
        try:
            yield from _write_group({k: sources[k] for k in group}, before[group[0]], *args)
        except RangeNotApplicable as reason:  # raised before the group writes anything
            for key in group:
                mode = f"hour by hour: {reason}"
                if carries:  # the hour alone, in the partitioned form, with its carry
                    [one] = _write_group({key: sources[key]}, before[key], *args, ordered=False)
                    yield replace(one, mode=mode)
                    continue
                path = write_features(
                    sources[key], store, key, cadence_seconds=cadence_seconds, dataset=dataset
                )
                yield FeatureHour(
                    key,
                    path,
                    feature_summary(path, min_completeness),
                    file_violations(path, contract),
                    mode,
                )


def _write_group(
    sources: dict[str, Path],
    previous: Path | None,
    store: ParquetStore,
    contract: Contract,
    min_completeness: float,
    cadence_seconds: int | None,
    dataset: str,
    ordered: bool = True,
) -> Iterator[FeatureHour]:
    con = duckdb.connect()  # as write_features: the windows' timestamps written the same way
    try:
        hold_to_budget(con, load_memory_budget(), spill_dir=store.root / SPILL_DIR)
        keys = list(sources)
        # (a column's nullability may differ: DuckDB reads it the same)
        schemas = [[(f.name, f.type) for f in pq.read_schema(p)] for p in sources.values()]
        if any(s != schemas[0] for s in schemas[1:]):
            raise RangeNotApplicable("the hours' clean readings differ in columns or types")
        # Every hour's readings in one relation, the devices of hour i renamed "<i>\x1f<id>":
        # the feature SQL's per-device passes (windows, streaks, runs) then start again at
        # every hour, as over one hour's file, and the rows stay in (device_id, ts) order. One
        # statement: a UNION of the feature SQL per hour costs DuckDB ~40 ms an hour to plan.
        width = len(str(len(keys)))
        scans = [
            f"SELECT * REPLACE ({sql_str(str(i).zfill(width))} || {SEP} || device_id AS device_id) "
            f"FROM read_parquet({sql_str(str(source))})"
            for i, source in enumerate(sources.values())
        ]
        con.execute(f"CREATE VIEW range_clean AS {' UNION ALL '.join(scans)}")
        carry = _carry(con, [previous, *list(sources.values())[:-1]], width, cadence_seconds)
        sql = feature_sql(
            "range_clean", cadence_seconds=cadence_seconds, ordered=ordered, carry=carry
        )
        cut = f"strpos(device_id, {SEP})"
        try:
            con.execute(
                f"CREATE TABLE windows AS SELECT CAST(substr(device_id, 1, {cut} - 1) AS INTEGER) "
                f"AS {HOUR}, * REPLACE (substr(device_id, {cut} + 1) AS device_id) FROM ({sql})"
            )
        except duckdb.Error as exc:
            if ORDER_ERROR in str(exc):
                raise RangeNotApplicable(ORDER_ERROR) from exc
            raise
        con.execute(f"CREATE VIEW range_windows AS SELECT * EXCLUDE ({HOUR}) FROM windows")
        summaries = _summaries(con, min_completeness)
        clean_range = sql_violations(con, "range_windows", contract).empty
        hours = []
        # The group's files are written, checked and then made durable and renamed together.
        with store.staged() as batch:
            for i, key in enumerate(keys):
                written = batch.from_duckdb(
                    dataset,
                    key,
                    con,
                    f"SELECT * EXCLUDE ({HOUR}) FROM windows WHERE {HOUR} = {i}",
                    row_group_size=FEATURE_ROW_GROUP_SIZE,
                )
                if clean_range:
                    typed = schema_violations(written, contract)
                    found = pd.DataFrame(typed, columns=["column", "check", "failures", "example"])
                else:  # the range has a violation: which hours, exactly as hour by hour
                    found = file_violations(written, contract)
                path = store.path(dataset, key)
                hours.append(FeatureHour(key, path, summaries.get(i, _EMPTY), found))
        yield from hours
    finally:
        con.close()


def _carry(
    con: duckdb.DuckDBPyConnection,
    before: list[Path | None],
    width: int,
    cadence_seconds: int | None,
) -> str | None:
    """The table ``range_carry`` of each hour's carry (hour i's from ``before[i]``, its devices
    named as in the range) and its name; None when nothing is carried."""
    parts = []
    for i, path in enumerate(before):
        if path is None or not path.exists():
            continue
        named = (
            f"(SELECT * REPLACE ({sql_str(str(i).zfill(width))} || {SEP} || device_id AS "
            f"device_id) FROM read_parquet({sql_str(str(path))}))"
        )
        part = settle_carry_sql(named, cadence_seconds=cadence_seconds)
        if part is None:
            return None
        parts.append(part)
    if not parts:
        return None
    con.execute(f"CREATE TABLE range_carry AS {' UNION ALL '.join(parts)}")
    return "range_carry"


_EMPTY: dict[str, float | int] = {
    "windows": 0,
    "devices": 0,
    "mean_completeness": 0.0,
    "windows_below_scoring_floor": 0,
    "windows_with_flags": 0,
}


def _summaries(con: duckdb.DuckDBPyConnection, floor: float) -> dict[int, dict[str, float | int]]:
    """Per hour, what :func:`refrig_assets.engines.embedded.feature_summary` reports."""
    found = con.execute(
        f"SELECT {HOUR}, count(*), count(DISTINCT device_id), coalesce(avg(sensor_completeness), 0), "
        "count(*) FILTER (sensor_completeness < ?), count(*) FILTER (quality_mask <> 0) "
        f"FROM windows GROUP BY {HOUR}",
        [floor],
    ).fetchall()
    return {
        int(key): {
            "windows": int(n),
            "devices": int(devices),
            "mean_completeness": float(mean),
            "windows_below_scoring_floor": int(below),
            "windows_with_flags": int(flagged),
        }
        for key, n, devices, mean, below, flagged in found
    }
