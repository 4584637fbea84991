"""The landing index: what each landing file holds, and which files each materialized hour read.

Kept as JSON under the state directory so a file is scanned once per version (size + mtime), late
files can be recognised, and the late-data sensor knows which hours to refresh.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from refrig_assets.core.contracts import Contract
from refrig_assets.core.duck import connect, sql_str, utc_cursor
from refrig_assets.core.storage import durable_replace
from refrig_assets.ingestion.landing.hour_keys import file_hour, hours_between
from refrig_assets.ingestion.landing.readers import (
    NAMES_SHOWN,
    FileRejection,
    file_select_sql,
    lowered_earliest,
    open_file,
    plausible_sql,
)

# Version 2: spans list the hours a file's rows really touch, and a file that names no hour by
# its readings (rejected, or without a usable timestamp) lists the hour its name or mtime gives.
# Spans of older indexes are scanned again (the hours' records are kept).
INDEX_VERSION = 2


log = logging.getLogger(__name__)


def landing_index_path(settings) -> Path:
    """Where the landing index lives: the project's state directory."""
    return Path(settings.home) / "state" / "landing_index.json"


@dataclass(frozen=True)
class FileSpan:
    """What the landing index remembers about one version (size, mtime) of a file."""

    size: int
    mtime_ns: int
    min_ts: str | None
    max_ts: str | None
    rows: int
    rejection: dict | None = None
    claimed_by: str | None = None  # unused since index version 2 (see ``hours``)
    # The hours the file's plausible readings fall in; for a rejected file, or one without any
    # plausible timestamp, the hour its name carries, else its mtime hour (see file_hour).
    hours: list[str] = field(default_factory=list)
    first_seen: str | None = None
    content_hash: str | None = None
    # The first few columns beyond the contract (NAMES_SHOWN) and how many there are in all.
    extra_columns: list[str] = field(default_factory=list)
    extra_column_count: int = 0
    # The earliest plausible reading time the file was scanned with when the partitions'
    # declared start set it (an older history, see readers.plausible_timestamps); None: the
    # contract's. A file scanned under another earliest is scanned again.
    plausible_from: str | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


def mtime_utc(ns: int) -> datetime:
    """A file's mtime (ns since the epoch) as an aware UTC time: its rows' ``received_at``."""
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
        self._scans: duckdb.DuckDBPyConnection | None = None
        self._load()

    @property
    def backup_path(self) -> Path:
        """The index as it was before the last save."""
        return self.path.with_name(f"{self.path.name}.bak")

    def _read(self) -> dict:
        """The index on disk; its backup when the file is damaged; empty (files are rescanned,
        with a warning) when both are. The index is a cache of what the files hold, so a torn
        write never stops ingestion."""
        for candidate in (self.path, self.backup_path):
            if not candidate.exists():
                continue
            try:
                raw = json.loads(candidate.read_text() or "{}")
                if isinstance(raw, dict):
                    return raw
                raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                log.warning(
                    "landing index %s is unreadable (%s): trying its backup", candidate, exc
                )
        return {}

    def _load(self) -> None:
        raw = self._read()
        if "files" not in raw:  # none yet, or an index from before per-hour records: rescan
            return
        self.hours = raw.get("hours", {})
        if raw.get("version") == INDEX_VERSION:
            self.entries = {k: FileSpan(**v) for k, v in raw["files"].items()}

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
            with open(tmp, "w") as fh:
                json.dump(
                    {
                        "version": INDEX_VERSION,
                        "files": {k: dataclasses.asdict(v) for k, v in sorted(files.items())},
                        "hours": dict(sorted(hours.items())),
                    },
                    fh,
                )
            durable_replace(tmp, self.path, backup=self.backup_path)
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
            if e.rejection is not None and partition_key in e.hours
        ]

    def span(self, path: Path, landing_dir: Path, contract: Contract) -> FileSpan:
        """The span of the file's current version (scanned once per size + mtime, and again
        when the earliest plausible reading time changed: see :attr:`FileSpan.plausible_from`)."""
        rel = str(path.relative_to(landing_dir))
        st = path.stat()
        cached = self.entries.get(rel)
        earliest = lowered_earliest(contract)
        if (
            cached
            and cached.size == st.st_size
            and cached.mtime_ns == st.st_mtime_ns
            and cached.plausible_from == earliest
        ):
            return cached
        if self._scans is None:  # one in-memory database for all the files this index scans
            self._scans = connect()
        span = scan_file(path, landing_dir, contract, st, self._scans)
        span = dataclasses.replace(span, plausible_from=earliest)
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


# A file whose plausible readings span at most this many hours is indexed by the hours between
# its first and last reading (count, min and max come from Parquet statistics, no scan); a wider
# span is scanned for the hours it really touches.
SPAN_FROM_STATISTICS_HOURS = 2


def _span(con, sql: str, placed: str) -> tuple[int, datetime | None, datetime | None, list[str]]:
    """Rows, first and last plausible reading, and the hours the readings fall in."""
    rows, lo, hi = con.execute(f"SELECT count(*), min(ts), max(ts) FROM ({sql})").fetchall()[0]
    if lo is not None:
        bounds_placed = con.execute(
            f"SELECT bool_and({placed}) FROM (SELECT unnest([$lo, $hi]) AS ts)",
            {"lo": lo, "hi": hi},
        ).fetchall()[0][0]
        if bounds_placed and (hi - lo).total_seconds() <= SPAN_FROM_STATISTICS_HOURS * 3600:
            return rows, lo, hi, hours_between(lo, hi)
    rows, lo, hi, hours = con.execute(
        f"SELECT count(*), min(ts) FILTER ({placed}), max(ts) FILTER ({placed}), "
        f"list(DISTINCT strftime(date_trunc('hour', ts), '%Y-%m-%d-%H:00')) "
        f"FILTER ({placed}) FROM ({sql})"
    ).fetchall()[0]
    return rows, lo, hi, hours


def scan_file(
    path: Path,
    landing_dir: Path,
    contract: Contract,
    st: os.stat_result,
    database: duckdb.DuckDBPyConnection | None = None,
) -> FileSpan:
    """Open a file once: its rejection, or its rows, time span, hours and extra columns.

    The hours are those the file's plausible readings really fall in (one scan of ``ts``), so a
    reading stamped 1970 or 2099 neither widens the span nor lists every hour in between.

    ``database``: scan in a new connection to that database (its temporary tables, a CSV
    file's, go when the scan ends), not a new database: opening one costs ~17 ms of CPU, more
    than scanning a small file."""
    con = connect() if database is None else utc_cursor(database)
    try:
        layout, rejection = open_file(con, path, landing_dir, contract, "scan")
        now = datetime.now(UTC).isoformat()
        received = mtime_utc(st.st_mtime_ns)
        own_hour = [file_hour(path.name, received)]
        if layout is not None:
            sql = file_select_sql(layout, contract, received, False)
            placed = plausible_sql(contract, "ts", f"TIMESTAMPTZ {sql_str(received.isoformat())}")
            rows, lo, hi, hours = _span(con, sql, placed)
            if rows == 0:
                rejection = FileRejection(
                    layout.rel, "empty_file", f"{layout.rel}: file has no data rows"
                )
        if rejection is not None or layout is None:
            reason = rejection.__dict__ if rejection is not None else None
            return FileSpan(
                st.st_size, st.st_mtime_ns, None, None, 0, reason, hours=own_hour, first_seen=now
            )
        known = set(contract.column_names)
        extra = [n for n in layout.types if n not in known]
        return FileSpan(
            st.st_size,
            st.st_mtime_ns,
            lo.isoformat() if lo else None,
            hi.isoformat() if hi else None,
            rows,
            hours=sorted(hours) if lo is not None else own_hour,
            first_seen=now,
            extra_columns=extra[:NAMES_SHOWN],
            extra_column_count=len(extra),
        )
    finally:
        con.close()
