"""Dagster's SQLite run storage over the same ``runs.db``, its connection kept.

Dagster's ``SqliteRunStorage`` builds a new SQLAlchemy engine and opens and closes a SQLite
connection for every statement group: about 17 a run (the run's row, its tags, each status
change, the run lookups of its events), each close of the file's only connection also
checkpointing its write-ahead log. :class:`KeptSqliteRunStorage` keeps one engine and one
connection while the storage lives (``StaticPool``; used by one thread at a time, under a lock).
The file is in WAL mode, so other processes reading it (the UI, the daemon) see every commit
when it is made. Only the connecting differs: the statements, rows and file are Dagster's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool


class KeptSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage with one kept connection to ``runs.db``."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._open = threading.local()  # the connection this thread has open, if any
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> KeptSqliteRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        # A connection asked for inside another one (in this thread) joins its transaction.
        opened: Connection | None = getattr(self._open, "conn", None)
        if opened is not None:
            yield opened
            return
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(
                    self._conn_string,
                    poolclass=StaticPool,
                    connect_args={"check_same_thread": False},  # one thread at a time: the lock
                )
            with self._engine.connect() as conn:
                with conn.begin():
                    self._open.conn = conn
                    try:
                        yield conn
                    finally:
                        self._open.conn = None

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
        super().dispose()
