"""Shared plumbing for the operator workflow's own tables in the alert database.

Maintenance windows, feedback rules, suppression reasons and work orders live in the same
database as the alerts (one URL, one backup), each domain module declaring its tables on its own
``MetaData``. :class:`OperatorTables` gives them the alert store's engine, a write transaction
that takes SQLite's write lock up front, and table creation on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.store import AlertStore


def id_column() -> sa.Column:
    """An autoincrementing integer primary key (BIGINT does not autoincrement on SQLite)."""
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def as_utc(value: Any) -> datetime:
    """Any timestamp-like value as an aware UTC ``datetime`` (naive values are taken as UTC)."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


class OperatorTables:
    """Base for stores keeping their own tables next to the alerts.

    ``alerts`` is an :class:`AlertStore` or a database URL; ``clock`` returns an aware UTC
    ``datetime`` (tests pass a fixed one). Subclasses set ``metadata``.
    """

    metadata: sa.MetaData

    def __init__(self, alerts: AlertStore | str, *, clock: Callable[[], datetime] | None = None):
        self.alerts = alerts if isinstance(alerts, AlertStore) else AlertStore(alerts)
        self.engine = self.alerts.engine
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ready = False

    def now(self) -> datetime:
        """The current time by this store's clock (aware UTC)."""
        return as_utc(self._clock())

    def begin(self, write: bool = True):
        """A transaction on the alert database (tables created on first use)."""
        self._ensure_tables()
        return (self._writer if write else self.engine).begin()

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        try:
            self.metadata.create_all(self._writer)
        except sa.exc.DatabaseError:
            # PostgreSQL: another process created a table between the check and CREATE.
            self.metadata.create_all(self._writer)
        self._ready = True
