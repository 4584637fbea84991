"""What a score request carries, checked against the contracts, and its feature windows.

Readings (``sensor_readings``) go through exactly the batch path's code: the landing reader's
typing and row rules (:func:`refrig_assets.ingestion.landing.readers.file_select_sql`), the quality
rules hour by hour with the stuck-sensor tails carried from one hour to the next
(:func:`refrig_assets.quality.rules.clean_hour`) and the feature SQL
(:func:`refrig_assets.features.windows.feature_sql`), all on one DuckDB connection. A row the batch
path would quarantine makes the request invalid: :class:`RequestRejected` names the contract rule,
the row and the batch path's own message. Duplicate readings are kept once and flagged, as in
batch.

Precomputed windows (``device_features``) are checked column by column against that contract.
"""

from __future__ import annotations

import io
import itertools
import os
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.fleet_sensors import ENV as FLEET_SENSORS_ENV
from refrig_assets.core.fleet_sensors import record_stamp
from refrig_assets.detectors.base import sorted_rows
from refrig_assets.features.windows import feature_sql, window_minutes
from refrig_assets.ingestion.landing.readers import (
    FileLayout,
    _check_columns,
    file_select_sql,
    landing_limits,
)
from refrig_assets.quality.rules import clean_hour, quality_rules
from refrig_assets.serving.small_batch import clean_rows
from refrig_assets.serving.typed_rows import (
    remember_registered_text,
    remember_schema,
    typed_rows,
)
from refrig_assets.serving.window_features import window_features, window_frame

REQUEST = "request"  # the source_file of a request's readings in messages
# Quarantine rules that do not make a request invalid: the batch path keeps these rows too
# (one copy of a duplicate, flagged; per-sensor copies folded into one; the rows of a file with
# extra columns).
KEPT_RULES = frozenset({"duplicate_reading", "extra_column", "merged_reading"})
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Violation:
    """One broken contract rule: which dataset, rule, row (0-based; -1: the whole request),
    column and the message the batch path writes for it."""

    dataset: str
    rule: str
    row: int
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rule": self.rule,
            "row": self.row,
            "column": self.column,
            "message": self.message,
        }


class RequestRejected(ValueError):
    """The request breaks its contract (HTTP 422); ``violations`` name rule and row."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"{first.dataset}: {first.rule} at row {first.row}: {first.message}{more}")


def reject(dataset: str, rule: str, message: str, column: str | None = None, row: int = -1):
    """A :class:`RequestRejected` with one violation."""
    return RequestRejected([Violation(dataset, rule, row, column, message)])


# -- bodies -------------------------------------------------------------------------------------


def _column(values: list[Any]) -> pa.Array:
    """One JSON column as Arrow: its own type when the values share one, else text (each value
    is then parsed by the contract's typing rules, as CSV values are)."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or pa.types.is_null(array.type) or pa.types.is_nested(array.type):
        array = pa.array(
            [None if v is None else (v if isinstance(v, str) else _text(v)) for v in values],
            pa.string(),
        )
    return array


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_from_records(records: Any, dataset: str) -> pa.Table:
    """A list of JSON objects as an Arrow table (columns: every key seen, in first-seen order)."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise reject(dataset, "malformed_body", f"'{dataset}' must be a list of objects")
    # every key seen, in first-seen order: one dict over all the keys (a dict per record cost a
    # 100-device request milliseconds)
    names = dict.fromkeys(itertools.chain.from_iterable(records))
    return pa.table({n: _column([r.get(n) for r in records]) for n in names})


def table_from_bytes(body: bytes, content_type: str, dataset: str) -> pa.Table:
    """A Parquet file or an Arrow IPC stream/file body as an Arrow table."""
    try:
        if body[:4] == PARQUET_MAGIC or "parquet" in content_type:
            return pq.read_table(io.BytesIO(body))
        try:
            return pa.ipc.open_stream(io.BytesIO(body)).read_all()
        except pa.ArrowInvalid:
            return pa.ipc.open_file(io.BytesIO(body)).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise reject(
            dataset,
            "unreadable_file",
            f"{REQUEST}: cannot be read as Parquet or Arrow ({exc})",
        ) from exc


# -- readings → features ------------------------------------------------------------------------


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The rows of a query as Arrow. Run with ``execute``, not ``sql()``: a relation is bound
    once to learn its columns and then planned again to run, and that second planning of a
    wide statement costs a small request more than its rows."""
    table = con.execute(sql).to_arrow_table()
    assert table is not None  # a query always has a result
    return table


def _hours(con: duckdb.DuckDBPyConnection, typed: str) -> list[Any]:
    """The hours a request's readings fall in (rows without a usable time join the first; a
    request without any has one hour, ``None``)."""
    rows = con.execute(
        f"SELECT DISTINCT date_trunc('hour', ts) AS h FROM {typed} WHERE ts IS NOT NULL ORDER BY h"
    ).fetchall()
    return [h for (h,) in rows] or [None]


_COLUMN_TYPES: dict[pa.Schema, dict[str, str]] = {}
_ROW = pa.field("_row", pa.int64())  # the 0-based row number a registered request carries


def _column_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema, view: str) -> dict[str, str]:
    """DuckDB's type of each column of ``view`` (a registered table of Arrow ``schema``):
    asked once per schema, since it depends on nothing else (requests from one gateway share
    theirs)."""
    types = _COLUMN_TYPES.get(schema)
    if types is None:
        desc = con.execute(f"DESCRIBE SELECT * EXCLUDE (_row) FROM {view}").fetchall()
        types = {d[0]: d[1] for d in desc}
        if len(_COLUMN_TYPES) < 256:  # bounded: a stream of odd schemas is asked each time
            _COLUMN_TYPES[schema] = types
    return dict(types)


def _request_layout(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    rel: str,
    view: str,
    contract: Contract,
    views: list[str],
) -> FileLayout:
    """Register one request's rows on ``con`` as ``view`` (noted in ``views``, to unregister)
    and check its columns the way the landing reader checks a file's (missing, wrong type,
    extra, too many)."""
    dataset = contract.dataset
    max_columns, _ = landing_limits(contract)
    if table.num_columns > max_columns:
        raise reject(
            dataset,
            "too_many_columns",
            f"{REQUEST}: {table.num_columns} columns, more than the {max_columns} allowed "
            "(landing.max_columns in contracts/sensor_readings.yaml)",
        )
    table = table.append_column(_ROW, pa.array(np.arange(table.num_rows), pa.int64()))
    con.register(view, table)
    views.append(view)
    layout = FileLayout(Path(rel), rel, "parquet", _column_types(con, table.schema, view), view)
    checked, rejection = _check_columns(layout, contract)
    if checked is None:
        assert rejection is not None
        message = rejection.message.replace(f"{rel}:", f"{REQUEST}:", 1)
        raise reject(dataset, rejection.rule, message, rejection.column)
    return checked


def readings_features_many(
    con: duckdb.DuckDBPyConnection,
    tables: list[pa.Table],
    registered: pa.Table,
    received_at: datetime,
    *,
    cadence_seconds: int | None = None,
    contract: Contract | None = None,
    small: bool = True,
    in_memory_max_rows: int = 0,
) -> list[pd.DataFrame | RequestRejected]:
    """Feature windows of several requests in one pass of the batch path's SQL: per request its
    ``device_features`` rows, or the :class:`RequestRejected` naming its violations.

    The requests must not share a device: every rule of the quality step and every feature is
    computed per device (or per source file, which is the request), so scoring them together
    gives each one exactly what it would get alone. ``registered`` holds the registry's
    ``device_id`` (others are flagged UNREGISTERED_DEVICE, as in batch). ``con`` is a connection
    of :func:`refrig_assets.core.duck.connect` used by one caller at a time.

    ``small`` lets requests the batch path would keep whole (see
    :mod:`refrig_assets.serving.small_batch`) skip ``clean_hour``'s statements: the same rules
    in memory, then the same feature SQL (computed in memory up to ``in_memory_max_rows`` clean
    rows); ``False`` always runs ``clean_hour``."""
    contract = contract or load_contract("sensor_readings")
    if small:
        found = small_batch_features(
            con,
            tables,
            registered,
            received_at,
            cadence_seconds=cadence_seconds,
            contract=contract,
            in_memory_max_rows=in_memory_max_rows,
        )
        if found is not None:
            return list(found)
    dataset = contract.dataset
    results: list[pd.DataFrame | RequestRejected | None] = [None] * len(tables)
    selects: list[str] = []
    index: dict[str, int] = {}
    registered_views: list[str] = []
    for i, table in enumerate(tables):
        rel = REQUEST if len(tables) == 1 else f"{REQUEST}-{i}"
        try:
            layout = _request_layout(
                con, table, rel, f"request_rows_{i}", contract, registered_views
            )
        except RequestRejected as exc:
            results[i] = exc
            continue
        selects.append(file_select_sql(layout, contract, received_at, late=False))
        index[rel] = i
    violations: dict[int, list[Violation]] = {}
    frames = []
    if selects:
        con.execute("CREATE OR REPLACE TEMP TABLE request_typed AS " + " UNION ALL ".join(selects))
        tails: str | None = None
        hours = _hours(con, "request_typed")
        for n, hour in enumerate(hours):
            source = "request_typed"  # one hour: every row is that hour's
            if len(hours) > 1:
                where = f"date_trunc('hour', ts) = TIMESTAMPTZ '{hour.isoformat()}'"
                if n == 0:
                    where += " OR ts IS NULL"
                con.execute(
                    "CREATE OR REPLACE TEMP VIEW request_hour AS "
                    f"SELECT * FROM request_typed WHERE {where}"
                )
                source = "request_hour"
            clean_sql, result = clean_hour(con, source, contract, registered, previous_tails=tails)
            for q in result.quarantine.itertuples(index=False):
                if q.rule in KEPT_RULES:
                    continue
                message = str(q.message).replace(f"{q.source_file} row ", f"{REQUEST} row ", 1)
                violations.setdefault(index[q.source_file], []).append(
                    Violation(dataset, q.rule, int(q.row), q.column, message)
                )
            con.execute(f"CREATE OR REPLACE TEMP TABLE request_clean AS {clean_sql}")
            windows = feature_sql("request_clean", cadence_seconds=cadence_seconds)
            if len(index) == 1:  # one request: every window is its own
                found = _arrow(con, windows)
                found = found.append_column(
                    "_request", pa.array([next(iter(index))] * found.num_rows, pa.string())
                )
            else:
                found = con.sql(
                    f"SELECT f.*, s.source_file AS _request FROM ({windows}) f JOIN "
                    "(SELECT DISTINCT device_id, source_file FROM request_clean) s USING (device_id)"
                ).to_arrow_table()
            frames.append(found)
            if n + 1 < len(hours):  # the stuck-sensor runs the next hour continues
                con.execute(f"CREATE OR REPLACE TEMP TABLE request_tails AS {result.tails_sql}")
                tails = "request_tails"
    for view in registered_views:
        con.unregister(view)
    features = pa.concat_tables(frames).to_pandas() if frames else pd.DataFrame()
    for rel, i in index.items():
        if i in violations:
            found = sorted(violations[i], key=lambda v: (v.row, v.rule))
            results[i] = RequestRejected(found)
        else:
            results[i] = _own_windows(features, rel)
    return [r if r is not None else pd.DataFrame() for r in results]


def _own_windows(features: pd.DataFrame, rel: str | None) -> pd.DataFrame:
    """The windows of request ``rel`` (column ``_request``; ``None``: all of them, a lone
    request's) in batch files' form: sorted by device and window, window bounds in the
    contracts' zone."""
    if features.empty:
        return features
    mine = features
    if rel is not None:
        mine = features[features["_request"] == rel].drop(columns=["_request"])
    # The frame is this call's own (read for it, or selected from the pass's): rows in order
    # keep their arrays, only the index is new.
    mine = sorted_rows(mine, copy=False)
    for column in ("window_start", "window_end"):  # the contracts' zone, as in batch files
        mine[column] = mine[column].dt.tz_convert("UTC")
    return mine


_FEATURE_VIEWS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[str, str]] = (
    weakref.WeakKeyDictionary()
)


def _feature_view(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """A temporary view on ``con`` of the feature SQL text ``sql``, created once per connection
    and text: a request then binds the stored view instead of parsing the long SQL again (the
    text carries the window length and cadence, so a changed setting is a new view)."""
    views = _FEATURE_VIEWS.setdefault(con, {})
    name = views.get(sql)
    if name is None:
        name = f"request_features_{len(views)}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        views[sql] = name
    return name


_FEATURE_SQL: dict[tuple[int, int, int, int | None, str | None, tuple[int, int] | None], str] = {}


def _clean_feature_sql(contract: Contract, cadence_seconds: int | None) -> str:
    """``feature_sql`` over ``request_clean_rows``, written once per contracts, window length,
    cadence and fleet sensors (its text is what a request's statement and schema are keyed
    on)."""
    features = load_contract("device_features")
    key = (
        id(contract),
        id(features),
        window_minutes(None, cadence_seconds),
        cadence_seconds,
        os.environ.get(FLEET_SENSORS_ENV),
        record_stamp(),  # the sensors the fleet reported and each device's kit
    )
    sql = _FEATURE_SQL.get(key)
    if sql is None:
        sql = feature_sql(
            "request_clean_rows",
            cadence_seconds=cadence_seconds,
            readings=contract,
            features=features,
        )
        if len(_FEATURE_SQL) < 64:
            _FEATURE_SQL[key] = sql
    return sql


_FEATURE_SCHEMAS: dict[tuple[str, pa.Schema], pa.Schema] = {}


def _feature_schema(con: duckdb.DuckDBPyConnection, sql: str, clean: pa.Schema) -> pa.Schema:
    """The Arrow schema the feature SQL ``sql`` gives for clean rows of schema ``clean``
    (registered as ``request_clean_rows``), learned once from DuckDB over no rows."""
    key = (sql, clean)
    schema = _FEATURE_SCHEMAS.get(key)
    if schema is None:
        con.register("request_clean_rows", clean.empty_table())
        try:
            schema = _arrow(con, f"SELECT * FROM {_feature_view(con, sql)}").schema
        finally:
            con.unregister("request_clean_rows")
        if len(_FEATURE_SCHEMAS) < 256:  # bounded, as _COLUMN_TYPES
            _FEATURE_SCHEMAS[key] = schema
    return schema


def _typed_by_sql(
    con: duckdb.DuckDBPyConnection,
    tables: list[pa.Table],
    rels: list[str],
    contract: Contract,
    received_at: datetime,
) -> pa.Table | None:
    """The requests' rows typed by the landing reader's SQL (``None``: a column rejected)."""
    views: list[str] = []
    selects = []
    try:
        for i, (table, rel) in enumerate(zip(tables, rels, strict=True)):
            try:
                layout = _request_layout(con, table, rel, f"request_rows_{i}", contract, views)
            except RequestRejected:
                return None
            selects.append(file_select_sql(layout, contract, received_at, late=False))
        return _arrow(con, " UNION ALL ".join(selects))
    finally:
        for view in views:
            con.unregister(view)


def small_batch_features(
    con: duckdb.DuckDBPyConnection,
    tables: list[pa.Table],
    registered: pa.Table,
    received_at: datetime,
    **options: Any,
) -> list[pd.DataFrame] | None:
    """Per request its windows of :func:`small_batch_windows` (same arguments; its rows of the
    pass's frame, fresh index), or ``None`` where that gives ``None``."""
    found = small_batch_windows(con, tables, registered, received_at, **options)
    if found is None:
        return None
    features, owner = found
    if len(tables) == 1 or features.empty:
        return [features] * len(tables)
    return [features[owner == i].reset_index(drop=True) for i in range(len(tables))]


def small_batch_windows(
    con: duckdb.DuckDBPyConnection,
    tables: list[pa.Table],
    registered: pa.Table,
    received_at: datetime,
    *,
    cadence_seconds: int | None = None,
    contract: Contract | None = None,
    in_memory_max_rows: int = 0,
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Feature windows of requests that the batch path would keep whole, with the quality
    rules in memory (:func:`refrig_assets.serving.small_batch.clean_rows`) between the landing
    reader's typing SQL and the feature SQL: two statements instead of some thirty. Up to
    ``in_memory_max_rows`` rows the typing is done in memory where it is exact
    (:func:`refrig_assets.serving.typed_rows.typed_rows`; else the typing SQL) and the feature
    SQL's definitions are computed in memory too
    (:func:`refrig_assets.serving.window_features.window_features`), typed as the SQL types
    them. ``None`` when any request needs the batch path's judgement (a rejected column or row,
    a duplicate, more than one hour, a NaN storm); the caller then runs
    :func:`readings_features_many`'s batch form, which names the violations.

    The windows of all the requests come in one frame, in batch files' form (sorted by device
    and window start, window bounds in the contracts' zone), with the index of the request each
    row belongs to (the requests share no device): a pass scores them without splitting them
    per request and putting them together again."""
    contract = contract or load_contract("sensor_readings")
    rels = [REQUEST if len(tables) == 1 else f"{REQUEST}-{i}" for i in range(len(tables))]
    typed = None
    if sum(t.num_rows for t in tables) <= in_memory_max_rows:
        remember_registered_text(con, contract, registered)
        known = [_COLUMN_TYPES.get(t.schema.append(_ROW)) for t in tables]
        typed = typed_rows(con, tables, rels, known, contract, received_at)
    if typed is None:
        typed = _typed_by_sql(con, tables, rels, contract, received_at)
        if typed is None:
            return None
        remember_schema(contract, typed.schema)
    clean = clean_rows(typed, contract, registered, quality_rules())
    if clean is None:
        return None
    sql = _clean_feature_sql(contract, cadence_seconds)
    features = None
    if clean.num_rows <= in_memory_max_rows:
        schema = _feature_schema(con, sql, clean.schema)
        # the frame straight from the numpy windows: the cast table's to_pandas, in order, UTC
        features = window_frame(clean, schema, cadence_seconds=cadence_seconds, readings=contract)
        if features is None:
            columns = window_features(clean, cadence_seconds=cadence_seconds, readings=contract)
            found = pa.table(columns).cast(schema)
    else:
        con.register("request_clean_rows", clean)
        try:
            found = _arrow(con, f"SELECT * FROM {_feature_view(con, sql)}")
        finally:
            con.unregister("request_clean_rows")
    if features is None:
        features = _own_windows(found.to_pandas(), None)
    if len(rels) == 1 or features.empty:  # a lone request: every window is its own
        return features, np.zeros(len(features), np.int64)
    request_of = dict(
        zip(
            clean.column("device_id").to_pylist(),
            clean.column("source_file").to_pylist(),
            strict=True,
        )
    )
    index = {rel: i for i, rel in enumerate(rels)}
    owner = np.array([index[request_of[d]] for d in features["device_id"]], np.int64)
    return features, owner


def readings_features(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    registered: pa.Table,
    received_at: datetime,
    *,
    cadence_seconds: int | None = None,
    contract: Contract | None = None,
) -> pd.DataFrame:
    """Feature windows (``device_features``) of the readings of one request, computed by the
    batch path's code (see :func:`readings_features_many`). Raises :class:`RequestRejected` for
    a row or a column the batch path would quarantine."""
    [result] = readings_features_many(
        con, [table], registered, received_at, cadence_seconds=cadence_seconds, contract=contract
    )
    if isinstance(result, RequestRejected):
        raise result
    return result


# -- precomputed windows ------------------------------------------------------------------------


def _coerced(series: pd.Series, kind: str) -> pd.Series:
    """A column as its contract type; values that do not parse become missing. Columns that
    already have the type (Parquet, Arrow, JSON numbers) are only converted, not parsed."""
    if kind == "timestamp":
        if pd.api.types.is_datetime64_any_dtype(series):
            return (
                series.dt.tz_localize("UTC")
                if series.dt.tz is None
                else series.dt.tz_convert("UTC")
            )
        return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    if kind in ("float", "int"):
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return series.astype("float64")
        # text "1" parses as an integer: the contract's float (and int, until checked) is float
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series
        words = {"true": True, "false": False}
        return series.map(
            lambda v: v if isinstance(v, bool) or v is None else words.get(str(v).strip().lower())
        )
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        return series
    return series.astype(str).where(series.notna(), None)


def _plain_number(series: pd.Series) -> bool:
    """A numeric column that is not bool: :func:`_coerced` would only convert it to float."""
    dtype = series.dtype
    return isinstance(dtype, np.dtype) and dtype.kind in "iuf"


def windows_frame(
    table: pa.Table, required: list[str], contract: Contract | None = None
) -> pd.DataFrame:
    """Precomputed windows checked against the ``device_features`` contract: the columns the
    served detectors read (``required``) and the key must be there; every contract column present
    must parse as its type, be non-null where the contract says so and lie in its range.
    Raises :class:`RequestRejected` naming rule, row and column (the first row of each)."""
    contract = contract or load_contract("device_features")
    dataset = contract.dataset
    frame = table.to_pandas()
    needed = list(dict.fromkeys([*contract.primary_key, "window_end", *required]))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise reject(
            dataset,
            "missing_column",
            f"{REQUEST}: missing column(s) {', '.join(map(repr, missing))} required by "
            "contracts/device_features.yaml",
            missing[0],
        )
    violations: list[Violation] = []

    def first(rule: str, rows: np.ndarray, column: str | None, message: str) -> None:
        hits = np.flatnonzero(rows)
        if len(hits):
            row = int(hits[0])
            violations.append(
                Violation(
                    dataset, rule, row, column, f"{REQUEST} row {row}: " + message.format(row=row)
                )
            )

    out: dict[str, pd.Series] = {}
    for col in contract.columns:
        if col.name not in frame.columns:
            continue
        raw = frame[col.name]
        if col.type in ("float", "int") and _plain_number(raw):
            # already numbers (Parquet, Arrow, JSON): nothing to parse, one array instead of
            # a chain of Series operations per column
            numbers = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            value = pd.Series(numbers, index=raw.index, name=col.name)
            present = ~np.isnan(numbers)
            missing_value = ~present
        else:
            value = _coerced(raw, col.type)
            present = raw.notna().to_numpy()
            missing_value = value.isna().to_numpy()
        bad = missing_value & present
        if bad.any():
            shown = raw.iloc[int(np.flatnonzero(bad)[0])]
            first(
                "unparsable_value",
                bad,
                col.name,
                f"column {col.name!r} value {shown!r} cannot be parsed as {col.type}",
            )
        if not col.nullable:
            first("missing_value", ~present, col.name, f"required column {col.name!r} is empty")
        if col.range and col.type in ("float", "int"):
            lo, hi = col.range
            numbers = value.to_numpy(dtype=float, na_value=np.nan)
            outside = (numbers < lo) | (numbers > hi)
            if outside.any():
                shown = numbers[int(np.flatnonzero(outside)[0])]
                first(
                    "out_of_range",
                    outside,
                    col.name,
                    f"column {col.name!r} value {shown!r} is outside [{lo}, {hi}] (contracts/device_features.yaml)",
                )
        if col.type == "int" and not missing_value.any():
            value = value.astype("int64")
        out[col.name] = value
    keys = pd.DataFrame({k: out[k] for k in contract.primary_key})
    first(
        "duplicate_key",
        keys.duplicated().to_numpy(),
        None,
        f"a second window for the same ({', '.join(contract.primary_key)})",
    )
    if violations:
        raise RequestRejected(sorted(violations, key=lambda v: (v.row, v.rule)))
    return pd.DataFrame(out)
