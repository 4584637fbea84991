"""The readings of one hour: which landing files hold it, its typed rows as SQL, hours to refresh.

An hour's readings are one ``SELECT ... UNION ALL ...`` over the files that hold that hour, plus
one row per rejected file or file notice, so the partition holds everything the landing zone
delivered for the hour.

A file belongs to the hours its plausible readings fall in. Rows that name no hour (no usable or
an implausible timestamp) go with the hour of the file's first plausible reading; a file without
any, and a file rejected as a whole, belong to the hour its name carries, else its mtime hour.

Unless the landing zone is authoritative (``config/ingestion.yaml``), files removed from it
(archived, moved away, an unmounted directory) change nothing: their readings stay in the hour's
partition when it is materialized again, and their removal requests no refresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from refrig_assets.core.contracts import ARROW_TYPES, Contract
from refrig_assets.core.duck import sql_str
from refrig_assets.ingestion.landing.discovery import discover_landing
from refrig_assets.ingestion.landing.hour_keys import hour_key
from refrig_assets.ingestion.landing.index import FileSpan, LandingIndex, mtime_utc
from refrig_assets.ingestion.landing.readers import (
    FILE_INDEX,
    SOURCE_COLUMNS,
    FileLayout,
    FileRejection,
    extra_column_notices,
    file_select_sql,
    files_select_sql,
    open_file,
    per_file_sql,
    plausible_sql,
    scan_together,
)
from refrig_assets.ingestion.settings import load_ingestion_settings


@dataclass
class HourSelection:
    """The landing files of one hour: those to read, and what to report in this partition."""

    paths: list[Path]
    claimed: set[str]  # files whose rows without a timestamp belong to this hour
    rejected: list[FileRejection]
    notices: list[FileRejection]
    considered: dict[str, str]  # every file of the hour (read or rejected): path -> fingerprint
    present: dict[str, str] = field(default_factory=dict)  # every landing file -> fingerprint


def landing_spans(landing_dir: Path, contract: Contract, index: LandingIndex):
    """(path, relative path, span) of every file in the landing zone (uploads in progress and
    hidden files skipped); a file removed while listing is left out."""
    suffixes = load_ingestion_settings().in_progress_suffixes
    for path in discover_landing(landing_dir, suffixes):
        try:
            span = index.span(path, landing_dir, contract)
        except FileNotFoundError:
            continue
        yield path, str(path.relative_to(landing_dir)), span


@dataclass
class LandingListing:
    """Every landing file's span, listed once, by the hours it holds (a range of hours lists
    the landing zone once for all its hours instead of once per hour)."""

    present: dict[str, str]  # every landing file -> fingerprint
    by_hour: dict[str, list[tuple[Path, str, FileSpan]]]

    @classmethod
    def scan(cls, landing_dir: Path, contract: Contract, index: LandingIndex) -> LandingListing:
        """List the landing zone (scanning new or changed files into ``index``)."""
        present: dict[str, str] = {}
        by_hour: dict[str, list[tuple[Path, str, FileSpan]]] = {}
        for path, rel, span in landing_spans(landing_dir, contract, index):
            present[rel] = span.fingerprint
            for hour in dict.fromkeys(span.hours):
                by_hour.setdefault(hour, []).append((path, rel, span))
        return cls(present, by_hour)


def select_hour_files(
    landing_dir: Path,
    partition_key: str,
    contract: Contract,
    index: LandingIndex,
    listing: LandingListing | None = None,
) -> HourSelection:
    """Files holding readings of the hour, plus the rejections and notices to report in it.

    A rejected file, and a file without any plausible timestamp, belongs to the hour its name
    carries (else its mtime hour). A file with the same content as another file of the hour
    (delivered twice under another name) is not read again: the later delivery is rejected as
    ``duplicate_file``. ``listing``: the landing zone as listed for a range of hours (default:
    listed now).
    """
    paths, claimed, rejected, notices = [], set(), [], []
    considered: dict[str, str] = {}
    if listing is None:
        listing = LandingListing.scan(landing_dir, contract, index)
    present = listing.present
    for path, rel, span in listing.by_hour.get(partition_key, []):
        considered[rel] = span.fingerprint
        if span.rejection is not None:
            rejected.append(FileRejection(**span.rejection))
            continue
        if span.min_ts is None or hour_key(datetime.fromisoformat(span.min_ts)) == partition_key:
            claimed.add(rel)  # its rows without a plausible timestamp belong to this hour
        paths.append(path)
    paths, duplicates = _drop_duplicate_files(paths, landing_dir, index)
    rejected += duplicates
    for path in paths:
        rel = str(path.relative_to(landing_dir))
        span = index.entries[rel]
        notices += extra_column_notices(rel, span.extra_columns, span.extra_column_count)
    return HourSelection(paths, claimed, rejected, notices, considered, present)


def _drop_duplicate_files(
    paths: list[Path], landing_dir: Path, index: LandingIndex
) -> tuple[list[Path], list[FileRejection]]:
    by_size: dict[int, list[Path]] = {}
    for p in paths:
        by_size.setdefault(index.entries[str(p.relative_to(landing_dir))].size, []).append(p)
    # files of one size whose last bytes (a Parquet footer's statistics) differ cannot be the
    # same: only those alike there are hashed whole
    alike: list[list[Path]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_tail: dict[str, list[Path]] = {}
        for p in same_size:
            by_tail.setdefault(_tail_digest(p), []).append(p)
        alike += [group for group in by_tail.values() if len(group) > 1]
    dropped: dict[Path, FileRejection] = {}
    for same in alike:
        first_by_hash: dict[str, Path] = {}
        for p in sorted(
            same,
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


# Bytes at the end of a file compared before two files of one size are hashed whole.
TAIL_BYTES = 64 * 1024


def _tail_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return hashlib.sha256(fh.read()).hexdigest()


@dataclass
class HourReadings:
    """The typed readings of one hour as a SQL query on a connection, with their provenance."""

    sql: str
    files: list[str]  # files whose rows were read
    considered: dict[str, str]  # every file of the hour (read or rejected): path -> fingerprint
    rejected: list[FileRejection]
    notices: list[FileRejection]
    retained: list[str] = field(default_factory=list)  # removed files whose rows were kept
    # changed files -> how many readings of their earlier versions were kept
    kept: dict[str, int] = field(default_factory=dict)


def hour_readings(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    start: datetime,
    end: datetime,
    partition_key: str,
    contract: Contract,
    index: LandingIndex,
    *,
    previous: Path | None = None,
    authoritative: bool | None = None,
    listing: LandingListing | None = None,
    scan_together_files: bool = True,
) -> HourReadings:
    """SQL (valid on ``con``) of every reading of the hour [start, end) in the typed shape.

    A row belongs to the hour of its ``ts``; rows without a usable or with an implausible
    timestamp go with the hour of their file's first plausible reading. Rows of files that the
    hour's first materialization did not read are marked ``late_arrival``.

    ``previous`` is the hour's partition as last written. Unless the landing zone is
    ``authoritative`` (default: config/ingestion.yaml), the rows it holds from files no longer
    in the landing zone are kept (a file moved within it, same size and mtime, is read under its
    new name instead), and so are its readings of a file of the hour delivered again that the
    hour no longer has (see :func:`_kept_rows_sql`). ``listing``: the landing zone listed once
    for a range of hours.

    An hour of several Parquet files of one layout and nothing else (no rejected file, notice
    or kept rows) is read in one scan (:func:`files_select_sql`), so writing it streams in the
    budget's memory however many files it has; otherwise, or with
    ``scan_together_files=False`` (the SQL Spark translates), one SELECT per file.
    """
    if authoritative is None:
        authoritative = load_ingestion_settings().authoritative
    selection = select_hour_files(landing_dir, partition_key, contract, index, listing)
    first_files = index.hour_files(partition_key, "first_files")
    selects, files = [], []
    rejected = list(selection.rejected)
    opened: list[_OpenedFile] = []
    for i, path in enumerate(selection.paths):
        rel = str(path.relative_to(landing_dir))
        span = index.entries[rel]
        layout, rejection = open_file(con, path, landing_dir, contract, f"h{i}")
        if layout is None:  # changed between scan and read
            if rejection is not None:
                rejected.append(rejection)
            continue
        late = first_files is not None and first_files.get(rel) != span.fingerprint
        opened.append(_OpenedFile(layout, mtime_utc(span.mtime_ns), late, rel in selection.claimed))
        files.append(rel)
    others = []  # rows after the files' rows: rejected files, notices, removed files' rows
    file_rows = file_rows_sql(contract, rejected + selection.notices)
    if file_rows:
        others.append(file_rows)
    considered = dict(selection.considered)
    retained: list[str] = []
    kept: dict[str, int] = {}
    if not authoritative and previous is not None and previous.exists():
        recorded = index.hour_files(partition_key) or {}
        versions = _previous_versions(con, previous)
        retained = _removed_files(versions, selection, recorded)
        cols = ", ".join([*contract.column_names, *SOURCE_COLUMNS])
        if retained:
            names = ", ".join(sql_str(f) for f in retained)
            others.append(
                f"SELECT {cols} FROM read_parquet({sql_str(str(previous))}) "
                f"WHERE source_file IN ({names})"
            )
            considered.update({f: recorded.get(f, "retained") for f in retained})
        changed = _changed_files(versions, selection, recorded, index)
        if changed:
            new_rows = [_run_sql(run, contract, start, end) for run in _runs(opened, False)]
            sql = _kept_rows_sql(previous, changed, new_rows, cols)
            counts = con.execute(f"SELECT source_file, count(*) FROM ({sql}) GROUP BY 1 ORDER BY 1")
            kept = {f: int(n) for f, n in counts.fetchall()}
            if kept:
                others.append(sql)
    # One scan only as the whole query: DuckDB 2.0's ordered writer can misplace the rows of a
    # multi-file scan that is one branch of a UNION ALL (seen on small files, 4 runs in 15).
    together = scan_together_files and not others and len(_runs(opened, together=True)) == 1
    selects += [_run_sql(run, contract, start, end) for run in _runs(opened, together)]
    selects += others
    if not selects:
        selects = [empty_readings_sql(contract)]
    return HourReadings(
        " UNION ALL ".join(selects),
        files,
        considered,
        rejected,
        selection.notices,
        retained,
        kept,
    )


@dataclass
class _OpenedFile:
    layout: FileLayout
    received: datetime
    late: bool
    claimed: bool  # its rows without a plausible timestamp belong to this hour


def _runs(opened: list[_OpenedFile], together: bool) -> list[list[_OpenedFile]]:
    """The files in order, consecutive ones readable in one scan grouped (each alone unless
    ``together``)."""
    runs: list[list[_OpenedFile]] = []
    for f in opened:
        if together and runs and scan_together([runs[-1][0].layout, f.layout]):
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _run_sql(run: list[_OpenedFile], contract: Contract, start: datetime, end: datetime) -> str:
    """The typed rows of the hour [start, end) from a run of files (see :func:`_runs`)."""
    if len(run) == 1:
        (f,) = run
        sql = file_select_sql(f.layout, contract, f.received, f.late)
        received = f"TIMESTAMPTZ {sql_str(f.received.isoformat())}"
        claimed, keep = ("TRUE" if f.claimed else "FALSE"), "*"
    else:
        sql = files_select_sql(
            [f.layout for f in run], contract, [f.received for f in run], [f.late for f in run]
        )
        received = per_file_sql([f"TIMESTAMPTZ {sql_str(f.received.isoformat())}" for f in run])
        claimed = per_file_sql(["TRUE" if f.claimed else "FALSE" for f in run])
        keep = f"* EXCLUDE ({FILE_INDEX})"
    placed = plausible_sql(contract, "ts", received)
    in_hour = (
        f"({placed} AND ts >= {sql_str(start.isoformat())} AND ts < {sql_str(end.isoformat())})"
    )
    if claimed == "TRUE":
        in_hour = f"({in_hour} OR NOT {placed})"
    elif claimed != "FALSE":  # some files of the run claim them
        in_hour = f"({in_hour} OR ({claimed} AND NOT {placed}))"
    return f"SELECT {keep} FROM ({sql}) WHERE {in_hour}"


def _previous_versions(con: duckdb.DuckDBPyConnection, previous: Path) -> dict[str, set]:
    """Every file the hour's last partition holds rows of -> the first and last ``received_at``
    (the file's mtime when read) of its rows: one time unless readings of an earlier version of
    the file were kept (a rejected file's row has none)."""
    rows = con.execute(
        "SELECT source_file, min(received_at), max(received_at) "
        f"FROM read_parquet({sql_str(str(previous))}) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {f: {t for t in (first, last) if t is not None} for f, first, last in rows}


def _removed_files(
    versions: dict[str, set], selection: HourSelection, recorded: dict[str, str]
) -> list[str]:
    """Files the hour's last partition holds rows of that are no longer in the landing zone.

    A file moved within the landing zone keeps its size and mtime: when a file of the hour now
    has the fingerprint the hour recorded for a missing one, the missing one is not kept.
    """
    moved_to = set(selection.considered.values())
    return [
        f for f in versions if f not in selection.present and recorded.get(f, "") not in moved_to
    ]


def _changed_files(
    versions: dict[str, set],
    selection: HourSelection,
    recorded: dict[str, str],
    index: LandingIndex,
) -> list[str]:
    """Files of the hour whose partition rows may come from an earlier version of them: the
    fingerprint the hour recorded differs from the file's now, or readings kept from an earlier
    version were received at another mtime than the file's now (they stay kept when the hour
    is materialized again). Cheap: no file is read."""
    changed = []
    for f, fingerprint in selection.considered.items():
        if f not in versions:
            continue
        now = mtime_utc(index.entries[f].mtime_ns)
        if recorded.get(f, fingerprint) != fingerprint or versions[f] - {now}:
            changed.append(f)
    return changed


def _kept_rows_sql(previous: Path, changed: list[str], new_rows: list[str], cols: str) -> str:
    """The readings of the hour's last partition from ``changed`` files that the hour's rows
    now (``new_rows``, one SELECT per file) no longer have.

    A reading is its (device_id, ts): one the new rows have takes their values (a correction
    corrects), and a row without a device or a time, or with a read error, is never kept (a bad
    row the new version fixed must not come back). The hour's rows of every file count, not only
    of the changed ones: readings a re-delivery moved to another file are not kept twice.
    """
    names = ", ".join(sql_str(f) for f in changed)
    new_keys = " UNION ALL ".join(f"SELECT device_id, ts FROM ({sql})" for sql in new_rows)
    if not new_keys:
        new_keys = "SELECT NULL AS device_id, NULL AS ts LIMIT 0"
    return (
        f"SELECT {cols} FROM read_parquet({sql_str(str(previous))}) AS p "
        f"WHERE source_file IN ({names}) AND read_error IS NULL AND device_id IS NOT NULL "
        f"AND ts IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ({new_keys}) AS n "
        "WHERE n.device_id = p.device_id AND n.ts = p.ts)"
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
    landing_dir: Path,
    contract: Contract,
    index: LandingIndex,
    authoritative: bool | None = None,
) -> dict[str, dict[str, list[str]]]:
    """Materialized hours whose landing files changed since their latest materialization.

    Returns ``{partition_key: {"added": [...], "changed": [...], "removed": [...]}}`` for every
    hour the index has a record of whose current files (path → fingerprint) differ from the ones
    it read: a late file, a re-delivery, a corrected file. A removed file counts only when the
    landing zone is ``authoritative`` (default: config/ingestion.yaml); a landing directory that
    does not exist (unmounted) changes nothing either way.
    """
    if authoritative is None:
        authoritative = load_ingestion_settings().authoritative
    if not landing_dir.is_dir():
        return {}
    current: dict[str, dict[str, str]] = {}
    present: set[str] = set()
    for _, rel, span in landing_spans(landing_dir, contract, index):
        present.add(rel)
        for h in span.hours:
            current.setdefault(h, {})[rel] = span.fingerprint
    out = {}
    for key, record in index.hours.items():
        now, then = current.get(key, {}), record["files"]
        removed = sorted(set(then) - set(now))
        changes = {
            "added": sorted(set(now) - set(then)),
            "changed": sorted(f for f in set(now) & set(then) if now[f] != then[f]),
            # without authority, only a file still in the landing zone that no longer holds
            # readings of the hour (a corrected delivery) changes it
            "removed": removed if authoritative else [f for f in removed if f in present],
        }
        if any(changes.values()):
            out[key] = changes
    return out
