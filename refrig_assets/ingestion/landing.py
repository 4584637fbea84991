"""The landing zone: discover reading files and turn the readings of one hour into typed rows.

Files may be Parquet or CSV, any name, any folder depth, any mix of hours. Everything runs in
DuckDB: an hour's readings are one ``SELECT ... UNION ALL ...`` over the files that hold that hour,
streamed straight into the ``sensor_readings`` partition. Every delivered row keeps its
``source_file`` and 0-based ``source_row``; a row that cannot be used is not dropped but carries
``read_error`` (the rule), ``read_error_column`` and ``read_error_value`` so the quality step can
quarantine it. A file that cannot be used at all becomes a :class:`FileRejection` naming its rule.

The :class:`LandingIndex` remembers, per file fingerprint (size + mtime), the hours a file holds
and, per hour, which files its first and latest materialization read: that is how late files are
recognised (the ``LATE`` flag) and how the late-data sensor knows which hours to refresh.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from refrig_assets.core.contracts import ARROW_TYPES, Contract

READING_SUFFIXES = (".parquet", ".csv")
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


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads naive timestamps as UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def landing_index_path(settings) -> Path:
    """Where the landing index lives: the project's state directory."""
    return Path(settings.home) / "state" / "landing_index.json"


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def hour_key(ts: datetime) -> str:
    """The hourly partition key holding ``ts`` (UTC), e.g. ``2026-01-01-05:00``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d-%H:00")


def hours_between(first: datetime, last: datetime) -> list[str]:
    """Partition keys of every hour from the one holding ``first`` to the one holding ``last``."""
    h = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while h <= last:
        out.append(hour_key(h))
        h += timedelta(hours=1)
    return out


@dataclass(frozen=True)
class FileRejection:
    """A whole landing file (or one of its columns) that could not be used, with the rule."""

    source_file: str
    rule: str
    message: str
    column: str | None = None


@dataclass(frozen=True)
class FileSpan:
    """What the landing index remembers about one version (size, mtime) of a file."""

    size: int
    mtime_ns: int
    min_ts: str | None
    max_ts: str | None
    rows: int
    rejection: dict | None = None
    # A file with no usable timestamp belongs to no hour: the first partition that sees it
    # reports it (and keeps reporting it on re-runs), so it is quarantined exactly once.
    claimed_by: str | None = None
    hours: list[str] = field(default_factory=list)
    first_seen: str | None = None
    content_hash: str | None = None
    extra_columns: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


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


def discover_files(landing_dir: Path) -> list[Path]:
    """All reading files under the landing directory, sorted (hidden and temp files skipped)."""
    if not landing_dir.exists():
        return []
    return sorted(
        p
        for p in landing_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in READING_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(landing_dir).parts)
    )


def landing_rules(contract: Contract) -> dict:
    """The ``landing:`` block of the sensor_readings contract (CSV dialect, file rules)."""
    return contract.settings.get("landing", {})


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
    size = path.stat().st_size
    if size == 0:
        return None, FileRejection(rel, "empty_file", f"{rel}: file is empty (0 bytes)")
    p = sql_str(str(path))
    if path.suffix.lower() == ".parquet":
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
            return None, FileRejection(
                rel, "unreadable_file", f"{rel}: cannot be read as CSV (binary data in the header)"
            )
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
    return _check_columns(layout, contract)


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
    t = duck_type.upper()
    if t.startswith("VARCHAR"):
        return "text"
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
    missing = [c.name for c in contract.columns if c.name not in layout.types]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        return None, FileRejection(
            rel,
            "missing_column",
            f"{rel}: missing column(s) {names} required by {CONTRACT_FILE} "
            f"(file has {sorted(layout.types)})",
            column=missing[0],
        )
    for c in contract.columns:
        kind = _kind(layout.types[c.name])
        if kind != "text" and kind not in COMPATIBLE[c.type]:
            return None, FileRejection(
                rel,
                "wrong_type",
                f"{rel}: column {c.name!r} has type {layout.types[c.name]}, which cannot hold "
                f"a {c.type} ({CONTRACT_FILE})",
                column=c.name,
            )
    extra = [n for n in layout.types if n not in contract.column_names]
    if extra and landing_rules(contract).get("extra_columns", "report") == "reject":
        return None, FileRejection(
            rel,
            "extra_column",
            f"{rel}: column(s) {', '.join(map(repr, extra))} are not in {CONTRACT_FILE} "
            "(extra_columns: reject)",
            column=extra[0],
        )
    return layout, None


def extra_column_notices(rel: str, extra: Iterable[str]) -> list[FileRejection]:
    """One quarantine note per column a file has beyond the contract (its rows are kept)."""
    return [
        FileRejection(
            rel,
            "extra_column",
            f"{rel}: column {name!r} is not in {CONTRACT_FILE}; its values are ignored, "
            "the rows are kept",
            column=name,
        )
        for name in extra
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


def file_select_sql(
    layout: FileLayout, contract: Contract, received_at: datetime, late: bool
) -> str:
    """SELECT of one file's rows in the typed shape: contract columns + :data:`SOURCE_COLUMNS`.

    Rejected CSV lines are included as rows with ``read_error`` set (rule ``malformed_row``,
    ``truncated_row`` or ``not_utf8``) and the raw line as value; their device and timestamp are
    read from the raw line when possible, so they land in the right hour.
    """
    typed, failures = [], []
    for c in contract.columns:
        expr, failed = _typed(c, layout.types[c.name])
        typed.append(f"{expr} AS {c.name}")
        if failed:
            failures.append((c.name, failed))
    if failures:
        column = "CASE " + " ".join(f"WHEN {f} THEN '{n}'" for n, f in failures) + " END"
        value = (
            "CASE "
            + " ".join(f'WHEN {f} THEN CAST("{n}" AS VARCHAR)' for n, f in failures)
            + " END"
        )
        error = f"CASE WHEN {' OR '.join(f for _, f in failures)} THEN 'unparsable_value' END"
    else:
        column = value = error = "CAST(NULL AS VARCHAR)"

    def source(row: str) -> str:
        return (
            f"{sql_str(layout.rel)} AS source_file, CAST({row} AS BIGINT) AS source_row, "
            f"TIMESTAMPTZ {sql_str(received_at.isoformat())} AS received_at, "
            f"{'TRUE' if late else 'FALSE'} AS late_arrival"
        )

    sql = (
        f"SELECT {', '.join(typed)}, {source('_row')}, {error} AS read_error, "
        f"{column} AS read_error_column, {value} AS read_error_value FROM {layout.relation}"
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


def _mtime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class LandingIndex:
    """Per-file spans and per-hour file sets, kept as JSON under the state directory.

    ``files`` maps a landing path to the :class:`FileSpan` of its current version; ``hours`` maps a
    partition key to ``{"first_at", "first_files", "at", "files"}`` (files as path → fingerprint),
    recorded each time the hour's readings are materialized. Saving merges with what other
    processes saved meanwhile (under a file lock), so concurrent partitions do not lose entries.
    """

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, FileSpan] = {}
        self.hours: dict[str, dict] = {}
        self._dirty_files: set[str] = set()
        self._dirty_hours: set[str] = set()
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = json.loads(self.path.read_text() or "{}")
        if "files" not in raw:  # an index from before per-hour records: rescan
            return
        self.entries = {k: FileSpan(**v) for k, v in raw["files"].items()}
        self.hours = raw.get("hours", {})

    def save(self) -> None:
        """Write the entries this process changed, merged into the file on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = LandingIndex.__new__(LandingIndex)
            disk.path, disk.entries, disk.hours = self.path, {}, {}
            disk._load()
            files = {**disk.entries, **{k: self.entries[k] for k in self._dirty_files}}
            hours = {**disk.hours, **{k: self.hours[k] for k in self._dirty_hours}}
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "files": {k: dataclasses.asdict(v) for k, v in sorted(files.items())},
                        "hours": dict(sorted(hours.items())),
                    }
                )
            )
            tmp.replace(self.path)
            self.entries, self.hours = files, hours
            self._dirty_files.clear()
            self._dirty_hours.clear()

    def put(self, rel: str, span: FileSpan) -> None:
        self.entries[rel] = span
        self._dirty_files.add(rel)

    def rejections_for(self, partition_key: str) -> list[FileRejection]:
        """Whole-file rejections reported in one partition."""
        return [
            FileRejection(**e.rejection)
            for e in self.entries.values()
            if e.rejection is not None and e.claimed_by == partition_key
        ]

    def span(self, path: Path, landing_dir: Path, contract: Contract) -> FileSpan:
        """The span of the file's current version (scanned once per size + mtime)."""
        rel = str(path.relative_to(landing_dir))
        st = path.stat()
        cached = self.entries.get(rel)
        if cached and cached.size == st.st_size and cached.mtime_ns == st.st_mtime_ns:
            return cached
        span = scan_file(path, landing_dir, contract, st)
        self.put(rel, span)
        return span

    def content_hash(self, path: Path, landing_dir: Path) -> str:
        """SHA-256 of the file (cached with its span; computed only when sizes collide)."""
        rel = str(path.relative_to(landing_dir))
        span = self.entries[rel]
        if span.content_hash is not None:
            return span.content_hash
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        self.put(rel, dataclasses.replace(span, content_hash=digest))
        return digest

    def hour_files(self, partition_key: str, which: str = "files") -> dict[str, str] | None:
        """Files (path → fingerprint) read by the hour's first or latest materialization."""
        record = self.hours.get(partition_key)
        return None if record is None else record[which]

    def record_hour(self, partition_key: str, files: dict[str, str], at: datetime) -> None:
        """Remember which file versions a materialization of the hour read."""
        record = self.hours.get(partition_key) or {"first_at": at.isoformat(), "first_files": files}
        self.hours[partition_key] = {**record, "at": at.isoformat(), "files": files}
        self._dirty_hours.add(partition_key)


def scan_file(path: Path, landing_dir: Path, contract: Contract, st: os.stat_result) -> FileSpan:
    """Open a file once: its rejection, or its rows, time span, hours and extra columns."""
    con = connect()
    try:
        layout, rejection = open_file(con, path, landing_dir, contract, "scan")
        now = datetime.now(UTC).isoformat()
        if layout is not None:
            sql = file_select_sql(layout, contract, _mtime(st.st_mtime_ns), False)
            # min/max/count come from Parquet statistics without a scan; the hours are those
            # between the first and the last reading
            rows, lo, hi = con.execute(
                f"SELECT count(*), min(ts), max(ts) FROM ({sql})"
            ).fetchall()[0]
            hours = hours_between(lo, hi) if lo is not None else []
            if rows == 0:
                rejection = FileRejection(
                    layout.rel, "empty_file", f"{layout.rel}: file has no data rows"
                )
        if rejection is not None or layout is None:
            reason = rejection.__dict__ if rejection is not None else None
            return FileSpan(st.st_size, st.st_mtime_ns, None, None, 0, reason, first_seen=now)
        return FileSpan(
            st.st_size,
            st.st_mtime_ns,
            lo.isoformat() if lo else None,
            hi.isoformat() if hi else None,
            rows,
            hours=sorted(hours or []),
            first_seen=now,
            extra_columns=[n for n in layout.types if n not in contract.column_names],
        )
    finally:
        con.close()


@dataclass
class HourSelection:
    """The landing files of one hour: those to read, and what to report in this partition."""

    paths: list[Path]
    claimed: set[str]  # files whose rows without a timestamp belong to this hour
    rejected: list[FileRejection]
    notices: list[FileRejection]
    considered: dict[str, str]  # every file of the hour (read or rejected): path -> fingerprint


def select_hour_files(
    landing_dir: Path, partition_key: str, contract: Contract, index: LandingIndex
) -> HourSelection:
    """Files holding readings of the hour, plus the rejections and notices to report in it.

    Rejected files, and files without any parsable timestamp, are claimed by the first partition
    that sees them. A file with the same content as another file of the hour (delivered twice
    under another name) is not read again: the later delivery is rejected as ``duplicate_file``.
    """
    paths, claimed, rejected, notices = [], set(), [], []
    considered: dict[str, str] = {}
    for path in discover_files(landing_dir):
        rel = str(path.relative_to(landing_dir))
        span = index.span(path, landing_dir, contract)
        if span.rejection is not None or span.min_ts is None:
            if span.claimed_by is None:
                span = dataclasses.replace(span, claimed_by=partition_key)
                index.put(rel, span)
            if span.claimed_by != partition_key:
                continue
            considered[rel] = span.fingerprint
            if span.rejection is not None:
                rejected.append(FileRejection(**span.rejection))
                continue
            claimed.add(rel)
        elif partition_key not in span.hours:
            continue
        elif hour_key(datetime.fromisoformat(span.min_ts)) == partition_key:
            claimed.add(rel)
        considered[rel] = span.fingerprint
        paths.append(path)
    paths, duplicates = _drop_duplicate_files(paths, landing_dir, index)
    rejected += duplicates
    for path in paths:
        rel = str(path.relative_to(landing_dir))
        notices += extra_column_notices(rel, index.entries[rel].extra_columns)
    return HourSelection(paths, claimed, rejected, notices, considered)


def _drop_duplicate_files(
    paths: list[Path], landing_dir: Path, index: LandingIndex
) -> tuple[list[Path], list[FileRejection]]:
    by_size: dict[int, list[Path]] = {}
    for p in paths:
        by_size.setdefault(index.entries[str(p.relative_to(landing_dir))].size, []).append(p)
    dropped: dict[Path, FileRejection] = {}
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        first_by_hash: dict[str, Path] = {}
        for p in sorted(
            same_size,
            key=lambda q: (index.entries[str(q.relative_to(landing_dir))].mtime_ns, str(q)),
        ):
            digest = index.content_hash(p, landing_dir)
            original = first_by_hash.setdefault(digest, p)
            if original is not p:
                rel, orig = str(p.relative_to(landing_dir)), str(original.relative_to(landing_dir))
                dropped[p] = FileRejection(
                    rel,
                    "duplicate_file",
                    f"{rel}: same content as {orig} (delivered twice); not read again",
                )
    return [p for p in paths if p not in dropped], [dropped[p] for p in paths if p in dropped]


@dataclass
class HourReadings:
    """The typed readings of one hour as a SQL query on a connection, with their provenance."""

    sql: str
    files: list[str]  # files whose rows were read
    considered: dict[str, str]  # every file of the hour (read or rejected): path -> fingerprint
    rejected: list[FileRejection]
    notices: list[FileRejection]


def hour_readings(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    start: datetime,
    end: datetime,
    partition_key: str,
    contract: Contract,
    index: LandingIndex,
) -> HourReadings:
    """SQL (valid on ``con``) of every reading of the hour [start, end) in the typed shape.

    A row belongs to the hour of its ``ts``; rows without a usable timestamp go with the hour of
    their file's first reading. Rows of files that the hour's first materialization did not read
    are marked ``late_arrival``.
    """
    selection = select_hour_files(landing_dir, partition_key, contract, index)
    first_files = index.hour_files(partition_key, "first_files")
    selects, files = [], []
    rejected = list(selection.rejected)
    for i, path in enumerate(selection.paths):
        rel = str(path.relative_to(landing_dir))
        span = index.entries[rel]
        layout, rejection = open_file(con, path, landing_dir, contract, f"h{i}")
        if layout is None:  # changed between scan and read
            if rejection is not None:
                rejected.append(rejection)
            continue
        late = first_files is not None and first_files.get(rel) != span.fingerprint
        in_hour = f"(ts >= {sql_str(start.isoformat())} AND ts < {sql_str(end.isoformat())})"
        if rel in selection.claimed:
            in_hour = f"({in_hour} OR ts IS NULL)"
        sql = file_select_sql(layout, contract, _mtime(span.mtime_ns), late)
        selects.append(f"SELECT * FROM ({sql}) WHERE {in_hour}")
        files.append(rel)
    file_rows = file_rows_sql(contract, rejected + selection.notices)
    if file_rows:
        selects.append(file_rows)
    if not selects:
        selects = [empty_readings_sql(contract)]
    return HourReadings(
        " UNION ALL ".join(selects), files, selection.considered, rejected, selection.notices
    )


def file_rows_sql(contract: Contract, entries: list[FileRejection]) -> str | None:
    """Rejected files and file notices as typed rows with ``source_row = -1``.

    They travel inside the hour's readings so the partition holds everything the landing zone
    delivered for the hour in one atomic file; for these rows ``read_error`` is the rule and
    ``read_error_value`` the message.
    """
    if not entries:
        return None
    nulls = ", ".join(f"CAST(NULL AS {ARROW_TYPES[c.type]}) AS {c.name}" for c in contract.columns)
    rows = [
        f"SELECT {nulls}, {sql_str(e.source_file)} AS source_file, CAST(-1 AS BIGINT) AS source_row, "
        f"CAST(NULL AS TIMESTAMPTZ) AS received_at, FALSE AS late_arrival, {sql_str(e.rule)} AS read_error, "
        f"{sql_str(e.column) if e.column else 'CAST(NULL AS VARCHAR)'} AS read_error_column, "
        f"{sql_str(e.message)} AS read_error_value"
        for e in entries
    ]
    return " UNION ALL ".join(rows)


def empty_readings_sql(contract: Contract) -> str:
    """A zero-row SELECT in the typed readings shape."""
    cols = [f"CAST(NULL AS {ARROW_TYPES[c.type]}) AS {c.name}" for c in contract.columns]
    cols += [f"CAST(NULL AS {t}) AS {n}" for n, t in SOURCE_COLUMNS.items()]
    return f"SELECT {', '.join(cols)} LIMIT 0"


def hours_to_refresh(
    landing_dir: Path, contract: Contract, index: LandingIndex
) -> dict[str, dict[str, list[str]]]:
    """Materialized hours whose landing files changed since their latest materialization.

    Returns ``{partition_key: {"added": [...], "changed": [...], "removed": [...]}}`` for every
    hour the index has a record of whose current files (path → fingerprint) differ from the ones
    it read: a late file, a re-delivery, a corrected or a deleted file.
    """
    current: dict[str, dict[str, str]] = {}
    for path in discover_files(landing_dir):
        rel = str(path.relative_to(landing_dir))
        span = index.span(path, landing_dir, contract)
        hours = [] if span.rejection else list(span.hours)
        if span.claimed_by and span.claimed_by not in hours:
            hours.append(span.claimed_by)
        for h in hours:
            current.setdefault(h, {})[rel] = span.fingerprint
    out = {}
    for key, record in index.hours.items():
        now, then = current.get(key, {}), record["files"]
        changes = {
            "added": sorted(set(now) - set(then)),
            "changed": sorted(f for f in set(now) & set(then) if now[f] != then[f]),
            "removed": sorted(set(then) - set(now)),
        }
        if any(changes.values()):
            out[key] = changes
    return out
