"""Parquet datasets on disk, one file per (dataset, partition), written atomically.

Layout: ``<data_dir>/<dataset>/<partition>.parquet`` where ``<partition>`` is a filesystem- and
Hadoop-safe form of the Dagster partition key (``2026-01-01-05:00`` → ``2026-01-01T05``). The same
layout is read by DuckDB, pandas and Spark. A write goes to a hidden temporary file in the same
directory and is renamed into place, so a killed run leaves either the old partition or the new
one, never half of one. Its temporary file names its writer (process id and host): the next
write into that directory removes the leftovers of writers that are gone.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

UNPARTITIONED = "all"
# DuckDB's Parquet writer first tries a dictionary for every column; for the readings' doubles
# that is wasted work (a fifth of the encode of an hour), and zstd keeps the strings as small
# without one (same file size at 100K devices), so no dictionaries.
DUCKDB_PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, DICTIONARY_SIZE_LIMIT 1"
DUCKDB_ROW_GROUP_SIZE = 500_000  # rows per row group unless a writer asks for another size


def partition_file_name(partition_key: str | None) -> str:
    """Map a Dagster partition key to a safe file stem (no ':' — Hadoop paths reject it)."""
    if not partition_key:
        return UNPARTITIONED
    key = partition_key.replace(":00", "") if partition_key.endswith(":00") else partition_key
    if len(key) == 13 and key[10] == "-":  # hourly key 2026-01-01-05 → 2026-01-01T05
        key = key[:10] + "T" + key[11:]
    return key.replace(":", "")


def without_null_types(table: pa.Table) -> pa.Table:
    """Columns pandas could not type (empty or all-null object columns, e.g. an empty hour's
    partition) stored as strings, so the partition reads back together with its neighbours."""
    if not any(pa.types.is_null(f.type) for f in table.schema):
        return table
    schema = pa.schema(
        [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema],
        metadata=table.schema.metadata,
    )
    return table.cast(schema)


def durable_replace(tmp: Path, final: Path, backup: Path | None = None) -> None:
    """Make ``tmp`` durable, rename it over ``final`` and make the rename durable: after a
    power loss the file is the old one or the whole new one, never a torn one. With
    ``backup``, the previous ``final`` stays there (a hard link: no copy)."""
    _fsync_file(tmp)
    _replace_durably(tmp, final, backup)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _replace_durably(tmp: Path, final: Path, backup: Path | None = None) -> None:
    """The rename half of :func:`durable_replace`: only for a ``tmp`` already fsynced."""
    if backup is not None and final.exists():
        link = backup.with_name(f".{backup.name}.{uuid.uuid4().hex}.tmp")
        os.link(final, link)
        os.replace(link, backup)
    os.replace(tmp, final)
    _KEPT.forget(final)
    _fsync_directory(final.parent)


@contextmanager
def fsynced_meanwhile(path: Path) -> Iterator[None]:
    """fsync ``path`` in a background thread while the block runs; the block's end waits for
    it and raises its error (the block's own exception wins when both fail).

    A freshly written file of hundreds of MB is mostly still in the page cache, so its fsync
    writes it all (0.2 s for 300 MB); the block's reads of the file overlap that write."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _fsync_file(path)
        except BaseException as exc:  # handed to the caller at the join
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"fsync {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if errors:
        raise errors[0]


_WRITER = f"{os.getpid()}@{socket.gethostname()}"
# Directories this process has swept of dead writers' temporary files (once each).
_SWEPT: set[Path] = set()


def temporary_for(final: Path) -> Path:
    """A hidden temporary file next to ``final`` (its directory made if missing), to be renamed
    over it once written and durable. Its name ends with the writer (``<pid>@<host>``); the
    first call for a directory in a process removes the temporary files of writers that are
    gone (a run killed mid-write)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.parent not in _SWEPT:
        _SWEPT.add(final.parent)
        _remove_dead_writers_files(final.parent)
    return final.parent / f".{final.stem}.{uuid.uuid4().hex}.{_WRITER}.tmp"


def _remove_dead_writers_files(directory: Path) -> None:
    with os.scandir(directory) as entries:
        names = [e.name for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")]
    for name in names:
        if _writer_gone(name):
            (directory / name).unlink(missing_ok=True)


def _writer_gone(name: str) -> bool:
    """Whether the temporary file ``name`` was written by a process of this host that no longer
    runs (a file of another host, or of an unknown writer, is never taken for gone)."""
    base = name[: -len(".tmp")]
    at = base.rfind("@")
    pid, host = base[:at].rsplit(".", 1)[-1], base[at + 1 :]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# fsyncs of a staged batch run at once: the filesystem's journal commits them together.
STAGED_FSYNC_THREADS = 8


class StagedPartitions:
    """Partitions written to hidden temporary files (:meth:`ParquetStore.staged`) and made
    durable together: every file fsynced (at once), then each renamed over its partition and
    each directory fsynced once. A partition is therefore replaced only by a whole file already
    on disk, as :func:`durable_replace` does for one, but a range of small hours costs one
    round of fsyncs instead of one file and one directory fsync per hour."""

    def __init__(self, store: ParquetStore):
        self._store = store
        self._staged: dict[Path, Path] = {}  # final path -> its temporary file

    def from_duckdb(
        self,
        dataset: str,
        partition_key: str | None,
        con,
        query: str,
        *,
        row_group_size: int | None = None,
    ) -> Path:
        """Write the result of a DuckDB query (as :meth:`ParquetStore.write_from_duckdb`
        writes it) to the partition's temporary file, returned for reading until
        :meth:`commit`; the partition's final path is :meth:`ParquetStore.path`."""
        final = self._store.path(dataset, partition_key)
        if final in self._staged:
            raise ValueError(f"{final}: staged twice")
        tmp = self._staged[final] = temporary_for(final)
        con.execute(f"COPY ({query}) TO '{tmp}' ({_duckdb_options(row_group_size)})")
        return tmp

    def commit(self) -> list[Path]:
        """Make every staged file durable, then rename each into place (in the order staged)
        and fsync their directories; the final paths. An fsync that fails renames nothing."""
        staged = list(self._staged.items())
        if not staged:
            return []
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(STAGED_FSYNC_THREADS, len(staged))) as pool:
            list(pool.map(_fsync_file, [tmp for _, tmp in staged]))
        for final, tmp in staged:
            os.replace(tmp, final)
            _KEPT.forget(final)
            del self._staged[final]
        for directory in dict.fromkeys(final.parent for final, _ in staged):
            _fsync_directory(directory)
        return [final for final, _ in staged]

    def discard(self) -> None:
        """Remove the temporary files not committed (their partitions stay as they were)."""
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()


# Reads kept while a range of hours runs (:func:`reads_kept`): files up to this size, and at
# most this many tables of at most this many bytes in all, the least recently read dropped.
KEPT_FILE_BYTES = 4 * 2**20
KEPT_TABLES = 512
KEPT_BYTES = 256 * 2**20


class _KeptReads:
    """Arrow tables of small Parquet files as read, for the hours of a range that read the same
    partitions again (the look-back hours of features, scores and baselines). A table is
    returned only while its file is the one read (same inode, size, mtime and ctime: every
    write renames a new file into place), so a read gives what reading the file gives; Arrow
    tables are immutable, so every caller can be given the same one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.tables: dict[tuple, tuple[tuple, pa.Table]] = {}
        self.bytes = 0

    def read(self, path: Path, columns=None, filters=None) -> pa.Table:
        if not self.holders:
            return pq.read_table(path, columns=columns, filters=filters)
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = (str(path), None if columns is None else tuple(columns), repr(filters))
        with self.lock:
            found = self.tables.pop(key, None)
            if found is not None:
                self.tables[key] = found  # the most recently read last
                if found[0] == stamp:
                    return found[1]
                self._drop(key)
        table = pq.read_table(path, columns=columns, filters=filters)
        if st.st_size <= KEPT_FILE_BYTES:
            with self.lock:
                if self.holders and key not in self.tables:
                    self.tables[key] = (stamp, table)
                    self.bytes += table.nbytes
                    while self.tables and (
                        len(self.tables) > KEPT_TABLES or self.bytes > KEPT_BYTES
                    ):
                        self._drop(next(iter(self.tables)))
        return table

    def forget(self, path: Path) -> None:
        """Drop what was kept of ``path`` (a write of this process renamed a file over it:
        a file's stamp could repeat when a small file is rewritten within a clock tick)."""
        if not self.tables:
            return
        name = str(path)
        with self.lock:
            for key in [k for k in self.tables if k[0] == name]:
                self._drop(key)

    def _drop(self, key: tuple) -> None:
        _, table = self.tables.pop(key)
        self.bytes -= table.nbytes


_KEPT = _KeptReads()


@contextmanager
def reads_kept() -> Iterator[None]:
    """Within the block (a range of hours), :func:`read_parquet_table`, :meth:`ParquetStore.read`
    and :meth:`ParquetStore.read_many` keep the tables of small files they read and give them
    again while the file has not changed; everything kept is dropped when the last such block
    ends. Outside any block every read reads the file."""
    with _KEPT.lock:
        _KEPT.holders += 1
    try:
        yield
    finally:
        with _KEPT.lock:
            _KEPT.holders -= 1
            if not _KEPT.holders:
                _KEPT.tables.clear()
                _KEPT.bytes = 0


def read_parquet_table(path: Path, columns=None, filters=None) -> pa.Table:
    """``pyarrow.parquet.read_table(path, columns=, filters=)``, kept within
    :func:`reads_kept`."""
    return _KEPT.read(path, columns, filters)


def _duckdb_options(row_group_size: int | None) -> str:
    rows = int(row_group_size or DUCKDB_ROW_GROUP_SIZE)
    return f"{DUCKDB_PARQUET_OPTIONS}, ROW_GROUP_SIZE {rows}"


class ParquetStore:
    """Reads and writes partitioned Parquet datasets under one root directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, dataset: str, partition_key: str | None = None) -> Path:
        return self.root / dataset / f"{partition_file_name(partition_key)}.parquet"

    def exists(self, dataset: str, partition_key: str | None = None) -> bool:
        return self.path(dataset, partition_key).exists()

    def write(self, dataset: str, partition_key: str | None, data: pd.DataFrame | pa.Table) -> Path:
        """Atomically replace one partition with ``data``; returns the final path."""
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        table = without_null_types(table)
        final = self.path(dataset, partition_key)
        tmp = temporary_for(final)
        try:
            pq.write_table(table, tmp, compression="zstd")
            durable_replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    @contextmanager
    def writer(
        self,
        dataset: str,
        partition_key: str | None,
        schema: pa.Schema | None = None,
        *,
        dictionary: bool = True,
    ) -> Iterator[PartitionWriter]:
        """Write one partition piece by piece: ``with store.writer(ds, key) as w: w.write(df)``.

        The pieces go to a hidden temporary file that replaces the partition only when the block
        ends normally; an exception inside the block, or :meth:`PartitionWriter.discard`, leaves
        the previous partition (or none) and no temporary file. ``dictionary=False`` writes
        without dictionary pages, as :meth:`write_from_duckdb` does (half the CPU for readings,
        whose values rarely repeat)."""
        final = self.path(dataset, partition_key)
        tmp = temporary_for(final)
        out = PartitionWriter(final, tmp, schema, dictionary=dictionary)
        try:
            yield out
            out.commit()
        finally:
            out.close()
            if out.tmp.exists():
                out.tmp.unlink()

    def write_from_duckdb(
        self,
        dataset: str,
        partition_key: str | None,
        con,
        query: str,
        *,
        row_group_size: int | None = None,
    ) -> Path:
        """Atomically write the result of a DuckDB query without materialising it in pandas
        (``row_group_size`` rows per row group instead of the default's)."""
        with self.written_from_duckdb(
            dataset, partition_key, con, query, row_group_size=row_group_size
        ):
            pass  # nothing to read before the rename
        return self.path(dataset, partition_key)

    @contextmanager
    def written_from_duckdb(
        self,
        dataset: str,
        partition_key: str | None,
        con,
        query: str,
        *,
        row_group_size: int | None = None,
    ) -> Iterator[Path]:
        """:meth:`write_from_duckdb` that yields the written temporary file for the block to
        read (counts, checks) while the file is fsynced in the background.

        The file is renamed into place only after the block ends normally and the fsync
        succeeded, so nothing appears under the partition's name before its data is on disk;
        an error in the query, the block or the fsync leaves the previous partition (or none)
        and no temporary file. The partition's final path is :meth:`path`."""
        final = self.path(dataset, partition_key)
        tmp = temporary_for(final)
        try:
            con.execute(f"COPY ({query}) TO '{tmp}' ({_duckdb_options(row_group_size)})")
            with fsynced_meanwhile(tmp):
                yield tmp
            _replace_durably(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()

    @contextmanager
    def staged(self) -> Iterator[StagedPartitions]:
        """Write several partitions and replace them together when the block ends normally
        (:class:`StagedPartitions`); an exception inside the block (or in the commit) leaves
        every partition not yet renamed as it was, and no temporary file."""
        batch = StagedPartitions(self)
        try:
            yield batch
            batch.commit()
        finally:
            batch.discard()

    def read(self, dataset: str, partition_key: str | None = None, columns=None) -> pd.DataFrame:
        """Read one partition into pandas (FileNotFoundError when it was never written)."""
        path = self.path(dataset, partition_key)
        if not path.exists():
            raise FileNotFoundError(f"{dataset} partition {partition_key!r} not found at {path}")
        return read_parquet_table(path, columns=columns).to_pandas()

    def read_many(
        self, dataset: str, partition_keys: Iterable[str], columns=None, filters=None
    ) -> pd.DataFrame:
        """Concatenate the partitions that exist (missing ones are skipped); ``filters``
        (pyarrow's, e.g. ``[("window_start", ">=", ts)]``) keeps only matching rows."""
        paths = [self.path(dataset, k) for k in partition_keys]
        paths = [p for p in paths if p.exists()]
        if not paths:
            return pd.DataFrame()
        return pa.concat_tables(
            [read_parquet_table(p, columns=columns, filters=filters) for p in paths],
            # Partitions written by pandas (ns) and DuckDB (us) differ only in timestamp unit.
            promote_options="permissive",
        ).to_pandas()

    def existing_paths(self, dataset: str, partition_keys: Iterable[str]) -> list[Path]:
        return [p for p in (self.path(dataset, k) for k in partition_keys) if p.exists()]

    def partitions(self, dataset: str) -> list[str]:
        """File stems of the partitions present, sorted."""
        d = self.root / dataset
        if not d.exists():
            return []
        return sorted(p.stem for p in d.glob("*.parquet") if not p.name.startswith("."))


class PartitionWriter:
    """Appends frames to one partition's temporary file (see :meth:`ParquetStore.writer`)."""

    def __init__(
        self, final: Path, tmp: Path, schema: pa.Schema | None = None, *, dictionary: bool = True
    ):
        self.final, self.tmp, self.schema = final, tmp, schema
        self.dictionary = dictionary
        self.rows = 0
        self.discarded = False
        self.committed = False
        self._writer: pq.ParquetWriter | None = None

    def write(self, data: pd.DataFrame | pa.Table) -> None:
        """Append ``data`` (the first piece fixes the schema unless one was given)."""
        if self.discarded:
            raise RuntimeError(f"{self.final}: write after discard")
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        if self._writer is None:
            self.schema = self.schema or table.schema
            self._writer = self._open()
        if not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _open(self) -> pq.ParquetWriter:
        return pq.ParquetWriter(
            self.tmp, self.schema, compression="zstd", use_dictionary=self.dictionary
        )

    def discard(self) -> None:
        """Give up this partition: nothing replaces the one on disk when the block ends."""
        self.discarded = True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> Path | None:
        """Close the file, make it durable and rename it into place (None when discarded).

        With nothing written the partition becomes an empty file of ``schema``."""
        if self.discarded:
            return None
        if self.committed:
            return self.final
        self._closed_whole()
        durable_replace(self.tmp, self.final)
        self.committed = True
        return self.final

    @contextmanager
    def committing(self) -> Iterator[Path]:
        """:meth:`commit` that yields the closed temporary file for the block to read (counts,
        checks) while it is fsynced in the background, as
        :meth:`ParquetStore.written_from_duckdb` does.

        The file is renamed into place only after the block ends normally and the fsync
        succeeded; an error leaves the previous partition (the writer's block then removes the
        temporary file). The writer's own commit at the end of its block does nothing more."""
        if self.discarded:
            raise RuntimeError(f"{self.final}: commit after discard")
        self._closed_whole()
        with fsynced_meanwhile(self.tmp):
            yield self.tmp
        _replace_durably(self.tmp, self.final)
        self.committed = True

    def _closed_whole(self) -> None:
        """Close the file; with nothing written, an empty file of ``schema``."""
        if self._writer is None:
            if self.schema is None:
                raise ValueError(f"{self.final}: nothing written and no schema to write")
            self._writer = self._open()
        self.close()
