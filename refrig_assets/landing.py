"""The landing zone: discover reading files and read them into the sensor_readings shape.

Files may be Parquet or CSV, any name, any folder depth, any mix of hours. Each file is read
once into a typed Arrow table with ``source_file`` and ``source_row``; a value that cannot be
parsed becomes null and is recorded in ``parse_errors`` for that row, so the quality step can
quarantine it with the file, row, column and value. A file that cannot be read at all is
reported as a :class:`FileRejection` instead of raising.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from refrig_assets.contracts import ARROW_TYPES, Contract

READING_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class FileRejection:
    """A whole landing file that could not be used, with the rule it broke."""

    source_file: str
    rule: str
    message: str
    column: str | None = None


@dataclass(frozen=True)
class FileSpan:
    """What the landing index remembers about one file (so hours only open the files they need)."""

    size: int
    mtime_ns: int
    min_ts: str | None
    max_ts: str | None
    rows: int
    rejection: dict | None = None
    # A file with no usable timestamp belongs to no hour: the first partition that sees it
    # reports it (and keeps reporting it on re-runs), so it is quarantined exactly once.
    claimed_by: str | None = None


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


def _raw_relation(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """SQL that reads a file with every column as text (CSV) or as stored (Parquet)."""
    p = str(path).replace("'", "''")
    if path.suffix.lower() == ".parquet":
        return f"read_parquet('{p}')"
    return f"read_csv('{p}', all_varchar=true, header=true, auto_detect=true)"


def _typed_select(contract: Contract, present: set[str]) -> tuple[str, str]:
    """SELECT list casting every contract column, and the SQL that lists failed casts."""
    selects, errors = [], []
    for col in contract.columns:
        target = ARROW_TYPES[col.type]
        if col.name not in present:
            selects.append(f"CAST(NULL AS {target}) AS {col.name}")
            continue
        src = f'"{col.name}"'
        if col.type == "timestamp":
            cast = f"TRY_CAST(CAST({src} AS VARCHAR) AS TIMESTAMPTZ)"
        elif col.type == "bool":
            cast = f"TRY_CAST(CAST({src} AS VARCHAR) AS BOOLEAN)"
        else:
            cast = f"TRY_CAST({src} AS {target})"
        selects.append(f"{cast} AS {col.name}")
        errors.append(
            f"CASE WHEN {src} IS NOT NULL AND {cast} IS NULL "
            f"THEN '{col.name}=' || CAST({src} AS VARCHAR) END"
        )
    err_sql = f"concat_ws(';', {', '.join(errors)})" if errors else "''"
    return ", ".join(selects), err_sql


def read_landing_file(
    path: Path, landing_dir: Path, contract: Contract
) -> tuple[pa.Table | None, FileRejection | None]:
    """Read one file into the typed sensor_readings shape plus source columns.

    Returns (table, None) or (None, rejection). Missing required (non-nullable) columns reject
    the file; a missing nullable column becomes all-null; extra columns are ignored.
    """
    rel = str(path.relative_to(landing_dir))
    if path.stat().st_size == 0:
        return None, FileRejection(rel, "empty_file", f"{rel}: file is empty")
    con = duckdb.connect()
    try:
        raw = _raw_relation(con, path)
        try:
            present = {d[0] for d in con.execute(f"SELECT * FROM {raw} LIMIT 0").description}
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            return None, FileRejection(rel, "unreadable_file", f"{rel}: cannot be read ({msg})")
        missing = [c.name for c in contract.columns if not c.nullable and c.name not in present]
        if missing:
            return None, FileRejection(
                rel,
                "missing_column",
                f"{rel}: required column {missing[0]!r} is missing (has {sorted(present)})",
                column=missing[0],
            )
        selects, err_sql = _typed_select(contract, present)
        sql = (
            f"SELECT {selects}, '{rel.replace(chr(39), chr(39) * 2)}' AS source_file, "
            f"CAST(row_number() OVER () - 1 AS BIGINT) AS source_row, {err_sql} AS parse_errors "
            f"FROM {raw}"
        )
        try:
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            return None, FileRejection(rel, "unreadable_file", f"{rel}: cannot be read ({msg})")
        return table, None
    finally:
        con.close()


class LandingIndex:
    """Cache of each landing file's time span, keyed by path, size and mtime.

    Lets an hourly partition open only the files that can hold its readings. Stored as JSON
    under the state directory; a changed or new file is re-scanned.
    """

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, FileSpan] = {}
        self._tables: dict[str, pa.Table] = {}
        if path.exists():
            for k, v in json.loads(path.read_text()).items():
                self.entries[k] = FileSpan(**v)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v.__dict__ for k, v in self.entries.items()}))
        tmp.replace(self.path)

    def rejections_for(self, partition_key: str) -> list[FileRejection]:
        """Whole-file rejections reported in one partition."""
        return [
            FileRejection(**e.rejection)
            for e in self.entries.values()
            if e.rejection is not None and e.claimed_by == partition_key
        ]

    def span(self, path: Path, landing_dir: Path, contract: Contract) -> FileSpan:
        rel = str(path.relative_to(landing_dir))
        st = path.stat()
        cached = self.entries.get(rel)
        if cached and cached.size == st.st_size and cached.mtime_ns == st.st_mtime_ns:
            return cached
        table, rejection = read_landing_file(path, landing_dir, contract)
        if table is not None:
            self._tables[rel] = table  # read_hour reuses it instead of reading the file twice
        if rejection is not None:
            span = FileSpan(st.st_size, st.st_mtime_ns, None, None, 0, rejection.__dict__)
        else:
            ts = table.column("ts")
            lo, hi = pa.compute.min(ts).as_py(), pa.compute.max(ts).as_py()
            span = FileSpan(
                st.st_size,
                st.st_mtime_ns,
                lo.isoformat() if lo else None,
                hi.isoformat() if hi else None,
                table.num_rows,
            )
        self.entries[rel] = span
        return span


def files_for_window(
    landing_dir: Path,
    start: datetime,
    end: datetime,
    contract: Contract,
    index: LandingIndex,
    partition_key: str,
) -> tuple[list[Path], list[FileRejection]]:
    """Files whose readings may fall in [start, end), and whole-file rejections to report here.

    Files that are rejected, or whose rows have no parsable timestamp, are claimed by the first
    partition that looks at them, so each is reported in exactly one partition.
    """
    selected, rejected = [], []
    for path in discover_files(landing_dir):
        span = index.span(path, landing_dir, contract)
        if span.rejection is not None or span.min_ts is None:
            rel = str(path.relative_to(landing_dir))
            if span.claimed_by is None:
                span = dataclasses.replace(span, claimed_by=partition_key)
                index.entries[rel] = span
            if span.claimed_by == partition_key:
                if span.rejection is not None:
                    rejected.append(FileRejection(**span.rejection))
                elif span.rows:
                    selected.append(path)
            continue
        lo, hi = datetime.fromisoformat(span.min_ts), datetime.fromisoformat(span.max_ts)
        if lo < end and hi >= start:
            selected.append(path)
        else:
            index._tables.pop(str(path.relative_to(landing_dir)), None)
    return selected, rejected


def read_hour(
    landing_dir: Path,
    start: datetime,
    end: datetime,
    contract: Contract,
    index: LandingIndex,
    partition_key: str,
) -> tuple[pa.Table, list[str], list[FileRejection]]:
    """The typed readings of the hour [start, end) from every landing file, with source columns.

    Rows without a parsable timestamp travel with the partition that claimed their file. Returns
    the rows, the files read and the whole-file rejections reported in this partition.
    """
    paths, rejected = files_for_window(landing_dir, start, end, contract, index, partition_key)
    tables, files = [], []
    for path in paths:
        rel = str(path.relative_to(landing_dir))
        table = index._tables.pop(rel, None)
        if table is None:
            table, rejection = read_landing_file(path, landing_dir, contract)
            if table is None:
                rejected.append(rejection)
                continue
        span = index.entries[rel]
        # Rows with no usable timestamp go with the hour of the file's first reading.
        claimed = span.claimed_by == partition_key or (
            span.min_ts is not None and start <= datetime.fromisoformat(span.min_ts) < end
        )
        con = duckdb.connect()
        try:
            con.register("t", table)
            hour = con.sql(
                f"SELECT * FROM t WHERE (ts >= TIMESTAMPTZ '{start.isoformat()}' "
                f"AND ts < TIMESTAMPTZ '{end.isoformat()}')" + (" OR ts IS NULL" if claimed else "")
            ).to_arrow_table()
        finally:
            con.close()
        if hour.num_rows:
            tables.append(hour)
            files.append(rel)
    if not tables:
        return empty_readings(contract), files, rejected
    return pa.concat_tables(tables, promote_options="default"), files, rejected


def empty_readings(contract: Contract) -> pa.Table:
    """A zero-row table in the typed sensor_readings shape (plus source columns)."""
    con = duckdb.connect()
    try:
        cols = ", ".join(
            f"CAST(NULL AS {ARROW_TYPES[c.type]}) AS {c.name}" for c in contract.columns
        )
        t = con.sql(
            f"SELECT {cols}, CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS BIGINT) AS source_row,"
            " CAST(NULL AS VARCHAR) AS parse_errors LIMIT 0"
        ).to_arrow_table()
        return t
    finally:
        con.close()
