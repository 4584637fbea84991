"""Opening one landing file and reading its rows in the typed shape of ``sensor_readings``.

:func:`open_file` loads a Parquet or CSV file (plain, gzip or zstd) into DuckDB and checks its
columns against the contract, returning a :class:`FileLayout` or a :class:`FileRejection` naming
the rule the file breaks (any other kind of file is an ``unsupported_file``).
:func:`file_select_sql` turns a layout into a SELECT of typed rows that keep their
``source_file``/``source_row``; values that do not parse, reading times outside the plausible
range (``implausible_timestamp``), text values breaking a column's ``max_length`` or ``pattern``
(``invalid_<column>``, e.g. ``invalid_device_id``) and CSV lines DuckDB rejected become rows with
``read_error`` set instead of being dropped. A file wider than ``landing.max_columns`` or larger
than ``landing.max_file_bytes`` is rejected before its rows are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from refrig_assets.core.contracts import ARROW_TYPES, Contract, ContractError
from refrig_assets.core.duck import sql_str
from refrig_assets.core.partition_range import ENV_START, KEY_FORMAT, partition_range
from refrig_assets.ingestion.landing.discovery import READING_SUFFIXES, file_kind, is_compressed

PARQUET_MAGIC = b"PAR1"
CONTRACT_FILE = "contracts/sensor_readings.yaml"
# Columns every typed reading carries after the contract's own columns.
SOURCE_COLUMNS: dict[str, str] = {
    "source_file": "VARCHAR",
    "source_row": "BIGINT",
    "received_at": "TIMESTAMPTZ",
    "late_arrival": "BOOLEAN",
    "read_error": "VARCHAR",
    "read_error_column": "VARCHAR",
    "read_error_value": "VARCHAR",
}
# Delimiters recognised when a CSV header comes out as one column (wrong-delimiter files).
OTHER_DELIMITERS = (";", "\t", "|", ",")
INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)
# Extra column names spelled out in a notice or message (the rest are counted).
NAMES_SHOWN = 5
# Longest offending text value quoted in a quarantine row (the rest is cut, marked by "…").
VALUE_SHOWN = 200


# Byte order marks of UTF-16 text (spreadsheet "Unicode text" exports): `refrig import` reads
# such files; the landing zone reads UTF-8 only and names the encoding when it meets one.
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class FileRejection:
    """A whole landing file (or one of its columns) that could not be used, with the rule."""

    source_file: str
    rule: str
    message: str
    column: str | None = None


@dataclass
class FileLayout:
    """How to read one landing file: its format and the columns it has, with their types."""

    path: Path
    rel: str
    kind: str  # "parquet" | "csv"
    types: dict[str, str]  # column -> DuckDB type, in file order
    relation: str  # SQL relation with the file's raw rows and a 0-based ``_row``
    rejects: str | None = None  # CSV: table of rejected lines (line, error_type, csv_line, ...)
    ends_with_newline: bool = True
    header_lines: int = 0
    data_lines: int = 0  # CSV: accepted + rejected data lines
    # per text column with a max_length or pattern: its values that break them, when known
    # (then each row is looked up instead of tested: see :func:`text_breaks`)
    breaks: dict[str, list[str]] | None = None


def landing_rules(contract: Contract) -> dict:
    """The ``landing:`` block of the sensor_readings contract (CSV dialect, file rules)."""
    return contract.settings.get("landing", {})


def landing_limits(contract: Contract) -> tuple[int, int]:
    """(most columns, most bytes on disk) a landing file may have: ``landing.max_columns`` and
    ``landing.max_file_bytes`` of the contract; a file over either is rejected unread."""
    rules = landing_rules(contract)
    try:
        return int(rules["max_columns"]), int(rules["max_file_bytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(
            f"{CONTRACT_FILE}: landing.max_columns and landing.max_file_bytes must be integers "
            f"({exc!r})"
        ) from exc


def names_text(names: list[str], shown: int = NAMES_SHOWN) -> str:
    """``'a', 'b', 'c' and 12 more``: the first ``shown`` names, the rest counted."""
    text = ", ".join(repr(n) for n in names[:shown])
    return f"{text} and {len(names) - shown} more" if len(names) > shown else text


def text_limits(col) -> tuple[int | None, str | None]:
    """(max_length, pattern) of a string column of the contract (None where not set)."""
    length, pattern = col.extra.get("max_length"), col.extra.get("pattern")
    return (int(length) if length is not None else None), (
        str(pattern) if pattern is not None else None
    )


def plausible_timestamps(contract: Contract) -> tuple[str, float]:
    """(earliest reading time, hours a reading may lie after its file arrived) from
    ``landing.plausible_timestamps`` of the contract; a reading outside is implausible.

    When the partitions are declared to start earlier (``REFRIG_PARTITION_START``, an older
    history), that start is the earliest instead: a reading inside the declared partitions is
    plausible (see :func:`lowered_earliest`)."""
    earliest, hours = _plausible_rule(contract)
    return declared_earliest(earliest) or earliest, hours


def lowered_earliest(contract: Contract) -> str | None:
    """The partitions' declared start when it, not the contract, sets the earliest plausible
    reading time (see :func:`plausible_timestamps`); None when the contract's value holds."""
    return declared_earliest(_plausible_rule(contract)[0])


def _plausible_rule(contract: Contract) -> tuple[str, float]:
    rule = landing_rules(contract).get("plausible_timestamps")
    if not isinstance(rule, dict) or not {"earliest", "max_hours_after_arrival"} <= set(rule):
        raise ContractError(
            f"{CONTRACT_FILE}: landing.plausible_timestamps needs earliest and "
            "max_hours_after_arrival"
        )
    return str(rule["earliest"]), float(rule["max_hours_after_arrival"])


def declared_earliest(contract_earliest: str) -> str | None:
    """The partitions' declared start (``REFRIG_PARTITION_START``, as the partition range
    reads it) when it lies before ``contract_earliest``, as an ISO time; None otherwise (not
    declared, or not earlier)."""
    if not os.environ.get(ENV_START):  # not declared: the recorded range is not read (~0.6 ms)
        return None
    declared = partition_range()
    start = datetime.strptime(declared.start, KEY_FORMAT).replace(tzinfo=UTC)
    return start.isoformat() if start < datetime.fromisoformat(contract_earliest) else None


def plausible_sql(contract: Contract, ts: str, received_at: str) -> str:
    """SQL: ``ts`` is a plausible reading time (false for NULL)."""
    earliest, hours = plausible_timestamps(contract)
    return (
        f"coalesce({ts} >= TIMESTAMPTZ {sql_str(earliest)} AND "
        f"{ts} <= {received_at} + INTERVAL ({hours} * 3600) SECOND, FALSE)"
    )


def _first_line(exc: Exception, path: Path, rel: str) -> str:
    """The first line of a DuckDB error, naming the file by its landing path."""
    return str(exc).strip().splitlines()[0].replace(str(path), rel)


def open_file(
    con: duckdb.DuckDBPyConnection, path: Path, landing_dir: Path, contract: Contract, tag: str
) -> tuple[FileLayout | None, FileRejection | None]:
    """Open one file in ``con`` (CSV files are loaded into a temp table with their rejected
    lines) and check its shape against the contract. Returns (layout, None) or (None, rejection).
    """
    rel = str(path.relative_to(landing_dir))
    kind = file_kind(path)
    if kind is None:
        return None, FileRejection(
            rel,
            "unsupported_file",
            f"{rel}: not a readings file (the landing zone reads "
            f"{', '.join(READING_SUFFIXES)}); not read",
        )
    size = path.stat().st_size
    if size == 0:
        return None, FileRejection(rel, "empty_file", f"{rel}: file is empty (0 bytes)")
    max_columns, max_bytes = landing_limits(contract)
    if size > max_bytes:
        return None, FileRejection(
            rel,
            "file_too_large",
            f"{rel}: {size} bytes, more than the {max_bytes} allowed "
            f"(landing.max_file_bytes in {CONTRACT_FILE}); not read",
        )
    p = sql_str(str(path))
    if kind == "parquet":
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
        if head == PARQUET_MAGIC and tail != PARQUET_MAGIC:
            return None, FileRejection(
                rel,
                "truncated_file",
                f"{rel}: Parquet file is truncated (it ends before the closing 'PAR1' footer)",
            )
        relation = f"read_parquet({p}, file_row_number = true)"
        try:
            desc = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        except duckdb.Error as exc:
            return None, FileRejection(
                rel,
                "unreadable_file",
                f"{rel}: cannot be read as Parquet ({_first_line(exc, path, rel)})",
            )
        types = {d[0]: d[1] for d in desc if d[0] != "file_row_number"}
        if len(types) > max_columns:
            return None, _too_wide(rel, len(types), max_columns)
        layout = FileLayout(
            path,
            rel,
            "parquet",
            types,
            f"(SELECT * EXCLUDE (file_row_number), file_row_number AS _row FROM {relation})",
        )
    else:
        csv = landing_rules(contract).get("csv", {})
        delim = csv.get("delimiter", ",")
        header = "true" if csv.get("header", True) else "false"
        table, rejects = f"csv_{tag}", f"csv_rejects_{tag}"
        width = _csv_width(con, p, header, delim)
        if width is not None and width > max_columns:
            return None, _too_wide(rel, width, max_columns)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, "
                f"CAST(row_number() OVER () - 1 AS BIGINT) AS _k FROM read_csv({p}, "
                f"all_varchar = true, header = {header}, delim = {sql_str(delim)}, "
                f"ignore_errors = true, store_rejects = true, rejects_table = '{rejects}', "
                f"rejects_scan = 'csv_scan_{tag}')"
            )
        except duckdb.Error as exc:
            msg = _first_line(exc, path, rel)
            rule = (
                "not_utf8"
                if "unicode" in msg.lower() or "utf" in msg.lower()
                else "unreadable_file"
            )
            what = "is not valid UTF-8" if rule == "not_utf8" else "cannot be read as CSV"
            return None, FileRejection(rel, rule, f"{rel}: {what} ({msg})")
        desc = con.execute(f"DESCRIBE SELECT * EXCLUDE (_k) FROM {table}").fetchall()
        types = {d[0]: d[1] for d in desc}
        if any(ch < " " and ch != "\t" for name in types for ch in name):
            return None, _binary_header(path, rel)
        if len(types) == 1:
            only = next(iter(types))
            other = [d for d in OTHER_DELIMITERS if d != delim and d in only]
            if other:
                return None, FileRejection(
                    rel,
                    "wrong_delimiter",
                    f"{rel}: header is a single column {only!r}; the file looks "
                    f"{other[0]!r}-delimited but {CONTRACT_FILE} expects {delim!r}",
                )
        ends_nl = True  # a compressed file's last byte is not its text's (cut lines: malformed)
        if not is_compressed(path):
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                ends_nl = fh.read(1) == b"\n"
        lines = con.execute(
            f"SELECT (SELECT count(*) FROM {table}) + (SELECT count(DISTINCT line) FROM {rejects})"
        ).fetchall()[0][0]
        layout = FileLayout(
            path,
            rel,
            "csv",
            types,
            _csv_relation(con, table, rejects, 1 if header == "true" else 0),
            rejects=rejects,
            ends_with_newline=ends_nl,
            header_lines=1 if header == "true" else 0,
            data_lines=lines,
        )
    checked, rejection = _check_columns(layout, contract)
    if checked is not None:
        checked.breaks = text_breaks(con, checked, contract)
    return checked, rejection


# Most distinct breaking values a file's rows are looked up in; more and each row is tested.
MOST_BREAKS_LISTED = 1000


def text_breaks(
    con: duckdb.DuckDBPyConnection, layout: FileLayout, contract: Contract
) -> dict[str, list[str]] | None:
    """Per text column with a ``max_length`` or ``pattern``: the file's distinct values that
    break them (one pass over the column's distinct values: a fleet's ids repeat every
    reading, so testing each row repeats the same pattern match). None when a column has more
    than :data:`MOST_BREAKS_LISTED` such values: its rows are then tested one by one."""
    found: dict[str, list[str]] = {}
    for c in contract.columns:
        if c.name not in layout.types:
            continue
        expr = _typed(c, layout.types[c.name])[0]
        test = _breaks_text_limits(c, "v")
        if test is None:
            continue
        # the test as an aggregate's FILTER: as a WHERE it would be pushed into the scan and
        # run on every row again
        values = (
            con.execute(
                f"SELECT list(v ORDER BY v) FILTER (WHERE {test}) "
                f"FROM (SELECT DISTINCT {expr} AS v FROM {layout.relation})"
            ).fetchall()[0][0]
            or []
        )
        # a control character stays out of SQL text: such a column is tested row by row
        if len(values) > MOST_BREAKS_LISTED or any(ch < " " for v in values for ch in str(v)):
            return None
        found[c.name] = [str(v) for v in values]
    return found


def _too_wide(rel: str, width: int, max_columns: int) -> FileRejection:
    return FileRejection(
        rel,
        "too_many_columns",
        f"{rel}: {width} columns, more than the {max_columns} allowed "
        f"(landing.max_columns in {CONTRACT_FILE}); not read",
    )


def _csv_width(con: duckdb.DuckDBPyConnection, p: str, header: str, delim: str) -> int | None:
    """Columns of a CSV file from its first lines only (None when they cannot be read: the full
    read then names the problem)."""
    try:
        return len(
            con.execute(
                f"DESCRIBE SELECT * FROM read_csv({p}, all_varchar = true, header = {header}, "
                f"delim = {sql_str(delim)}, ignore_errors = true, sample_size = 1)"
            ).fetchall()
        )
    except duckdb.Error:
        return None


def _csv_relation(
    con: duckdb.DuckDBPyConnection, table: str, rejects: str, header_lines: int
) -> str:
    """Accepted CSV rows with their 0-based data row (rejected lines shift the numbering)."""
    n = con.execute(f"SELECT count(DISTINCT line) FROM {rejects}").fetchall()[0][0]
    if not n:
        return f"(SELECT * EXCLUDE (_k), _k AS _row FROM {table})"
    # The k-th accepted row is data row k + (rejected rows before it). With rejected data rows
    # r_0 < r_1 < ..., r_i - i accepted rows precede r_i, so the shift is #{i : r_i - i <= k}.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table}_shift AS SELECT r - (row_number() OVER (ORDER BY r) - 1) AS pos "
        f"FROM (SELECT DISTINCT line - {header_lines + 1} AS r FROM {rejects})"
    )
    return (
        f"(SELECT * EXCLUDE (_k), _k + (SELECT count(*) FROM {table}_shift WHERE pos <= _k) AS _row "
        f"FROM {table})"
    )


def _kind(duck_type: str) -> str:
    t = duck_type.upper().strip('"')
    if t.startswith("VARCHAR"):
        return "text"
    if t == "NULL":
        # Arrow's null type: a column with no value in any row (pandas writes an all-None
        # column so). It holds a missing value of every type.
        return "null"
    if t in INTEGER_TYPES:
        return "integer"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "numeric"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "timestamp"
    if t == "BOOLEAN":
        return "bool"
    return "other"


# Source kinds a contract type accepts without parsing text (text is always parsed, per value).
COMPATIBLE = {
    "float": {"numeric", "integer"},
    "int": {"integer"},
    "timestamp": {"timestamp"},
    "bool": {"bool", "integer"},
    "string": {"numeric", "integer", "timestamp", "bool"},
}


def _check_columns(
    layout: FileLayout, contract: Contract
) -> tuple[FileLayout | None, FileRejection | None]:
    rel = layout.rel
    missing = [
        c.name
        for c in contract.columns
        if c.name not in layout.types and not c.extra.get("optional")
    ]
    measurements = [c.name for c in contract.columns if c.extra.get("optional")]
    delivered = [m for m in measurements if m in layout.types]
    least = int(contract.settings.get("min_measurements", len(measurements)))
    if not missing and len(delivered) < least:
        missing = [m for m in measurements if m not in layout.types]
        return None, FileRejection(
            rel,
            "missing_column",
            f"{rel}: {len(delivered)} measurement column(s), fewer than the "
            f"{least} (min_measurements) required by {CONTRACT_FILE}; it has none of "
            f"{names_text(missing, 20)}",
            column=missing[0],
        )
    if missing:
        names = ", ".join(repr(m) for m in missing)
        return None, FileRejection(
            rel,
            "missing_column",
            f"{rel}: missing column(s) {names} required by {CONTRACT_FILE} "
            f"(file has [{names_text(sorted(layout.types), 20)}])",
            column=missing[0],
        )
    for c in contract.columns:
        if c.name not in layout.types:  # an optional measurement the file does not deliver
            continue
        kind = _kind(layout.types[c.name])
        if kind not in ("text", "null") and kind not in COMPATIBLE[c.type]:
            return None, FileRejection(
                rel,
                "wrong_type",
                f"{rel}: column {c.name!r} has type {layout.types[c.name]}, which cannot hold "
                f"a {c.type} ({CONTRACT_FILE})",
                column=c.name,
            )
    known = set(contract.column_names)
    extra = [n for n in layout.types if n not in known]
    if extra and landing_rules(contract).get("extra_columns", "report") == "reject":
        return None, FileRejection(
            rel,
            "extra_column",
            f"{rel}: column(s) {names_text(extra)} are not in {CONTRACT_FILE} "
            "(extra_columns: reject)",
            column=extra[0],
        )
    return layout, None


def extra_column_notices(
    rel: str, extra: list[str], count: int | None = None
) -> list[FileRejection]:
    """One quarantine note for the columns a file has beyond the contract (its rows are kept):
    how many, and the first few names (``extra`` may hold only those, ``count`` all of them)."""
    count = max(count or 0, len(extra))
    if not count:
        return []
    if count == 1:
        what = f"column {extra[0]!r} is not in {CONTRACT_FILE}; its values are ignored"
    else:
        first = extra[:NAMES_SHOWN]
        shown = ", ".join(repr(n) for n in first)
        if count > len(first):
            shown += f" and {count - len(first)} more"
        what = f"{count} columns are not in {CONTRACT_FILE} ({shown}); their values are ignored"
    return [
        FileRejection(rel, "extra_column", f"{rel}: {what}, the rows are kept", column=extra[0])
    ]


def _typed(col, src_type: str) -> tuple[str, str | None]:
    """(typed expression, parse-failure predicate or None) for one contract column."""
    src = f'"{col.name}"'
    kind = _kind(src_type)
    target = ARROW_TYPES[col.type]
    if col.type == "string":
        return (src if kind == "text" else f"CAST({src} AS VARCHAR)"), None
    if kind == "text":
        expr = f"TRY_CAST(trim({src}) AS {target})"
        failed = f"({src} IS NOT NULL AND trim({src}) <> '' AND {expr} IS NULL)"
    elif col.type == "bool" and kind == "integer":
        expr = f"CASE WHEN {src} = 1 THEN TRUE WHEN {src} = 0 THEN FALSE END"
        failed = f"({src} IS NOT NULL AND {src} NOT IN (0, 1))"
    else:
        expr, failed = f"CAST({src} AS {target})", None
    if col.type == "float":  # NaN is a missing value, not a number outside every range
        expr = f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"
    return expr, failed


def _breaks_text_limits(col, expr: str) -> str | None:
    """SQL predicate: a string value longer than the column's ``max_length`` or not matching its
    ``pattern`` (None for a column without either)."""
    if col.type != "string":
        return None
    length, pattern = text_limits(col)
    tests = []
    if length is not None:
        tests.append(f"length({expr}) > {length}")
    if pattern is not None:
        tests.append(f"NOT regexp_matches({expr}, {sql_str(pattern)})")
    return f"({expr} IS NOT NULL AND ({' OR '.join(tests)}))" if tests else None


def file_select_sql(
    layout: FileLayout, contract: Contract, received_at: datetime, late: bool
) -> str:
    """SELECT of one file's rows in the typed shape: contract columns + :data:`SOURCE_COLUMNS`.

    Rejected CSV lines are included as rows with ``read_error`` set (rule ``malformed_row``,
    ``truncated_row`` or ``not_utf8``) and the raw line as value; their device and timestamp are
    read from the raw line when possible, so they land in the right hour. A ``ts`` outside the
    plausible range (:func:`plausible_timestamps`) is ``implausible_timestamp``; a text value
    over its column's ``max_length`` or not matching its ``pattern`` is ``invalid_<column>``.
    A row breaking several rules carries the first: unparsable, invalid, implausible.
    """
    received = f"TIMESTAMPTZ {sql_str(received_at.isoformat())}"
    return _select_sql(layout, contract, received, sql_str(layout.rel), _bool(late))


# The column of :func:`files_select_sql` with each row's file (its position in the list).
FILE_INDEX = "_file"


def scan_together(layouts: list[FileLayout]) -> bool:
    """Whether :func:`files_select_sql` can read these files in one scan: Parquet files with
    the same columns, in the same order, of the same types."""
    first = layouts[0]
    return all(
        layout.kind == "parquet"
        and list(layout.types.items()) == list(first.types.items())
        and not {FILE_INDEX, "_row"} & set(layout.types)
        for layout in layouts
    )


def per_file_sql(values: list[str]) -> str:
    """SQL of a value that depends on the row's file in :func:`files_select_sql` (the value
    itself when every file has the same)."""
    if len(set(values)) == 1:
        return values[0]
    *first, last = values
    whens = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(first))
    return f"CASE {FILE_INDEX} {whens} ELSE {last} END"


def files_select_sql(
    layouts: list[FileLayout], contract: Contract, received_at: list[datetime], late: list[bool]
) -> str:
    """The rows :func:`file_select_sql` gives for each of several Parquet files of one layout
    (:func:`scan_together`), file after file, from one scan of them all, with the file's
    position in ``layouts`` as :data:`FILE_INDEX`.

    One scan streams the rows in order into a writer: in a ``UNION ALL`` of the files' SELECTs
    DuckDB runs the SELECTs interleaved, and a writer keeping the rows in order then holds every
    later file's rows until the first file is done (memory, then disk, growing with the hour).
    Use it as a whole query: as one branch of a ``UNION ALL`` DuckDB 2.0's ordered writer can
    misplace its rows. A scan of several files carries no per-file statistics, so the written
    columns are nullable (OPTIONAL) where a single file's statistics may show them never null."""
    first = layouts[0]
    paths = ", ".join(sql_str(str(layout.path)) for layout in layouts)
    breaks = None
    if all(layout.breaks is not None for layout in layouts):
        # a value breaking a column's max_length or pattern breaks it in any file
        lists = [layout.breaks or {} for layout in layouts]
        breaks = {
            name: sorted({v for b in lists for v in b.get(name, [])})
            for name in {n for b in lists for n in b}
        }
    together = FileLayout(
        first.path,
        first.rel,
        "parquet",
        dict(first.types),
        f"(SELECT * EXCLUDE (file_row_number), file_row_number AS _row, "
        f"CAST(file_index AS INTEGER) AS {FILE_INDEX} "
        f"FROM read_parquet([{paths}], file_row_number = true))",
        breaks=breaks,
    )
    received = per_file_sql([f"TIMESTAMPTZ {sql_str(r.isoformat())}" for r in received_at])
    source_file = per_file_sql([sql_str(layout.rel) for layout in layouts])
    late_sql = per_file_sql([_bool(x) for x in late])
    return _select_sql(together, contract, received, source_file, late_sql, extra=f", {FILE_INDEX}")


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _select_sql(
    layout: FileLayout,
    contract: Contract,
    received: str,
    source_file: str,
    late: str,
    extra: str = "",
) -> str:
    """:func:`file_select_sql` with the file's name, arrival time and lateness given as SQL
    (``extra``: columns of the relation kept after the typed ones)."""
    typed, failures = [], []  # failures: (predicate, rule, column, value); the first one counts
    invalids = []  # a value that parses but breaks its column's max_length or pattern
    for c in contract.columns:
        if c.name not in layout.types:  # an optional measurement the file lacks: missing
            typed.append(f"CAST(NULL AS {ARROW_TYPES[c.type]}) AS {c.name}")
            continue
        expr, failed = _typed(c, layout.types[c.name])
        typed.append(f"{expr} AS {c.name}")
        if failed:
            failures.append((failed, "unparsable_value", c.name, f'CAST("{c.name}" AS VARCHAR)'))
        known = layout.breaks.get(c.name) if layout.breaks is not None else None
        if known is None:
            invalid = _breaks_text_limits(c, expr)
        else:  # the same rows as the test, found by looking the value up
            invalid = f"({expr} IN ({', '.join(sql_str(v) for v in known)}))" if known else None
        if invalid:
            shown = (
                f"CASE WHEN length({expr}) > {VALUE_SHOWN} "
                f"THEN left({expr}, {VALUE_SHOWN}) || '…' ELSE {expr} END"
            )
            invalids.append((invalid, f"invalid_{c.name}", c.name, shown))
        if c.name == "ts":
            implausible = f"({expr} IS NOT NULL AND NOT {plausible_sql(contract, expr, received)})"
            ts_value = f"CAST({expr} AS VARCHAR)"
    failures += invalids
    failures.append((implausible, "implausible_timestamp", "ts", ts_value))
    column = "CASE " + " ".join(f"WHEN {f} THEN '{n}'" for f, _, n, _ in failures) + " END"
    value = "CASE " + " ".join(f"WHEN {f} THEN {v}" for f, _, _, v in failures) + " END"
    error = "CASE " + " ".join(f"WHEN {f} THEN '{r}'" for f, r, _, _ in failures) + " END"

    def source(row: str) -> str:
        return (
            f"{source_file} AS source_file, CAST({row} AS BIGINT) AS source_row, "
            f"{received} AS received_at, {late} AS late_arrival"
        )

    sql = (
        f"SELECT {', '.join(typed)}, {source('_row')}, {error} AS read_error, "
        f"{column} AS read_error_column, {value} AS read_error_value{extra} FROM {layout.relation}"
    )
    if layout.rejects:
        row = f"line - {layout.header_lines + 1}"
        sql += " UNION ALL " + _rejected_lines_sql(layout, contract, source(row))
    return sql


def _rejected_lines_sql(layout: FileLayout, contract: Contract, source: str) -> str:
    delim = landing_rules(contract).get("csv", {}).get("delimiter", ",")
    position = {name: i + 1 for i, name in enumerate(layout.types)}

    def field_of(name: str) -> str:
        return f"trim(string_split(csv_line, {sql_str(delim)})[{position[name]}])"

    cols = []
    for c in contract.columns:
        if c.name in contract.primary_key:
            raw = field_of(c.name)
            cols.append(
                raw + f" AS {c.name}"
                if c.type == "string"
                else f"TRY_CAST({raw} AS {ARROW_TYPES[c.type]}) AS {c.name}"
            )
        else:
            cols.append(f"CAST(NULL AS {ARROW_TYPES[c.type]}) AS {c.name}")
    last_line = layout.data_lines + layout.header_lines
    truncated = (
        "FALSE"
        if layout.ends_with_newline
        else f"(error_type = 'MISSING COLUMNS' AND line = {last_line})"
    )
    rule = (
        f"CASE WHEN error_type = 'INVALID ENCODING' THEN 'not_utf8' "
        f"WHEN {truncated} THEN 'truncated_row' ELSE 'malformed_row' END"
    )
    return (
        f"SELECT {', '.join(cols)}, {source}, "
        f"{rule} AS read_error, CAST(NULL AS VARCHAR) AS read_error_column, "
        f"csv_line AS read_error_value "
        f"FROM (SELECT line, arg_min(error_type, column_idx) AS error_type, "
        f"any_value(csv_line) AS csv_line FROM {layout.rejects} GROUP BY line)"
    )


def _binary_header(path: Path, rel: str) -> FileRejection:
    """The rejection of a CSV whose header holds control bytes: UTF-16 text named as such (an
    export saved as "Unicode text"), anything else unreadable."""
    if not is_compressed(path):
        with open(path, "rb") as fh:
            mark = fh.read(2)
        if mark in UTF16_MARKS:
            return FileRejection(
                rel,
                "not_utf8",
                f"{rel}: is UTF-16 text (byte order mark {mark.hex(' ').upper()}); the landing "
                "zone reads UTF-8: save it as UTF-8, or bring it in with `refrig import`",
            )
    return FileRejection(
        rel, "unreadable_file", f"{rel}: cannot be read as CSV (binary data in the header)"
    )
