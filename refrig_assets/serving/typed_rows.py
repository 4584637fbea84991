"""The landing reader's typing of a small request's readings, in Arrow and numpy.

:func:`refrig_assets.ingestion.landing.readers.file_select_sql` types a file's rows: each
contract column cast from what the file holds, text parsed, NaN made missing, text limits and
plausible times checked, the source columns added. For a request of a few devices DuckDB spends
most of that statement's time planning it. :func:`typed_rows` gives the same rows for the
requests where every one of those rules has an exact Arrow/numpy form and no row breaks one:

* columns already of a compatible type (numbers, booleans, integer 0/1 booleans, microsecond
  timestamps) or entirely empty; a text column of numbers or booleans is left to the SQL, whose
  parsing it does not reproduce;
* reading times as text in one strict ISO 8601 form (``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with
  ``Z``, an offset ``±HH:MM`` or nothing, which the service's UTC connection reads as UTC);
* text values within their column's ``max_length`` and ``pattern`` as DuckDB itself judged them
  (asked once per value, then remembered);
* every reading time plausible, no key missing.

Anything else returns ``None`` and the request takes the typing SQL, which names the violations
(the same 422s). The column checks (missing, wrong type, too many columns) are the landing
reader's own, on the DuckDB types learned for the request's Arrow schema. Tests hold the two
equal on valid and malformed requests.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refrig_assets.core.contracts import Contract
from refrig_assets.ingestion.landing.readers import (
    FileLayout,
    _breaks_text_limits,
    _check_columns,
    _kind,
    landing_limits,
    plausible_timestamps,
    text_limits,
)

SOURCE = ("source_file", "source_row", "received_at", "late_arrival")
READ_ERROR = ("read_error", "read_error_column", "read_error_value")
# The one text form of a reading time typed here; anything else is parsed by DuckDB.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?)"
    r"(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?"
)
# The same form for Arrow's RE2 (ASCII digits only, ``$`` at the very end): a column whose
# every value matches it is typed by Arrow in one pass; any other goes to the loop over
# :data:`_ISO`, which gives the result it always gave.
_ISO_ARROW = (
    r"^(?P<base>[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?)(?P<zone>Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$"
)
US_PER_MINUTE = 60_000_000
_MAX_REMEMBERED = 1_000_000


class _Memo:
    """What DuckDB said once: the typed schema per contract and the text values known to be
    within their column's limits (per column and limits)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, tuple[Contract, pa.Schema]] = {}
        self.valid_text: dict[tuple[str, int | None, str | None], set[str]] = {}
        self.registry: pa.Table | None = None  # the registry whose ids were judged last


_MEMO = _Memo()


def remember_schema(contract: Contract, schema: pa.Schema) -> None:
    """Note the Arrow schema the typing SQL gave for ``contract`` (every column of it is cast
    to its contract or source type, so it does not depend on the request)."""
    with _MEMO.lock:
        _MEMO.schemas[id(contract)] = (contract, schema)


def _schema(contract: Contract) -> pa.Schema | None:
    found = _MEMO.schemas.get(id(contract))
    return found[1] if found is not None and found[0] is contract else None


def _within_limits(con: duckdb.DuckDBPyConnection, col, values: list[str]) -> bool:
    """Whether every value of text column ``col`` keeps its ``max_length`` and ``pattern``, as
    the typing SQL's own predicate judges it (values not seen before are asked once)."""
    key = (col.name, *text_limits(col))  # the limits themselves: a changed contract asks again
    with _MEMO.lock:
        known = _MEMO.valid_text.setdefault(key, set())
        unknown = sorted(set(values) - known)
    if not unknown:
        return True
    predicate = _breaks_text_limits(col, "v")
    assert predicate is not None
    con.register("typed_rows_text", pa.table({"v": pa.array(unknown, pa.string())}))
    try:
        [(broken,)] = con.execute(
            f"SELECT count(*) FROM typed_rows_text WHERE {predicate}"
        ).fetchall()
    finally:
        con.unregister("typed_rows_text")
    if broken:
        return False
    with _MEMO.lock:
        if len(known) + len(unknown) > _MAX_REMEMBERED:
            known.clear()
        known.update(unknown)
    return True


def remember_registered_text(
    con: duckdb.DuckDBPyConnection, contract: Contract, registered: pa.Table
) -> None:
    """Judge the text values of ``registered`` (the device registry's ids) against their
    contract column's ``max_length`` and ``pattern`` in one statement, and remember those
    within them: a registered device's first request then asks DuckDB nothing. Runs once per
    registry table (the same object until its file changes)."""
    with _MEMO.lock:
        if _MEMO.registry is registered:
            return
    for col in contract.columns:
        if col.type != "string" or col.name not in registered.column_names:
            continue
        predicate = _breaks_text_limits(col, "v")
        if predicate is None:
            continue
        con.register("typed_rows_text", pa.table({"v": registered.column(col.name)}))
        try:
            valid = con.execute(
                f"SELECT DISTINCT v FROM typed_rows_text WHERE v IS NOT NULL AND NOT {predicate}"
            ).fetchall()
        finally:
            con.unregister("typed_rows_text")
        key = (col.name, *text_limits(col))
        with _MEMO.lock:
            known = _MEMO.valid_text.setdefault(key, set())
            if len(known) + len(valid) > _MAX_REMEMBERED:
                known.clear()
            known.update(v for (v,) in valid[:_MAX_REMEMBERED])
    with _MEMO.lock:
        _MEMO.registry = registered  # the newest registry only: an older one is dropped


def _micros_of_text(column: pa.ChunkedArray) -> np.ndarray | None:
    """Epoch microseconds of reading times in the one ISO form above, or ``None``."""
    values = column.to_pylist()
    bases, offsets = [], np.zeros(len(values), np.int64)
    for i, v in enumerate(values):
        found = _ISO.fullmatch(v) if isinstance(v, str) else None
        if found is None:
            return None
        base, zone = found.groups()
        bases.append(base)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            offsets[i] = sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * US_PER_MINUTE
    try:
        local = np.array(bases, dtype="datetime64[us]").astype(np.int64)
    except ValueError:  # no such day (Feb 30): the SQL's TRY_CAST names it
        return None
    return local - offsets


def _micros_of_text_arrow(column: pa.ChunkedArray) -> np.ndarray | None:
    """:func:`_micros_of_text` of a column whose every value matches :data:`_ISO_ARROW`,
    computed by Arrow (a 100-device request's 6000 times without a regex call each); ``None``
    where a value does not match or Arrow does not read it (no such day), so that the loop
    judges it."""
    try:
        parts = pc.extract_regex(column, _ISO_ARROW)
        if parts.null_count:
            return None
        local = pc.cast(pc.struct_field(parts, "base"), pa.timestamp("us"))
    except pa.ArrowException:
        return None
    zones = pc.dictionary_encode(pc.struct_field(parts, "zone")).combine_chunks()
    shift = np.zeros(len(zones.dictionary), np.int64)
    for i, zone in enumerate(zones.dictionary.to_pylist()):
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            shift[i] = sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * US_PER_MINUTE
    micros = np.asarray(local.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    return micros - shift[np.asarray(zones.indices.to_numpy(zero_copy_only=False), np.int64)]


def _timestamps(column: pa.ChunkedArray, duck_type: str) -> pa.Array | None:
    kind = _kind(duck_type)
    if kind == "text":
        if column.null_count:
            return None
        micros = _micros_of_text_arrow(column)
        if micros is None:
            micros = _micros_of_text(column)
        return None if micros is None else pa.array(micros, pa.timestamp("us", "UTC"))
    t = column.type
    if pa.types.is_timestamp(t) and t.unit == "us":
        return column.combine_chunks().view(pa.int64()).view(pa.timestamp("us", "UTC"))
    return None


def _floats(column: pa.ChunkedArray, duck_type: str) -> pa.Array | None:
    t = column.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t)) or _kind(duck_type) == "text":
        return None
    values = column.combine_chunks().cast(pa.float64(), safe=False)
    # NaN is a missing value (the typing SQL's CASE WHEN isnan(...) THEN NULL)
    nan = pc.fill_null(pc.is_nan(values), False)
    return pc.if_else(nan, pa.scalar(None, pa.float64()), values)


def _bools(column: pa.ChunkedArray, duck_type: str) -> pa.Array | None:
    t = column.type
    if pa.types.is_boolean(t):
        return column.combine_chunks()
    if pa.types.is_integer(t) and _kind(duck_type) == "integer":
        values = column.combine_chunks()
        zero_one = pc.is_in(values, pa.array([0, 1], t))
        if not pc.all(pc.or_(zero_one, pc.is_null(values))).as_py():
            return None  # not 0 or 1: the SQL names the unparsable value
        return pc.equal(values, pa.scalar(1, t))
    return None


def _typed_column(
    con: duckdb.DuckDBPyConnection, col, column: pa.ChunkedArray, duck: str
) -> pa.Array | None:
    """One contract column as the typing SQL types it, or ``None`` where this module does not
    reproduce the SQL exactly or a row breaks a rule."""
    if column.null_count == len(column):
        return pa.nulls(len(column), _ARROW[col.type])
    if col.type == "string":
        if _kind(duck) != "text":
            return None
        values = column.combine_chunks().cast(pa.string())
        length, pattern = text_limits(col)
        if length is not None or pattern is not None:
            present = [v for v in values.to_pylist() if v is not None]
            if not _within_limits(con, col, present):
                return None
        return values
    if col.type == "timestamp":
        return _timestamps(column, duck)
    if col.type == "float":
        return _floats(column, duck)
    if col.type == "bool":
        return _bools(column, duck)
    if col.type == "int":
        t = column.type
        if pa.types.is_integer(t) and _kind(duck) == "integer" and t != pa.uint64():
            return column.combine_chunks().cast(pa.int64())
    return None


_ARROW = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", "UTC"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def _plausible(contract: Contract, micros: np.ndarray, received_at: datetime) -> bool:
    """Whether every reading time lies in ``landing.plausible_timestamps`` (``False`` also when
    the rule has a form only the SQL reads)."""
    earliest, hours = plausible_timestamps(contract)
    try:
        first = datetime.fromisoformat(earliest)
    except ValueError:
        return False
    seconds = hours * 3600
    if not float(seconds).is_integer():
        return False
    last = _epoch_micros(received_at) + int(seconds) * 1_000_000
    return bool(((micros >= _epoch_micros(first)) & (micros <= last)).all())


def _epoch_micros(moment: datetime) -> int:
    """Epoch microseconds of ``moment`` (a naive one read as UTC, as the connection does)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC if moment.tzinfo is not None else None)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _contract_columns(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    rel: str,
    types: dict[str, str],
    contract: Contract,
    received_at: datetime,
) -> dict[str, pa.Array] | None:
    """The contract columns of ``table`` typed, or ``None`` where a column or a row needs the
    SQL. Every rule here is judged column by column or value by value, so requests of one
    schema typed together give their rows typed one by one."""
    layout = FileLayout(rel, rel, "parquet", types, rel)  # type: ignore[arg-type]
    checked, rejection = _check_columns(layout, contract)
    if checked is None or rejection is not None:
        return None
    n = table.num_rows
    out: dict[str, pa.Array] = {}
    for col in contract.columns:
        if col.name not in types:
            out[col.name] = pa.nulls(n, _ARROW[col.type])
            continue
        typed = _typed_column(con, col, table.column(col.name), types[col.name])
        if typed is None:
            return None
        out[col.name] = typed
    for key in contract.primary_key:
        if out[key].null_count:
            return None
    ts = out.get("ts")
    if ts is None or not _plausible(contract, np.asarray(ts.view(pa.int64())), received_at):
        return None
    return out


def _source_columns(
    rels: list[str], sizes: list[int], received_at: datetime
) -> dict[str, pa.Array]:
    """The source columns of the typing SQL for requests ``rels`` of ``sizes`` rows, one after
    the other: the request's name, its row number, the receipt time, no late arrival and no
    read error."""
    n = sum(sizes)
    out: dict[str, pa.Array] = {
        "source_file": pa.array(np.repeat(np.array(rels, dtype=object), sizes), pa.string()),
        "source_row": pa.array(
            np.concatenate([np.arange(k, dtype=np.int64) for k in sizes])
            if sizes
            else np.zeros(0, np.int64)
        ),
        "received_at": pa.array(
            np.full(n, _epoch_micros(received_at), np.int64), pa.timestamp("us", "UTC")
        ),
        "late_arrival": pa.array(np.zeros(n, bool)),
    }
    for name in READ_ERROR:
        out[name] = pa.nulls(n, pa.string())
    return out


def typed_rows(
    con: duckdb.DuckDBPyConnection,
    tables: list[pa.Table],
    rels: list[str],
    column_types: list[dict[str, str] | None],
    contract: Contract,
    received_at: datetime,
) -> pa.Table | None:
    """The rows the typing SQL gives for requests ``tables`` (named ``rels``, with DuckDB's
    ``column_types`` of each), in its schema and row order, or ``None`` when a request needs
    the SQL (an unknown schema, a form typed only by DuckDB, a row breaking a rule). Requests
    of one Arrow schema (a gateway's usual form) are typed as one table."""
    schema = _schema(contract)
    if schema is None or not tables:
        return None
    max_columns, _ = landing_limits(contract)
    for table, types in zip(tables, column_types, strict=True):
        if types is None or table.num_columns > max_columns:
            return None
    types_of = cast(list[dict[str, str]], column_types)  # none is None (returned above)
    one_schema = all(t.schema == tables[0].schema for t in tables) and all(
        k == types_of[0] for k in types_of
    )
    groups = (
        [(tables, rels, types_of[0])]
        if one_schema
        else [([t], [r], k) for t, r, k in zip(tables, rels, types_of, strict=True)]
    )
    parts = []
    for members, names, types in groups:
        table = members[0] if len(members) == 1 else pa.concat_tables(members)
        columns = _contract_columns(con, table, names[0], types, contract, received_at)
        if columns is None:
            return None
        columns.update(_source_columns(names, [t.num_rows for t in members], received_at))
        try:
            parts.append(pa.table({f.name: columns[f.name] for f in schema}).cast(schema))
        except (KeyError, pa.ArrowInvalid):
            return None
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
