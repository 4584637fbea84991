"""The SQLAlchemy engine of the alert database, with SQLite set up for several processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from refrig_assets.core.database import installed_driver_url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file gets its folder, WAL and explicit BEGIN handling."""
    parsed = installed_driver_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Several processes (Dagster runs, the CLI) share the file: wait for locks instead of failing.
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    # pysqlite's own transaction handling starts a write lazily, so a read-then-write transaction
    # can fail with "database is locked" when another process writes in between. Emit BEGIN
    # ourselves and take the write lock first for writing transactions (SQLAlchemy's recipe).
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
