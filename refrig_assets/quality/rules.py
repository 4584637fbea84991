"""Quality rules: turn the typed readings of one hour into clean readings plus a quarantine.

Nothing is dropped silently. A row is either clean (possibly carrying quality flags) or in the
quarantine with its file, row, column, rule, value and a message. Every rule and threshold comes
from the contracts (``quality_rules`` in clean_readings.yaml; ranges, operating ranges, plausible
wrong units and landing rules in sensor_readings.yaml). All of it is SQL on DuckDB: one window
pass over the hour finds duplicates and repeated values, small follow-up queries find stuck runs
and unit mistakes, and the clean rows stream to Parquet. No Python touches single rows.

Flags (bit order = ``allowed_flags`` of clean_readings.quality_flags):

- ``SENSOR_DROPOUT``: a sensor value is missing (null or NaN).
- ``OUT_OF_RANGE``: a sensor value is outside its physical range (kept as delivered).
- ``STUCK_SENSOR``: a sensor repeats exactly the same value for ``stuck_sensor_minutes`` or more
  (steady values are exempt: those listed as ``steady_values`` of a column, and an idle value
  at or below its ``running_above``, see :mod:`refrig_assets.quality.steady`). A run that
  opens the hour continues the previous hour's last run of the same value (kept per device and
  sensor as the hour's "tails"), so runs across hours are measured whole; the earlier hour's
  part is flagged only once the run is long enough within that hour.
- ``DUPLICATE``: the reading was delivered more than once; this copy, the first to land, is
  kept and the others are quarantined as ``duplicate_reading``. Copies are taken in the order
  their files landed (``received_at``, the file's mtime), then by file name and row, so a later
  resend never replaces a reading already kept, whatever its file is called. Copies that each
  hold part of the reading's values, none conflicting, are one reading (``merged_reading``,
  see :mod:`refrig_assets.quality.folding`).
- ``LATE``: its file was not there when the hour was first materialized.
- ``FUTURE_TIMESTAMP``: stamped later than its file's arrival (mtime) plus a tolerance.
- ``UNIT_SUSPECT``: over the device-hour, a sensor's mean lies outside its ``operating_range``
  but inside that range converted to one of the column's ``misunits`` (°F in a °C column, psi
  or bar in a kPa column).
- ``UNREGISTERED_DEVICE``: the device is not in the device registry.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contracts import Contract, load_contract, quality_flag_names
from refrig_assets.core.device_ranges import in_range_sql
from refrig_assets.core.duck import sql_str
from refrig_assets.core.fleet_sensors import fleet_sensor_columns, kit_table, lacks_column
from refrig_assets.core.partition_range import ENV_START
from refrig_assets.ingestion.landing.readers import (
    CONTRACT_FILE,
    FileRejection,
    landing_rules,
    lowered_earliest,
    plausible_timestamps,
    text_limits,
)
from refrig_assets.quality.folding import (
    FOLDED_HOUR,
    create_folded_hour,
    fold_copies,
    merged_quarantine_sql,
    source_columns,
)
from refrig_assets.quality.nan_storm import storm_files
from refrig_assets.quality.steady import steady_sql

QUARANTINE_COLUMNS = ["source_file", "row", "column", "rule", "value", "message", "device_id", "ts"]
# Flags that belong to one sensor (the others belong to the whole reading).
SENSOR_FLAGS = ("SENSOR_DROPOUT", "OUT_OF_RANGE", "STUCK_SENSOR", "UNIT_SUSPECT")


def flag_bit(name: str) -> int:
    """Bit value of a quality flag in ``quality_mask``."""
    return 1 << quality_flag_names().index(name)


def flags_from_mask_sql(mask_expr: str) -> str:
    """SQL turning a quality mask into the comma-separated flag names."""
    parts = [
        f"CASE WHEN ({mask_expr}) & {1 << i} <> 0 THEN '{name}' END"
        for i, name in enumerate(quality_flag_names())
    ]
    return f"CASE WHEN ({mask_expr}) = 0 THEN '' ELSE concat_ws(',', {', '.join(parts)}) END"


def decode_mask(mask: int) -> list[str]:
    """Flag names set in a quality mask."""
    return [n for i, n in enumerate(quality_flag_names()) if mask & (1 << i)]


def quality_rules() -> dict:
    """The ``quality_rules`` block of contracts/clean_readings.yaml."""
    return dict(load_contract("clean_readings").settings["quality_rules"])


@dataclass
class QualityResult:
    """Counts that must add up: rows_read == rows_clean + rows_quarantined."""

    rows_read: int
    rows_clean: int
    rows_quarantined: int
    quarantine: pd.DataFrame
    files: list[str]
    rejected_files: list[FileRejection]
    notices: list[FileRejection] = field(default_factory=list)
    # rows carrying each flag, and per sensor for the sensor flags: {(flag, sensor): rows}
    flag_counts: dict[str, int] = field(default_factory=dict)
    sensor_flag_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    completeness: float = 0.0
    # sensor values present in the clean rows (completeness = present / (rows_clean * sensors))
    sensor_values_present: int = 0
    nan_storm_files: dict[str, float] = field(default_factory=dict)
    # unregistered device ids that equal a registered id but for case: {seen: registered}
    case_variants: dict[str, str] = field(default_factory=dict)
    # SQL (on the same connection) of each device's last value and run start per sensor, for
    # the next hour's stuck-sensor check
    tails_sql: str = ""

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_clean + self.rows_quarantined


def quarantine_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows in the quarantined_readings column order."""
    if len(rows):
        return _shaped(rows)
    # most hours quarantine nothing: their frame is shaped once per kind of empty input
    shape = _shape_of(rows)
    if shape not in _NO_QUARANTINE:
        _NO_QUARANTINE[shape] = _shaped(rows)
    return _NO_QUARANTINE[shape].copy()


# The shaped frame of no rows, by the shape of the empty input it came from (see _shape_of).
_NO_QUARANTINE: dict[tuple, pd.DataFrame] = {}


def _shape_of(rows: list[dict] | pd.DataFrame) -> tuple:
    """What the shaped frame of an empty input depends on: its index, columns and their types."""
    if isinstance(rows, list):
        return ()
    return (repr(rows.index), *((str(c), str(t)) for c, t in rows.dtypes.items()))


def _shaped(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    df = (
        pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
        if isinstance(rows, list)
        else rows[QUARANTINE_COLUMNS].copy()
    )
    df["row"] = df["row"].astype("int64")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    for c in ["source_file", "column", "rule", "value", "message", "device_id"]:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def file_quarantine_rows(files: list[FileRejection]) -> pd.DataFrame:
    """Quarantine rows (row -1) for rejected files and file-level notices."""
    return quarantine_frame(
        [
            {
                "source_file": r.source_file,
                "row": -1,
                "column": r.column,
                "rule": r.rule,
                "value": None,
                "message": r.message,
                "device_id": None,
                "ts": None,
            }
            for r in files
        ]
    )


def _out_of_range(c, prefix: str = "") -> str:
    v = f"{prefix}{c.name}"
    return f"({v} < {c.range[0]} OR {v} > {c.range[1]})"


def _nan_storm_files(
    con: duckdb.DuckDBPyConnection, contract: Contract, relation: str = "hour_in"
) -> dict[str, float]:
    """Files whose readings in this hour miss more sensor values than the contract allows."""
    rule = landing_rules(contract).get("nan_storm")
    sensors = [c.name for c in fleet_sensor_columns(contract)]
    if not rule or not sensors:
        return {}
    missing = ", ".join(f"count(*) - count({s})" for s in sensors)
    rows = con.execute(
        f"SELECT source_file, count(*), {missing} FROM {relation} "
        "WHERE read_error IS NULL AND source_row >= 0 GROUP BY source_file"
    ).fetchall()
    return storm_files({r[0]: (int(r[1]), [int(m) for m in r[2:]]) for r in rows}, sensors, rule)


EMPTY_TAILS = (
    "SELECT CAST(NULL AS VARCHAR) AS device_id, CAST(NULL AS VARCHAR) AS sensor, "
    "CAST(NULL AS DOUBLE) AS value, CAST(NULL AS TIMESTAMPTZ) AS run_start LIMIT 0"
)


def _runs_sql(sensor: str) -> str:
    """Readings equal to the previous one (``eq_<sensor>``), grouped into runs.

    Consecutive marked readings form a run, which starts at the reading before its first marked
    one (``prev_ts``). One row per marked reading with its run's start and end.
    """
    return f"""
    WITH cand AS (
      SELECT device_id, ts, prev_ts, lag(ts) OVER (PARTITION BY device_id ORDER BY ts) AS prev_cand
      FROM good_rows WHERE eq_{sensor} AND NOT is_dup),
    runs AS (
      SELECT *, sum(CASE WHEN prev_ts IS DISTINCT FROM prev_cand THEN 1 ELSE 0 END)
                OVER (PARTITION BY device_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS run
      FROM cand)
    SELECT device_id, ts, min(prev_ts) OVER (PARTITION BY device_id, run) AS run_start,
           max(ts) OVER (PARTITION BY device_id, run) AS run_end
    FROM runs"""


def _stuck_sensors(con: duckdb.DuckDBPyConnection, sensors: list, minutes: float) -> str:
    """Materialize the runs of every sensor (``sensor_runs``) and how the previous hour's runs
    carry into this one (``sensor_carry``), rows named by their sensor, each table in one query
    (a small hour pays for a query per table, not per sensor and table); return the SQL of the
    stuck readings (sensor, device_id, ts).

    A run that opens the hour (from the device's first reading) continues the previous hour's
    last run when the value is the same, so its length counts from where that run began.
    """
    long = f"INTERVAL ({float(minutes)} * 60) SECOND"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sensor_runs AS "
        + " UNION ALL ".join(
            f"SELECT '{c.name}' AS sensor, * FROM ({_runs_sql(c.name)})"
            for c in _repeating(con, sensors)
        )
    )
    carries = []
    for c in sensors:
        s = c.name
        steady = steady_sql(c, f"d.first_{s}")
        not_steady = f" AND NOT ({steady})" if steady else ""
        carries.append(
            f"""
        SELECT '{s}' AS sensor, d.device_id, d.first_ts, p.run_start AS carried_start,
               coalesce(o.run_end, d.first_ts) AS opening_end
        FROM device_hour d
        JOIN previous_tails p ON p.device_id = d.device_id AND p.sensor = '{s}'
                             AND p.value = d.first_{s}{not_steady}
        LEFT JOIN {_sensor_runs(s)} o
               ON o.device_id = d.device_id AND o.run_start = d.first_ts"""
        )
    con.execute("CREATE OR REPLACE TEMP TABLE sensor_carry AS " + " UNION ALL ".join(carries))
    return f"""
    SELECT sensor, device_id, ts FROM sensor_runs WHERE run_end - run_start >= {long}
    UNION ALL
    SELECT DISTINCT sensor, device_id, run_start FROM sensor_runs WHERE run_end - run_start >= {long}
    UNION ALL
    SELECT sensor, device_id, first_ts FROM sensor_carry WHERE opening_end - carried_start >= {long}
    UNION ALL
    SELECT r.sensor, r.device_id, r.ts FROM sensor_runs r
    JOIN sensor_carry c
      ON c.sensor = r.sensor AND c.device_id = r.device_id AND r.run_start = c.first_ts
    WHERE c.opening_end - c.carried_start >= {long}"""


def _repeating(con: duckdb.DuckDBPyConnection, sensors: list) -> list:
    """The sensors of ``sensors`` (not empty) with a repeated value in ``good_rows``, the
    only ones with a run: the others' parts of ``sensor_runs`` are left out (a small hour
    pays for planning each part more than for its rows). The first sensor is kept whatever it
    holds, so the table has its columns when no sensor repeats."""
    repeated = con.execute(
        "SELECT "
        + ", ".join(f"count_if(eq_{c.name} AND NOT is_dup) > 0" for c in sensors)
        + " FROM good_rows"
    ).fetchall()[0]
    return [c for i, (c, found) in enumerate(zip(sensors, repeated, strict=True)) if found or not i]


def _sensor_runs(sensor: str) -> str:
    """One sensor's runs in ``sensor_runs``, once per run (device_id, run_start, run_end)."""
    return (
        "(SELECT DISTINCT device_id, run_start, run_end FROM sensor_runs "
        f"WHERE sensor = '{sensor}')"
    )


def _tails_sql(sensors: list) -> str:
    """Per device and sensor: the last value of the hour and when its run of that value began
    (carried over from earlier hours), for the next hour's stuck-sensor check."""
    parts = [
        f"""
        SELECT d.device_id, '{c.name}' AS sensor, d.last_{c.name} AS value,
               CASE WHEN coalesce(t.run_start, d.last_ts) = d.first_ts
                         AND k.carried_start IS NOT NULL THEN k.carried_start
                    ELSE coalesce(t.run_start, d.last_ts) END AS run_start
        FROM device_hour d
        LEFT JOIN {_sensor_runs(c.name)} t
               ON t.device_id = d.device_id AND t.run_end = d.last_ts
        LEFT JOIN sensor_carry k ON k.device_id = d.device_id AND k.sensor = '{c.name}'
        WHERE d.last_{c.name} IS NOT NULL"""
        for c in sensors
    ]
    if not parts:
        return EMPTY_TAILS
    return " UNION ALL ".join(parts) + " ORDER BY device_id, sensor"


def _unit_checked(contract: Contract) -> list:
    return [
        c
        for c in contract.columns_with_role("sensor")
        if c.extra.get("misunits") and c.extra.get("operating_range")
    ]


def _device_hour_sql(contract: Contract) -> str:
    """Per device: clean readings of the hour, first and last reading (time and values), and the
    mean and count of each unit-checked sensor."""
    aggs = ", ".join(_device_hour_aggs(contract))
    return f"SELECT device_id, {aggs} FROM good_rows WHERE NOT is_dup GROUP BY device_id"


def _device_hour_aggs(contract: Contract) -> list[str]:
    """The aggregates of :func:`_device_hour_sql`."""
    aggs = ["count(*) AS n_rows", "min(ts) AS first_ts", "max(ts) AS last_ts"]
    for c in contract.columns_with_role("sensor"):
        aggs += [f"arg_min_null({c.name}, ts) AS first_{c.name}"]
        aggs += [f"arg_max_null({c.name}, ts) AS last_{c.name}"]
    for c in _unit_checked(contract):
        aggs += [f"avg({c.name}) AS m_{c.name}", f"count({c.name}) AS n_{c.name}"]
    return aggs


def _unit_suspect_sql(contract: Contract, min_readings: int) -> str:
    """(device_id, sensor, unit, n_rows) for device-hours whose mean fits a wrong unit only.

    Judged on the device-hour mean, not on single values: one reading may be a spike, a whole
    hour that sits where the converted operating range is and the native one is not is a unit.
    """
    parts = []
    for c in _unit_checked(contract):
        lo, hi = (float(v) for v in c.extra["operating_range"])
        m = f"m_{c.name}"
        fits = []
        for u in c.extra["misunits"]:
            scale, offset = float(u["scale"]), float(u.get("offset", 0.0))
            a, b = sorted((lo * scale + offset, hi * scale + offset))
            fits.append(f"WHEN {m} BETWEEN {a} AND {b} THEN {sql_str(u['unit'])}")
        parts.append(
            f"SELECT device_id, '{c.name}' AS sensor, CASE {' '.join(fits)} END AS unit, n_rows "
            f"FROM device_hour WHERE n_{c.name} >= {int(min_readings)} "
            f"AND NOT ({m} BETWEEN {lo} AND {hi})"
        )
    if not parts:
        return "SELECT '' AS device_id, '' AS sensor, '' AS unit, 0 AS n_rows LIMIT 0"
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) WHERE unit IS NOT NULL"


@dataclass
class FileFindings:
    """What the quality rules find per landing file over the whole hour."""

    entries: list[FileRejection]  # rejected files and file notices (rows with source_row < 0)
    read: set[str]  # files whose rows were read
    storms: dict[str, float]  # NaN-storm files and their share of missing sensor values
    # the hour's Parquet footer shows every row read (source_row >= 0), each with a device, a
    # time and no read error: no row of it is quarantined for what it holds on its own
    all_keyed: bool = False


def _all_keyed(path: Path) -> bool:
    """Whether the footer of the hour's typed readings file ``path`` shows every row with a
    ``device_id``, a ``ts`` and no ``read_error`` (False where a statistic is missing)."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.names
    if any(n not in names for n in ("device_id", "ts", "read_error")):
        return False
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for name, nulls in (("device_id", 0), ("ts", 0), ("read_error", group.num_rows)):
            stats = group.column(names.index(name)).statistics
            if stats is None or not stats.has_null_count or stats.null_count != nulls:
                return False
    return True


def _missing_by_file(
    path: Path, sensors: list[str], files: set[str]
) -> dict[str, tuple[int, list[int]]] | None:
    """Per landing file: its rows in the hour's Parquet file ``path`` and their missing values
    of each sensor, read from the row-group statistics (no scan) when every row group holds read rows
    (no read error, no file entry) of a single landing file, one of ``files`` (so not a cut
    min/max); None when they do not show it."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.names
    need = ["source_file", "source_row", "read_error", *sensors]
    if any(n not in names for n in need):
        return None
    out: dict[str, tuple[int, list[int]]] = {}
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        stats = {n: group.column(names.index(n)).statistics for n in need}
        if any(st is None or not st.has_null_count for st in stats.values()):
            return None
        file, row = stats["source_file"], stats["source_row"]
        if not (file.has_min_max and file.min == file.max and file.min in files):
            return None
        if file.null_count or (file.has_distinct_count and file.distinct_count != 1):
            return None
        if not row.has_min_max or row.null_count or row.min < 0:
            return None
        if stats["read_error"].null_count != group.num_rows:
            return None
        rows, missing = out.get(file.min, (0, [0] * len(sensors)))
        nulls = [m + stats[s].null_count for m, s in zip(missing, sensors, strict=True)]
        out[file.min] = (rows + group.num_rows, nulls)
    return out


def _nan_storm_files_of(path: Path, contract: Contract, files: set[str]) -> dict[str, float] | None:
    """:func:`_nan_storm_files` of the hour's Parquet file from its statistics (None: scan);
    ``files``: the landing files whose rows it holds."""
    rule = landing_rules(contract).get("nan_storm")
    sensors = [c.name for c in fleet_sensor_columns(contract)]
    if not rule or not sensors:
        return {}
    counts = _missing_by_file(path, sensors, files)
    return None if counts is None else storm_files(counts, sensors, rule)


def file_findings(
    con: duckdb.DuckDBPyConnection, scope: str, contract: Contract, path: Path | None = None
) -> FileFindings:
    """The file-level findings of the hour's typed readings in relation ``scope`` (``path``: the
    Parquet file it reads, whose statistics may spare the NaN-storm scan)."""
    entries = [
        FileRejection(f, rule, message, column)
        for f, rule, message, column in con.execute(
            f"SELECT source_file, read_error, read_error_value, read_error_column FROM {scope} "
            "WHERE source_row < 0 ORDER BY source_file, read_error, read_error_column"
        ).fetchall()
    ]
    read = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT source_file FROM {scope} WHERE source_row >= 0"
        ).fetchall()
    }
    storms = _nan_storm_files_of(path, contract, read) if path is not None else None
    if storms is None:
        storms = _nan_storm_files(con, contract, scope)
    # (a rejected file or notice is a row without a device: only an hour without any qualifies)
    keyed = path is not None and not entries and _all_keyed(path)
    return FileFindings(entries, read, storms, keyed)


# The order of the copies of one reading (device_id, ts): the first to land first, so it is the
# one kept (files that landed at the same instant by name, then rows in file order).
ARRIVAL_ORDER = "received_at, source_file, source_row"
QUALITY_ORDER_ERROR = f"readings out of (device_id, ts, {ARRIVAL_ORDER}) order"


def _previous_row_sql(
    rows: str,
    sensors: list,
    value_cols: str,
    *,
    guard: bool,
    row_mask: str = "0",
    positions: bool = False,
) -> str:
    """The rows of ``rows`` (in (device_id, ts, :data:`ARRIVAL_ORDER`) order) with what the
    previous row says: ``is_dup``, ``prev_ts`` and ``eq_<sensor>`` (same value as the previous
    reading of the device), numbered in that order (``seq``), and ``flag_mask``: ``row_mask``
    (SQL of the flags a row shows on its own, see :func:`_row_mask_sql`), to which the flags
    found later are added.

    With ``guard`` the rows are taken in the order they come and a row not after the previous
    one in that order fails the query with :data:`QUALITY_ORDER_ERROR` (the caller then sorts).
    With ``positions`` the rows carry their place in the hour's file (``pos``), passed on with
    the previous reading's (``prev_pos``).
    """
    repeats = []
    for c in sensors:
        steady = steady_sql(c, c.name)
        exempt = f" AND NOT ({steady})" if steady else ""
        repeats.append(
            f"(same_device AND coalesce({c.name} = lag_{c.name}, FALSE){exempt}) AS eq_{c.name}"
        )
    lags = "".join(f", lag({c.name}) OVER () AS lag_{c.name}" for c in sensors)
    placed = ""
    if positions:
        lags += ", lag(pos) OVER () AS lag_pos"
        placed = ", pos, CASE WHEN same_device THEN lag_pos END AS prev_pos"
    same_device = "coalesce(device_id = lag_device, FALSE)"
    if guard:
        lags += (
            ", lag(received_at) OVER () AS lag_received, lag(source_file) OVER () AS lag_file, "
            "lag(source_row) OVER () AS lag_row"
        )
        # device_id and ts are never NULL here (keyed rows); only the first row has no previous
        same_device = (
            "CASE WHEN device_id = lag_device AND (ts > lag_ts OR (ts = lag_ts AND "
            "(received_at > lag_received OR (received_at = lag_received AND "
            "(source_file > lag_file OR (source_file = lag_file AND source_row > lag_row)))))) "
            "THEN TRUE WHEN lag_device IS NULL OR device_id > lag_device THEN FALSE "
            f"ELSE error('{QUALITY_ORDER_ERROR}') END"
        )
    return f"""
        SELECT {value_cols}, source_file, source_row, received_at, late_arrival,
               same_device AND coalesce(ts = lag_ts, FALSE) AS is_dup,
               CASE WHEN same_device THEN lag_ts END AS prev_ts{"".join(", " + r for r in repeats)},
               row_number() OVER () AS seq, CAST({row_mask} AS BIGINT) AS flag_mask{placed}
        FROM (
          SELECT *, {same_device} AS same_device
          FROM (
            SELECT *, lag(device_id) OVER () AS lag_device, lag(ts) OVER () AS lag_ts{lags}
            FROM ({rows})))
        """


def _previous_rows_in_ranges(
    con: duckdb.DuckDBPyConnection,
    rows: str,
    cuts: list[str],
    sensors: list,
    value_cols: str,
    row_mask: str = "0",
    *,
    over: Callable[[str], str] | None = None,
    prefix: str = "good_rows",
) -> list[str]:
    """The previous-row pass (:func:`_previous_row_sql` with its order guard) of each device
    range of ``rows`` that ``cuts`` make, each into its own table, side by side; the tables'
    names, in range order. ``over`` turns a range's pass into the query its table holds
    (default: the pass itself); the tables are ``<prefix>_<range>``.

    DuckDB runs a pass that follows the rows in order (``lag() OVER ()``) on one thread, and a
    ``UNION ALL`` of the ranges into one table runs them one after the other (the insert keeps
    their order). On a cursor each (a connection of its own to the same database, in a thread
    of its own: DuckDB releases the GIL) the ranges run at the same time. The tables are not
    temporary so that every cursor sees the database's. Every range starts at a device's first
    row, so the previous-row findings are those of the whole pass; ``seq`` counts within a table.
    Raises the order guard's error when any range is out of order (its tables are dropped).
    """
    tables = [f"{prefix}_{k}" for k in range(len(cuts) + 1)]

    def one(k: int) -> None:
        cursor = con.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            part = f"SELECT * FROM ({rows}) WHERE {in_range_sql(cuts, k, null_in_first=False)}"
            sql = _previous_row_sql(
                part, sensors, value_cols, guard=True, row_mask=row_mask, positions=over is not None
            )
            cursor.execute(f"CREATE OR REPLACE TABLE {tables[k]} AS {over(sql) if over else sql}")
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=len(tables)) as pool:
        failures = [f.exception() for f in [pool.submit(one, k) for k in range(len(tables))]]
    failed = [e for e in failures if e is not None]
    if failed:
        for table in tables:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        raise failed[0]
    return tables


def _device_pass(
    con: duckdb.DuckDBPyConnection,
    rows: str,
    cuts: list[str],
    sensors: list,
    value_cols: str,
    contract: Contract,
    row_mask: str,
    kits: list[str],
) -> bool:
    """The previous-row pass of ``rows`` (which carry ``pos``, their place in the hour's file)
    grouped per device as it runs, so the hour's rows are never stored: ``device_hour`` (with
    each device's first and last place and its rows per flag, see :func:`_flag_counts`) and
    ``good_rows`` holding only the readings the whole-hour rules look at (repeated values and
    copies). The clean rows are then written straight from the hour's file in its own order
    (:func:`_clean_rows_sql`), which is the rows' (device_id, ts, :data:`ARRIVAL_ORDER`)
    order: the pass's order guard holds in each device range and the ranges follow one another
    in the file.

    The copies of a reading (``is_dup``, every one after the first) are among the readings
    kept; the devices that have any are counted again without them
    (:func:`_recount_copied_devices`) and their first copies join ``good_rows``, so an hour
    with copies is cleaned from its file as well, after one pass. False (nothing left behind)
    when the ranges overlap in the file.

    ``row_mask`` flags every missing value a dropout; with ``kits`` (the sensors some device's
    kit lacks) the rows of those devices are then looked at again (:func:`_kit_dropouts_cleared`).
    """
    eq = [f"eq_{c.name}" for c in sensors]
    marked = " OR ".join(["is_dup", *eq])
    fields = ["ts", "prev_ts", "pos", "prev_pos", "is_dup", "source_file", "source_row", *eq]
    mark = "{" + ", ".join(f"'{f}': {f}" for f in fields) + "}"
    ranged = [c for c in sensors if c.range]
    counts = [f"count(*) FILTER (flag_mask & {flag_bit(f)} <> 0) AS c_{f}" for f in ROW_FLAGS]
    counts += [f"count({c.name}) AS p_{c.name}" for c in sensors]
    out_of_range = flag_bit("OUT_OF_RANGE")
    counts += [
        f"count(*) FILTER (flag_mask & {out_of_range} <> 0 AND {_out_of_range(c)}) AS o_{c.name}"
        for c in ranged
    ]
    device_aggs = [*_device_hour_aggs(contract), *counts]
    aggs = [
        *device_aggs,
        "min(pos) AS first_pos",
        "max(pos) AS last_pos",
        "count(*) FILTER (is_dup) AS n_dups",
        f"list({mark}) FILTER (WHERE {marked}) AS marks",
    ]

    def per_device(pass_sql: str) -> str:
        return f"SELECT device_id, {', '.join(aggs)} FROM ({pass_sql}) GROUP BY device_id"

    tables = _previous_rows_in_ranges(
        con, rows, cuts, sensors, value_cols, row_mask, over=per_device, prefix="device_pass"
    )
    spans = con.execute(
        " UNION ALL ".join(
            f"SELECT {k}, sum(n_dups), min(first_pos), max(last_pos) FROM {t}"
            for k, t in enumerate(tables)
        )
        + " ORDER BY 1"
    ).fetchall()
    held = [(lo, hi) for _, _, lo, hi in spans if lo is not None]
    apart = all(hi < lo for (_, hi), (lo, _) in zip(held, held[1:], strict=False))
    if not apart:
        for table in tables:
            con.execute(f"DROP TABLE {table}")
        return False
    every = " UNION ALL ".join(f"SELECT * EXCLUDE (marks, n_dups) FROM {t}" for t in tables)
    copied = any(dups for _, dups, _, _ in spans)
    if copied:
        every = _recount_copied_devices(con, rows, tables, every, device_aggs, row_mask)
    con.execute(f"CREATE OR REPLACE TEMP TABLE device_hour AS {every}")
    if kits:
        _kit_dropouts_cleared(con, rows, sensors, kits, copied)
    unnested = " UNION ALL ".join(
        f"SELECT device_id, unnest(marks, recursive := true) FROM {t}" for t in tables
    )
    columns = ", ".join(["device_id", *fields])
    con.execute(f"CREATE OR REPLACE TEMP TABLE good_rows AS SELECT {columns} FROM ({unnested})")
    if copied:
        # the kept copy of each copied reading, for the copies' quarantine entries and places
        unmarked = ", ".join(f"FALSE AS eq_{c.name}" for c in sensors)
        con.execute(
            f"INSERT INTO good_rows BY NAME SELECT device_id, ts, pos, FALSE AS is_dup, "
            f"source_file, source_row{', ' + unmarked if unmarked else ''} FROM kept_rows k "
            "WHERE EXISTS (SELECT 1 FROM good_rows d WHERE d.is_dup "
            "AND d.device_id = k.device_id AND d.ts = k.ts) "
            "AND NOT EXISTS (SELECT 1 FROM good_rows g WHERE NOT g.is_dup "
            "AND g.device_id = k.device_id AND g.ts = k.ts)"
        )
        con.execute("DROP TABLE kept_rows")
    for table in tables:
        con.execute(f"DROP TABLE {table}")
    return True


def _kit_dropouts_cleared(
    con: duckdb.DuckDBPyConnection, rows: str, sensors: list, kits: list[str], copied: bool
) -> None:
    """After the device pass, which flags every missing value a dropout: ``kit_cleared``, the
    places (``pos``) of the rows of ``rows`` whose missing values are all of sensors their
    device's kit lacks (no dropout, see :func:`_dropout_sql`), and ``device_hour``'s dropout
    counts less those rows among each device's kept readings (the first copy of each).

    The rows of the devices with a kit (:data:`KITS`) are found by a join, as no order is
    needed here: the cost follows those devices' rows, whatever the number of devices named
    (a membership test of their literal ids in the pass ran out of 2 GB at 10,000 devices)."""
    present = con.execute(
        f"SELECT count(*) FROM device_hour WHERE device_id IN (SELECT device_id FROM {KITS})"
    ).fetchall()[0][0]
    if not present:
        con.execute("CREATE OR REPLACE TEMP TABLE kit_cleared (pos BIGINT)")
        return
    kept = "r.pos = min(r.pos) OVER (PARTITION BY r.device_id, r.ts)" if copied else "TRUE"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE kit_cleared AS SELECT pos, device_id, kept FROM ("
        f"SELECT r.pos, r.device_id, {_cleared_sql(sensors, kits, 'r.')} AS cleared, "
        f"{kept} AS kept FROM ({rows}) r JOIN {KITS} k ON k.device_id = r.device_id) "
        "WHERE cleared"
    )
    dropout = "c_SENSOR_DROPOUT"
    con.execute(
        f"UPDATE device_hour SET {dropout} = {dropout} - x.n FROM ("
        "SELECT device_id, count(*) AS n FROM kit_cleared WHERE kept GROUP BY device_id) x "
        "WHERE device_hour.device_id = x.device_id"
    )


def _recount_copied_devices(
    con: duckdb.DuckDBPyConnection,
    rows: str,
    tables: list[str],
    every: str,
    device_aggs: list[str],
    row_mask: str,
) -> str:
    """SQL of ``device_hour`` from the device pass's ``every`` with the devices that have
    copies of a reading counted again on their kept readings alone (each reading's first copy
    in the file, which is the stored pass's kept one: the file is in the pass's order), into
    ``kept_rows``. Their first and last places stay those of all their rows, copies included.
    No order is needed here, so the copied devices' rows are found by a join."""
    copied = " UNION ALL ".join(f"SELECT device_id FROM {t} WHERE n_dups > 0" for t in tables)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE kept_rows AS SELECT *, CAST({row_mask} AS BIGINT) AS "
        f"flag_mask FROM ({rows}) WHERE device_id IN ({copied}) "
        "QUALIFY row_number() OVER (PARTITION BY device_id, ts ORDER BY pos) = 1"
    )
    recount = f"SELECT device_id, {', '.join(device_aggs)} FROM kept_rows GROUP BY device_id"
    return (
        f"SELECT * FROM ({every}) WHERE device_id NOT IN ({copied}) UNION ALL "
        f"SELECT r.*, d.first_pos, d.last_pos FROM ({recount}) r JOIN ({every}) d "
        "ON d.device_id = r.device_id"
    )


def _clean_rows_sql(
    con: duckdb.DuckDBPyConnection, source: str, where: str, row_mask: str, marks: list
) -> str:
    """The clean rows straight from ``source`` (the hour's file with ``file_row_number``, in
    its own order), after :func:`_device_pass`: each row's own flags (``row_mask``) and those
    the whole-hour rules found (``marks``: flag and the places in the file it marks, as SQL),
    looked up by place in a bit string per flag (no join, which would reorder the rows). The
    places marked :data:`DROPPED` (the copies of a reading) are left out, those marked
    :data:`KIT_FITTED` lose the dropout bit of ``row_mask``."""
    last = con.execute("SELECT max(last_pos) FROM device_hour").fetchall()[0][0]
    terms = [f"({row_mask})"]
    marks = marks if last is not None else []  # none in an hour without rows
    names = [f"quality_{flag.lower()}_places" for flag, _ in marks]
    for name, (_, places) in zip(names, marks, strict=True):
        con.execute(
            f"SET VARIABLE {name} = (SELECT bitstring_agg(pos, 0, {int(last)}) FROM ({places}))"
        )
    empty = [f"getvariable('{name}') IS NULL" for name in names]
    unmarked = con.execute(f"SELECT {', '.join(empty)}").fetchall()[0] if names else ()
    for name, (flag, _), nothing in zip(names, marks, unmarked, strict=True):
        if nothing:
            continue
        placed = f"get_bit(getvariable('{name}'), CAST(file_row_number AS INTEGER)) = 1"
        if flag == DROPPED:
            where = f"({where}) AND NOT {placed}"
        elif flag == KIT_FITTED:
            dropout = flag_bit("SENSOR_DROPOUT")
            terms[0] = f"(({row_mask}) & ~(CASE WHEN {placed} THEN {dropout} ELSE 0 END))"
        else:
            terms.append(f"(CASE WHEN {placed} THEN {flag_bit(flag)} ELSE 0 END)")
    return (
        f"SELECT *, CAST({' | '.join(terms)} AS BIGINT) AS quality_mask FROM {source} WHERE {where}"
    )


DROPPED = "COPY"  # the places of _marked_places that are not clean rows
# the places of _marked_places whose missing values are all of sensors their kit lacks
KIT_FITTED = "KIT"


def _marked_places(con: duckdb.DuckDBPyConnection, kits: bool = False) -> list[tuple[str, str]]:
    """After :func:`_device_pass` and the whole-hour rules: SQL of the places in the file of
    the readings each joined flag marks (stuck runs and kept copies by reading; unit suspects
    and unregistered devices by device, whose rows lie between its first and last place), of
    the copies (:data:`DROPPED`) and, with ``kits``, of the rows no dropout for their device's
    kit (:data:`KIT_FITTED`, see :func:`_kit_dropouts_cleared`). A reading with copies is placed at its first copy, the
    kept one: the copies come after it in the file."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE reading_places AS "
        "SELECT device_id, ts, min(pos) AS pos FROM ("
        "SELECT device_id, ts, pos FROM good_rows "
        "UNION ALL SELECT device_id, prev_ts, prev_pos FROM good_rows WHERE prev_pos IS NOT NULL "
        "UNION ALL SELECT device_id, first_ts, first_pos FROM device_hour) GROUP BY device_id, ts"
    )
    stuck = "SELECT DISTINCT device_id, ts FROM stuck"
    found, placed = con.execute(
        f"SELECT (SELECT count(*) FROM ({stuck})), (SELECT count(*) FROM ({stuck}) s "
        "JOIN reading_places p ON p.device_id = s.device_id AND p.ts = s.ts)"
    ).fetchall()[0]
    if found != placed:  # every stuck reading is a repeat, the one before it or a first row
        raise RuntimeError(f"{found - placed} stuck readings without a place in the hour's file")

    def devices(table: str) -> str:
        return (
            "SELECT unnest(generate_series(first_pos, last_pos)) AS pos FROM device_hour "
            f"WHERE device_id IN (SELECT device_id FROM {table})"
        )

    return [
        (
            "STUCK_SENSOR",
            f"SELECT p.pos FROM ({stuck}) s JOIN reading_places p "
            "ON p.device_id = s.device_id AND p.ts = s.ts",
        ),
        ("UNIT_SUSPECT", devices("unit_suspect")),
        ("UNREGISTERED_DEVICE", devices("unregistered")),
        (
            "DUPLICATE",
            "SELECT p.pos FROM copied c JOIN reading_places p "
            "ON p.device_id = c.device_id AND p.ts = c.ts",
        ),
        (DROPPED, "SELECT pos FROM good_rows WHERE is_dup"),
    ] + ([(KIT_FITTED, "SELECT pos FROM kit_cleared")] if kits else [])


def clean_hour(
    con: duckdb.DuckDBPyConnection,
    source: str,
    contract: Contract,
    registered_devices: pa.Table,
    rules: dict | None = None,
    previous_tails: str | None = None,
    *,
    file_scope: str | None = None,
    file_entries_here: bool = True,
    findings: FileFindings | None = None,
    flags_in_place: bool | None = None,
    cuts: list[str] | None = None,
    positions: bool = False,
    fold: bool = True,
) -> tuple[str, QualityResult]:
    """Apply the quality rules to the typed readings of one hour (see :func:`landing.hour_readings`).

    ``source`` is a SQL relation on ``con`` with the typed readings (rows with ``source_row = -1``
    are rejected files and file notices; they become row -1 quarantine entries). Returns the SQL
    of the clean rows (sorted by device_id, ts; the caller streams it to Parquet with the same
    connection) and the quarantine with the counts. ``previous_tails`` (a relation in the shape
    of :attr:`QualityResult.tails_sql`, from the previous hour) lets a stuck run that began
    before the hour count from where it began.

    Every rule but the file-level ones (rejected files, notices, NaN storms) looks at one device
    at a time, so ``source`` may be one shard of the hour's devices (see
    :mod:`refrig_assets.quality.shards`): ``file_scope`` is then the whole hour, which the file
    rules are judged on, and ``file_entries_here`` says whether this shard reports the file
    entries (exactly one shard does).
    ``findings`` are those file-level findings when the caller judged the hour already (then
    neither ``file_scope`` nor the hour is scanned for them again).
    ``flags_in_place`` (default: on a DuckDB connection) sets the flags found by joins with an
    UPDATE of the few rows they concern, so the clean rows need no sort; otherwise (another
    engine running this SQL) the clean rows' SQL joins them and ends with ``ORDER BY seq``.
    ``cuts`` (device ids, see :func:`refrig_assets.core.device_ranges.device_cuts`) split the
    previous-row pass into device ranges computed side by side (see
    :func:`_previous_rows_in_ranges`); ``source`` must then be a relation other cursors of
    ``con`` can read (not a temporary view or a registered frame). Needs the flags in place.
    ``positions``: the rows of ``source`` carry their place in the hour's Parquet file
    (``file_row_number``). With the flags in place, an hour in order is then cleaned
    without storing its rows (see :func:`_device_pass`): the clean
    rows stream from the file, the same rows in the same order.
    ``fold``: the copies of a reading that each hold some of its measurements are folded into
    one (see :mod:`refrig_assets.quality.folding`); the hour is then cleaned again without the
    merged copies, on the path that sorts it (False: ``source`` is that folded hour).
    """
    rules = rules or quality_rules()
    sensors = fleet_sensor_columns(contract)
    value_cols = ", ".join(contract.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW hour_in AS SELECT * FROM {source} WHERE source_row >= 0"
    )
    con.register("registered_devices", registered_devices)
    kits = _register_kits(con, contract)
    found = findings or file_findings(con, file_scope or source, contract)
    read, storms = found.read, found.storms
    # an entry for a file whose rows were read is a note (e.g. an extra column), not a rejection
    rejected_files = [e for e in found.entries if e.source_file not in read]
    notices = [e for e in found.entries if e.source_file in read]
    in_storm = f"source_file IN ({', '.join(sql_str(f) for f in storms)})" if storms else "FALSE"
    keyed = "read_error IS NULL AND device_id IS NOT NULL AND ts IS NOT NULL"
    stuck_minutes = float(rules["stuck_sensor_minutes"])

    # The hour in (device_id, ts, ARRIVAL_ORDER) order; duplicates and repeated
    # values are then comparisons with the previous row (a streaming pass), not a window per
    # device. A landing file written in that order (one file per hour, device by device) needs
    # no sort: the pass runs in the rows' own order and stops at the first row out of it.
    def keyed_rows_of(relation: str, placed: bool = False) -> str:
        return (
            f"SELECT {value_cols}, source_file, source_row, received_at, late_arrival"
            f"{', file_row_number AS pos' if placed else ''} "
            f"FROM {relation} WHERE {keyed} AND NOT ({in_storm})"
        )

    keyed_rows = keyed_rows_of("hour_in")
    if flags_in_place is None:
        flags_in_place = isinstance(con, duckdb.DuckDBPyConnection)
    tolerance = float(rules["future_tolerance_minutes"])
    # With the flags in place, the flags a row shows on its own come out of the previous-row
    # pass, which reads every row anyway: the clean rows and the counts read them off the mask.
    row_mask = _row_mask_sql(contract, tolerance) if flags_in_place else "0"
    range_tables: list[str] = []
    streamed = False
    try:
        if positions and flags_in_place:
            streamed = _device_pass(
                con,
                keyed_rows_of(f"(SELECT * FROM {source} WHERE source_row >= 0)", placed=True),
                cuts or [],
                sensors,
                value_cols,
                contract,
                row_mask,
                kits,
            )
        if streamed:
            pass
        elif cuts and flags_in_place:
            # read from source: hour_in is a temporary view, which other cursors do not see
            ranged = keyed_rows_of(f"(SELECT * FROM {source} WHERE source_row >= 0)")
            range_tables = _previous_rows_in_ranges(
                con, ranged, cuts, sensors, value_cols, row_mask
            )
            con.execute(
                "CREATE OR REPLACE TEMP VIEW good_rows AS "
                + " UNION ALL ".join(f"SELECT * FROM {t}" for t in range_tables)
            )
        else:
            in_order = _previous_row_sql(
                keyed_rows, sensors, value_cols, guard=True, row_mask=row_mask
            )
            con.execute(f"CREATE OR REPLACE TEMP TABLE good_rows AS {in_order}")
    except duckdb.Error as exc:
        if QUALITY_ORDER_ERROR not in str(exc):
            raise
        range_tables = []
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE hour_sorted AS {keyed_rows} "
            f"ORDER BY device_id, ts, {ARRIVAL_ORDER}"
        )
        sorted_sql = _previous_row_sql(
            "SELECT * FROM hour_sorted", sensors, value_cols, guard=False, row_mask=row_mask
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE good_rows AS {sorted_sql}")
        con.execute("DROP TABLE hour_sorted")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE copied AS "
        "SELECT DISTINCT device_id, ts FROM good_rows WHERE is_dup"
    )
    measured = [n for n in contract.column_names if n not in contract.primary_key]
    if fold and con.execute("SELECT count(*) FROM copied").fetchall()[0][0]:
        merged = fold_copies(con, keyed_rows, "copied", measured, ARRIVAL_ORDER)
        if merged:
            if range_tables:
                con.execute("DROP VIEW good_rows")
                for table in range_tables:
                    con.execute(f"DROP TABLE {table}")
            create_folded_hour(
                con,
                f"SELECT * FROM {source} WHERE source_row >= 0",
                source_columns(con, source),
                measured,
            )
            merged_entries = quarantine_frame(con.execute(merged_quarantine_sql()).df())
            clean_sql, result = clean_hour(
                con,
                FOLDED_HOUR,
                contract,
                registered_devices,
                rules,
                previous_tails,
                file_entries_here=file_entries_here,
                findings=found,
                flags_in_place=flags_in_place,
                fold=False,
            )
            return clean_sql, _with_merged(result, merged_entries)
    if not streamed:
        con.execute(f"CREATE OR REPLACE TEMP TABLE device_hour AS {_device_hour_sql(contract)}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE previous_tails AS "
        + (
            f"SELECT device_id, sensor, value, run_start FROM {previous_tails}"
            if previous_tails
            else EMPTY_TAILS
        )
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stuck AS "
        + (
            _stuck_sensors(con, sensors, stuck_minutes)
            if sensors
            else "SELECT '' AS sensor, '' AS device_id, NULL::TIMESTAMPTZ AS ts LIMIT 0"
        )
    )
    min_readings = int(rules["unit_suspect_min_readings"])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE unit_suspect AS {_unit_suspect_sql(contract, min_readings)}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE unregistered AS SELECT device_id, n_rows FROM device_hour "
        "WHERE device_id NOT IN (SELECT device_id FROM registered_devices)"
    )

    conditions = _flag_conditions(contract, tolerance, kits=kits)

    def mask_of(flags: list[str]) -> str:
        return " | ".join(
            f"(CASE WHEN {conditions[f]} THEN {flag_bit(f)} ELSE 0 END)" for f in flags
        )

    joins = """
          LEFT JOIN (SELECT DISTINCT device_id, ts FROM stuck) st
                 ON st.device_id = g.device_id AND st.ts = g.ts
          LEFT JOIN (SELECT DISTINCT device_id FROM unit_suspect) us ON us.device_id = g.device_id
          LEFT JOIN unregistered r ON r.device_id = g.device_id
          LEFT JOIN copied cp ON cp.device_id = g.device_id AND cp.ts = g.ts"""
    if kits:
        joins += f"\n          LEFT JOIN {KITS} k ON k.device_id = g.device_id"
    if streamed:
        where = f"source_row >= 0 AND {keyed} AND NOT ({in_storm})"
        flagged = _clean_rows_sql(con, source, where, row_mask, _marked_places(con, bool(kits)))
        order = ""
    elif flags_in_place:
        # The flags found in the small tables (stuck runs, copies, unit suspects, unregistered
        # devices) are set on the few rows they concern, in place: the clean rows then stream
        # out of good_rows in its own order, with no join (which would reorder them) and no sort.
        # Gathered per reading and per device first, so each row is looked up once per kind.
        marks = _joined_marks(con)
        for table in range_tables or ["good_rows"]:
            if kits:  # the pass flagged every missing value: not one of a sensor the kit lacks
                bit = flag_bit("SENSOR_DROPOUT")
                con.execute(
                    f"UPDATE {table} SET flag_mask = {table}.flag_mask & ~{bit} FROM {KITS} k "
                    f"WHERE {table}.device_id = k.device_id AND {table}.flag_mask & {bit} <> 0 "
                    f"AND NOT ({_dropout_sql(sensors, f'{table}.', kits)})"
                )
            for marked, on in marks:
                keys = " AND ".join(f"{table}.{k} = m.{k}" for k in on)
                con.execute(
                    f"UPDATE {table} SET flag_mask = {table}.flag_mask | m.mask FROM {marked} m "
                    f"WHERE {keys} AND NOT {table}.is_dup"
                )
        # an expression, as the other path's: the file's column stays optional (DuckDB writes a
        # column straight from a table whose statistics show no NULL as required)
        flagged = "SELECT g.*, g.flag_mask | 0 AS quality_mask FROM good_rows g WHERE NOT g.is_dup"
        order = ""
    else:  # one query with the joins, sorted back into seq order
        flagged = f"SELECT g.*, CAST({mask_of(list(conditions))} AS BIGINT) AS quality_mask"
        flagged += f" FROM good_rows g {joins} WHERE NOT g.is_dup"
        order = "ORDER BY seq"
    clean_sql = f"""
        SELECT {value_cols}, quality_mask, {flags_from_mask_sql("quality_mask")} AS quality_flags,
               source_file
        FROM ({flagged})
        {order}
        """
    row_q = _row_quarantine(con, contract, storms, keyed, in_storm, found.all_keyed)
    entries = rejected_files + notices if file_entries_here else []
    by = ["source_file", "row", "rule"]
    if entries:
        both = pd.concat([file_quarantine_rows(entries), row_q], ignore_index=True)
        quarantine = quarantine_frame(both.sort_values(by, kind="stable", ignore_index=True))
    else:  # (most hours) the row entries alone, shaped already
        quarantine = (
            row_q.sort_values(by, kind="stable", ignore_index=True) if len(row_q) else row_q
        )
    rows_read = con.execute("SELECT count(*) FROM hour_in").fetchall()[0][0]
    counts, sensor_counts, present, rows_clean = _flag_counts(
        con, contract, tolerance, kits, from_mask=flags_in_place, per_device=streamed
    )
    files = sorted(read)
    variants = (
        case_variants(con, "unregistered", "registered_devices")
        if counts["UNREGISTERED_DEVICE"]
        else {}
    )
    result = QualityResult(
        rows_read=int(rows_read),
        rows_clean=int(rows_clean),
        rows_quarantined=len(row_q),
        quarantine=quarantine,
        files=files,
        rejected_files=rejected_files,
        notices=notices,
        flag_counts=counts,
        sensor_flag_counts=sensor_counts,
        completeness=present / (rows_clean * len(sensors)) if rows_clean and sensors else 0.0,
        sensor_values_present=present,
        nan_storm_files=storms,
        case_variants=variants,
        tails_sql=_tails_sql(sensors),
    )
    return clean_sql, result


def case_variants(
    con: duckdb.DuckDBPyConnection, unregistered: str, registered: str
) -> dict[str, str]:
    """Of the device ids in relation ``unregistered`` (not in the registry), those that equal
    an id of relation ``registered`` but for case (``DEV-1`` readings, ``dev-1`` registered):
    {id seen: id registered}. Ids stay exact (two devices to the pipeline); this names why a
    registered device looks silent."""
    rows = con.execute(
        f"SELECT u.device_id, min(r.device_id) FROM (SELECT DISTINCT device_id FROM {unregistered}) u "
        f"JOIN {registered} r ON lower(r.device_id) = lower(u.device_id) "
        "GROUP BY u.device_id ORDER BY 1"
    ).fetchall()
    return {str(seen): str(known) for seen, known in rows}


def _with_merged(result: QualityResult, merged: pd.DataFrame) -> QualityResult:
    """``result`` of the folded hour with the merged copies' quarantine entries added: each
    was a row read and is a row quarantined."""
    both = pd.concat([result.quarantine, merged], ignore_index=True)
    by = ["source_file", "row", "rule"]
    result.quarantine = quarantine_frame(both.sort_values(by, kind="stable", ignore_index=True))
    result.rows_read += len(merged)
    result.rows_quarantined += len(merged)
    return result


def _row_quarantine(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    storms: dict[str, float],
    keyed: str,
    in_storm: str,
    all_keyed: bool = False,
) -> pd.DataFrame:
    """Every row of the hour that is not clean, with its rule and message (one SQL query).

    ``all_keyed``: the hour's file shows no row with a read error or without a device or a
    time (:attr:`FileFindings.all_keyed`), so the parts of the query that find them are left
    out, as is the NaN-storm part without a storm (a small hour's query costs its planning
    more than its rows)."""
    where = "source_file || ' row ' || CAST(source_row AS VARCHAR)"
    earliest, hours = plausible_timestamps(contract)
    # the earliest comes from the partitions' declared start when that lies before the contract's
    rule_source = f"{ENV_START}, {CONTRACT_FILE}" if lowered_earliest(contract) else CONTRACT_FILE
    type_of = (
        "CASE read_error_column "
        + " ".join(f"WHEN '{c.name}' THEN '{c.type}'" for c in contract.columns)
        + " END"
    )
    messages = {
        "unparsable_value": f"{where} || ': column ''' || read_error_column || ''' value ''' || "
        f"read_error_value || ''' cannot be parsed as ' || {type_of}",
        "malformed_row": f"{where} || ': malformed line (wrong number of fields): ' || read_error_value",
        "truncated_row": f"{where} || ': last line is cut short (file truncated): ' || read_error_value",
        "not_utf8": f"{where} || ': line is not valid UTF-8: ' || read_error_value",
        "implausible_timestamp": f"{where} || ': column ''ts'' value ''' || read_error_value || "
        f"''' is not a plausible reading time (not before {earliest}, at most {hours:g} h after "
        f"the file arrived at ' || CAST(received_at AS VARCHAR) || '; {rule_source})'",
    }
    for c in contract.columns:  # invalid_<column>: a text value over its max_length or pattern
        length, pattern = text_limits(c)
        if c.type != "string" or (length is None and pattern is None):
            continue
        value = f"{where} || ': column ''{c.name}'' value ''' || read_error_value || ''' "
        broken = []
        if length is not None:
            broken.append(
                f"WHEN length({c.name}) > {length} THEN {value}is longer than {length} "
                f"characters (max_length in {CONTRACT_FILE})'"
            )
        if pattern is not None:
            quoted = pattern.replace("'", "''''")
            broken.append(
                f"WHEN TRUE THEN {value}does not match the pattern ''{quoted}'' "
                f"(pattern in {CONTRACT_FILE})'"
            )
        messages[f"invalid_{c.name}"] = "CASE " + " ".join(broken) + " END"
    read_message = "CASE read_error " + " ".join(
        f"WHEN '{rule}' THEN {msg}" for rule, msg in messages.items()
    )
    read_message += f" ELSE {where} || ': ' || read_error END"
    key_cols = [c.name for c in contract.columns if c.name in contract.primary_key]
    missing_col = "CASE " + " ".join(f"WHEN {k} IS NULL THEN '{k}'" for k in key_cols) + " END"
    limit = float(landing_rules(contract).get("nan_storm", {}).get("max_missing_share", 1.0))
    storm_share = (
        "CASE source_file "
        + " ".join(f"WHEN {sql_str(f)} THEN {share}" for f, share in storms.items())
        + " END"
        if storms
        else "NULL"
    )
    parts = (
        []
        if all_keyed
        else [
            f"""
    SELECT source_file, source_row AS row, read_error_column AS "column", read_error AS rule,
           read_error_value AS value, {read_message} AS message, device_id, ts
    FROM hour_in WHERE read_error IS NOT NULL""",
            f"""
    SELECT source_file, source_row, {missing_col}, 'missing_value', NULL,
           {where} || ': required column ''' || {missing_col} || ''' is empty', device_id, ts
    FROM hour_in WHERE read_error IS NULL AND NOT ({keyed})""",
        ]
    )
    if storms:
        parts.append(f"""
    SELECT source_file, source_row, NULL, 'nan_storm', NULL,
           {where} || ': NaN storm, ' || printf('%.1f', 100 * {storm_share}) ||
           '% of the file''s sensor values in this hour are missing (limit ' ||
           printf('%.0f', {100 * limit}) || '% in {CONTRACT_FILE}); all its rows are quarantined',
           device_id, ts
    FROM hour_in WHERE {keyed} AND {in_storm}""")
    parts.append("""
    SELECT d.source_file, d.source_row, NULL, 'duplicate_reading', CAST(d.ts AS VARCHAR),
           d.source_file || ' row ' || CAST(d.source_row AS VARCHAR) || ': duplicate reading for device '
           || d.device_id || ' at ' || strftime(d.ts, '%Y-%m-%dT%H:%M:%SZ') || ' (kept: '
           || k.source_file || ' row ' || CAST(k.source_row AS VARCHAR) || ')',
           d.device_id, d.ts
    FROM (SELECT * FROM good_rows WHERE is_dup) d
    JOIN (SELECT device_id, ts, source_file, source_row FROM good_rows WHERE NOT is_dup) k
      ON k.device_id = d.device_id AND k.ts = d.ts""")
    # named and typed as the query of every part names and types them, whichever parts it has
    sql = (
        'SELECT CAST(source_file AS VARCHAR) AS source_file, CAST("row" AS BIGINT) AS "row", '
        'CAST("column" AS VARCHAR) AS "column", CAST(rule AS VARCHAR) AS rule, '
        "CAST(value AS VARCHAR) AS value, CAST(message AS VARCHAR) AS message, "
        "CAST(device_id AS VARCHAR) AS device_id, CAST(ts AS TIMESTAMPTZ) AS ts "
        f"FROM ({' UNION ALL '.join(parts)}) "
        'AS q(source_file, "row", "column", rule, value, message, device_id, ts) ORDER BY 1, 2'
    )
    return quarantine_frame(con.execute(sql).df())


# Flags that come from a join with a small table of findings (see clean_hour); the others
# (ROW_FLAGS) each row shows on its own.
JOINED_FLAGS = ("STUCK_SENSOR", "DUPLICATE", "UNIT_SUSPECT", "UNREGISTERED_DEVICE")
ROW_FLAGS = ("SENSOR_DROPOUT", "OUT_OF_RANGE", "LATE", "FUTURE_TIMESTAMP")


def _joined_marks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, tuple[str, ...]]]:
    """The flags of the small tables (stuck, copied, unit_suspect, unregistered) as bits: per
    reading in ``reading_marks`` (device_id, ts), per device in ``device_marks``; the tables that
    hold any, with the columns a row is looked up by."""
    bit = {f: flag_bit(f) for f in JOINED_FLAGS}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE reading_marks AS "
        "SELECT device_id, ts, CAST(bit_or(b) AS BIGINT) AS mask FROM ("
        f"SELECT device_id, ts, {bit['STUCK_SENSOR']} AS b FROM stuck "
        f"UNION ALL SELECT device_id, ts, {bit['DUPLICATE']} FROM copied) GROUP BY device_id, ts"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE device_marks AS "
        "SELECT device_id, CAST(bit_or(b) AS BIGINT) AS mask FROM ("
        f"SELECT device_id, {bit['UNIT_SUSPECT']} AS b FROM unit_suspect "
        f"UNION ALL SELECT device_id, {bit['UNREGISTERED_DEVICE']} FROM unregistered) "
        "GROUP BY device_id"
    )
    marks = [("reading_marks", ("device_id", "ts")), ("device_marks", ("device_id",))]
    held = con.execute(
        "SELECT (SELECT count(*) FROM reading_marks), (SELECT count(*) FROM device_marks)"
    ).fetchall()[0]
    return [m for m, n in zip(marks, held, strict=True) if n]


def _row_mask_sql(contract: Contract, tolerance_minutes: float) -> str:
    """SQL of the bits of the flags (:data:`ROW_FLAGS`) a row of good_rows shows on its own;
    every missing value a dropout (the devices with a kit are corrected after the pass)."""
    conditions = _flag_conditions(contract, tolerance_minutes, g="")
    return " | ".join(
        f"(CASE WHEN {conditions[f]} THEN {flag_bit(f)} ELSE 0 END)" for f in ROW_FLAGS
    )


def _flag_conditions(
    contract: Contract, tolerance_minutes: float, g: str = "g.", kits: list[str] | None = None
) -> dict:
    """SQL condition of each flag on a good_rows row aliased ``g`` (joined tables: see clean_hour).
    Sensors the fleet does not have (``REFRIG_SENSORS``) are never a dropout, nor, with
    ``kits``, a sensor a device's kit lacks (see :func:`_dropout_sql`)."""
    sensors = fleet_sensor_columns(contract)
    return {
        "SENSOR_DROPOUT": _dropout_sql(sensors, g, kits),
        "OUT_OF_RANGE": " OR ".join(_out_of_range(c, g) for c in sensors if c.range) or "FALSE",
        "STUCK_SENSOR": "st.device_id IS NOT NULL",
        "DUPLICATE": "cp.device_id IS NOT NULL",
        "LATE": f"{g}late_arrival",
        "FUTURE_TIMESTAMP": f"{g}ts > {g}received_at + INTERVAL ({tolerance_minutes} * 60) SECOND",
        "UNIT_SUSPECT": "us.device_id IS NOT NULL",
        "UNREGISTERED_DEVICE": "r.device_id IS NOT NULL",
    }


# The devices whose kit lacks a fleet sensor (see kit_table), as a relation of clean_hour's
# connection; joined as ``k``.
KITS = "quality_kits"


def _register_kits(con: duckdb.DuckDBPyConnection, contract: Contract) -> list[str]:
    """Register the devices whose kit lacks a fleet sensor on ``con`` as :data:`KITS` (see
    :func:`kit_table`); returns the fleet sensors some device lacks (none: nothing
    registered)."""
    table = kit_table(contract)
    have = table.column_names
    kits = [c.name for c in fleet_sensor_columns(contract) if lacks_column(c.name) in have]
    if kits:
        con.register(KITS, table)
    return kits


def _dropout_sql(sensors: list, g: str, kits: list[str] | None = None) -> str:
    """SQL: a sensor value of the row aliased ``g`` is missing. With ``kits`` (the sensors some
    device's kit lacks) not one of a sensor the row's device lacks, by its :data:`KITS` row
    joined as ``k`` (a device it does not name lacks none)."""
    terms = []
    for c in sensors:
        missing = f"{g}{c.name} IS NULL"
        if kits and c.name in kits:
            missing = f"({missing} AND NOT coalesce(k.{lacks_column(c.name)}, FALSE))"
        terms.append(missing)
    return " OR ".join(terms) or "FALSE"


def _cleared_sql(sensors: list, kits: list[str], g: str) -> str:
    """SQL: the row aliased ``g`` (joined with its device's :data:`KITS` row as ``k``) has a
    missing value and none of a sensor its kit has: a dropout only when the kits are ignored."""
    return f"({_dropout_sql(sensors, g)}) AND NOT ({_dropout_sql(sensors, g, kits)})"


def _flag_counts(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    tolerance: float,
    kits: list[str],
    *,
    from_mask: bool = False,
    per_device: bool = False,
):
    """Rows per flag, rows per (sensor flag, sensor), sensor values present and clean rows.

    One scan of the good rows for the per-row flags (``from_mask``: read off their bits in
    ``flag_mask``, a sensor's range tested only on the rows out of range; ``per_device``: the
    sums of what :func:`_device_pass` counted per device); the flags found by joins are
    counted on their small tables. ``kits``: the sensors some device's kit lacks, looked up in
    :data:`KITS` by a join.
    """
    sensors = fleet_sensor_columns(contract)
    cond = _flag_conditions(contract, tolerance, g="", kits=kits)
    broken = {c.name: _out_of_range(c) for c in sensors if c.range}
    if from_mask:
        cond = {f: f"flag_mask & {flag_bit(f)} <> 0" for f in ROW_FLAGS}
        some = cond["OUT_OF_RANGE"]
        broken = {name: f"{some} AND {test}" for name, test in broken.items()}
    row_flags = list(ROW_FLAGS)
    # count(*) FILTER is 0 over an empty hour (count_if would be NULL)
    aggs = ["count(*)"] + [f"count(*) FILTER ({cond[f]})" for f in row_flags]
    aggs += [f"count({c.name})" for c in sensors]
    aggs += [f"count(*) FILTER ({broken[c.name]})" if c.range else "0" for c in sensors]
    # rows of the devices whose kit lacks a sensor: its missing values there are no dropout
    lacking = {c.name: f"coalesce(k.{lacks_column(c.name)}, FALSE)" for c in sensors}
    lacking = {name: test for name, test in lacking.items() if name in kits}
    aggs += [
        f"count(*) FILTER ({c.name} IS NULL AND {lacking[c.name]})" if c.name in lacking else "0"
        for c in sensors
    ]
    if per_device:
        aggs = ["sum(n_rows)"] + [f"sum(c_{f})" for f in row_flags]
        aggs += [f"sum(p_{c.name})" for c in sensors]
        aggs += [f"sum(o_{c.name})" if c.range else "0" for c in sensors]
        aggs += [
            f"sum(n_rows - p_{c.name}) FILTER ({lacking[c.name]})" if c.name in lacking else "0"
            for c in sensors
        ]
        aggs = [f"coalesce({a}, 0)" for a in aggs]
    source = "device_hour" if per_device else "good_rows"
    if kits:
        source += f" LEFT JOIN {KITS} k ON k.device_id = {source}.device_id"
    kept = "" if per_device else " WHERE NOT is_dup"
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {source}{kept}").fetchall()[0]
    n = int(row[0])
    counts = dict(zip(row_flags, map(int, row[1:5]), strict=True))
    small = con.execute(
        "SELECT (SELECT count(*) FROM (SELECT DISTINCT device_id, ts FROM stuck)), "
        "(SELECT count(*) FROM copied), "
        "(SELECT coalesce(sum(n_rows), 0) FROM (SELECT DISTINCT device_id, n_rows FROM unit_suspect)), "
        "(SELECT coalesce(sum(n_rows), 0) FROM unregistered)"
    ).fetchall()[0]
    counts.update(
        zip(
            ["STUCK_SENSOR", "DUPLICATE", "UNIT_SUSPECT", "UNREGISTERED_DEVICE"],
            map(int, small),
            strict=True,
        )
    )
    counts = {f: counts.get(f, 0) for f in quality_flag_names()}
    k = len(sensors)
    present = row[5 : 5 + k]
    out_of_range = row[5 + k : 5 + 2 * k]
    not_fitted = row[5 + 2 * k :]
    per_sensor: dict[tuple[str, str], int] = {}
    for c, p, o, x in zip(sensors, present, out_of_range, not_fitted, strict=True):
        per_sensor[("SENSOR_DROPOUT", c.name)] = n - int(p) - int(x)
        per_sensor[("OUT_OF_RANGE", c.name)] = int(o)
        per_sensor[("STUCK_SENSOR", c.name)] = 0
        per_sensor[("UNIT_SUSPECT", c.name)] = 0
    for sensor, rows in con.execute(
        "SELECT sensor, count(*) FROM (SELECT DISTINCT sensor, device_id, ts FROM stuck) GROUP BY 1"
    ).fetchall():
        per_sensor[("STUCK_SENSOR", sensor)] = int(rows)
    for sensor, rows in con.execute(
        "SELECT sensor, sum(n_rows) FROM unit_suspect GROUP BY 1"
    ).fetchall():
        per_sensor[("UNIT_SUSPECT", sensor)] = int(rows)
    return counts, per_sensor, int(sum(present)), n
