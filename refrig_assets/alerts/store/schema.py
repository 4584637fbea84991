"""The alert database's tables and column types, and the values of an alert's ``status``.

``alerts`` holds the ``device_alerts`` contract columns plus the lifecycle columns; every change to
an alert is a row of ``alert_transitions``; every notification an alert change causes is a row of
``notification_outbox``, written in the same transaction and delivered later. Timestamps are
UTC: SQLite has no time zones, so :class:`UTCDateTime` stores naive UTC there and always returns
tz-aware values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.core.contracts import Contract

OPEN = "OPEN"
ACKNOWLEDGED = "ACKNOWLEDGED"
RESOLVED = "RESOLVED"
FALSE_POSITIVE = "FALSE_POSITIVE"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE)
# Statuses of a notification in the outbox.
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
OUTBOX_STATUSES = (PENDING, DELIVERED, DEAD)
LIFECYCLE_COLUMNS = (
    "status",
    "sla_breached",
    "first_seen_at",
    "updated_at",
    "acknowledged_by",
    "acknowledged_at",
)


class UTCDateTime(sa.types.TypeDecorator):
    """A timestamp that is UTC on the way in and tz-aware UTC on the way out.

    Naive inputs are taken as UTC. SQLite stores naive UTC; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sql_type(contract_type: str) -> sa.types.TypeEngine:
    """The SQLAlchemy column type for a contract column type."""
    types: dict[str, sa.types.TypeEngine] = {
        "string": sa.String(),
        "timestamp": UTCDateTime(),
        "float": sa.Float(),
        "int": sa.BigInteger(),
        "bool": sa.Boolean(),
    }
    try:
        return types[contract_type]
    except KeyError:
        raise ValueError(f"no SQL type for contract type {contract_type!r}") from None


def as_utc(value: Any) -> datetime:
    """``value`` (datetime, pandas Timestamp or string) as an aware UTC datetime; naive is UTC."""
    if type(value) is datetime:  # fast path; pd.Timestamp is a subclass and goes the long way
        if value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


def _serial_id() -> sa.Column:
    # BIGINT does not autoincrement on SQLite; INTEGER PRIMARY KEY does.
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def build_tables(contract: Contract) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """The ``alerts`` table (contract + lifecycle columns), the ``alert_transitions`` audit and
    the ``notification_outbox``."""
    metadata = sa.MetaData()
    contract_columns = [
        sa.Column(
            c.name,
            sql_type(c.type),
            primary_key=c.name in contract.primary_key,
            nullable=c.nullable,
        )
        for c in contract.columns
    ]
    alerts = sa.Table(
        "alerts",
        metadata,
        *contract_columns,
        sa.Column("status", sa.String(20), nullable=False, default=OPEN),
        sa.Column("sla_breached", sa.Boolean(), nullable=False, default=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Index("ix_alerts_device_window", "device_id", "window_start"),
        sa.Index("ix_alerts_status", "status"),
    )
    transitions = sa.Table(
        "alert_transitions",
        metadata,
        _serial_id(),
        sa.Column("alert_id", sa.String(), nullable=False, index=True),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.String(), nullable=False, default=""),
    )
    outbox = sa.Table(
        "notification_outbox",
        metadata,
        _serial_id(),
        # One notification per key (an alert's creation, one escalation step, one digest): a
        # second enqueue of the same key is ignored, and receivers get it as Idempotency-Key.
        sa.Column("dedup_key", sa.String(), nullable=False, unique=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=True, index=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False, default=PENDING),
        sa.Column("attempts", sa.Integer(), nullable=False, default=0),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    )
    return metadata, alerts, transitions, outbox
