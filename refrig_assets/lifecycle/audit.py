"""The model lifecycle audit trail: an append-only table in a SQL database.

Every registration of a version (with the sha256 of each artifact file), training that could
not fit the data it was given (not trained, and why), promotion (gated,
forced or first version), blocked promotion, pin, unpin, rollback, scoring pause/resume and
progressive rollout step (started, advanced, completed, rolled back,
aborted) is one row: who, when, which model, from → to version, why, the gate
results, and the state after the event (production alias, pin, and the version scoring serves).

Rows are never updated or deleted. There is no API for it, and the database refuses it too:
triggers on SQLite and PostgreSQL raise on UPDATE and DELETE (and TRUNCATE on PostgreSQL).
The database is ``REFRIG_LIFECYCLE_DB_URL`` or, by default, the alert database.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.store import UTCDateTime
from refrig_assets.core.append_only import make_append_only
from refrig_assets.core.database import installed_driver_url

TABLE = "model_lifecycle_events"
APPEND_ONLY_MESSAGE = "model lifecycle audit records are append-only"

PROMOTED = "promoted"
PROMOTED_FORCED = "promoted_forced"
PROMOTION_BLOCKED = "promotion_blocked"
PINNED = "pinned"
UNPINNED = "unpinned"
ROLLED_BACK = "rolled_back"
SCORING_PAUSED = "scoring_paused"
SCORING_RESUMED = "scoring_resumed"
ROLLOUT_STARTED = "rollout_started"
ROLLOUT_ADVANCED = "rollout_advanced"
ROLLOUT_COMPLETED = "rollout_completed"
ROLLOUT_ROLLED_BACK = "rollout_rolled_back"
ROLLOUT_ABORTED = "rollout_aborted"
# A version registered by training: ``gates`` holds one {"artifact", "sha256"} per file.
REGISTERED = "registered"
# A training that fitted nothing (too small a fleet or too little data): ``reason`` says why and
# ``gates`` holds {"setting": <the models/ setting it fell short of>}.
NOT_TRAINED = "not_trained"
EVENTS = (
    REGISTERED,
    NOT_TRAINED,
    PROMOTED,
    PROMOTED_FORCED,
    PROMOTION_BLOCKED,
    PINNED,
    UNPINNED,
    ROLLED_BACK,
    SCORING_PAUSED,
    SCORING_RESUMED,
    ROLLOUT_STARTED,
    ROLLOUT_ADVANCED,
    ROLLOUT_COMPLETED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_ABORTED,
)
# The events that move the production alias (their ``to_version`` is the new production).
PRODUCTION_MOVES = (PROMOTED, PROMOTED_FORCED, ROLLOUT_COMPLETED)


def lifecycle_db_url(alerts_db_url: str) -> str:
    """Where the audit trail lives: ``REFRIG_LIFECYCLE_DB_URL``, else the alert database."""
    return os.environ.get("REFRIG_LIFECYCLE_DB_URL") or alerts_db_url


@dataclass(frozen=True)
class LifecycleEvent:
    """One audit record (``id`` and ``at`` are set when it is appended)."""

    model_id: str
    event: str
    actor: str
    reason: str
    from_version: str | None = None
    to_version: str | None = None
    forced: bool = False
    gates: list[dict[str, Any]] = field(default_factory=list)
    production_version: str | None = None
    pinned_version: str | None = None
    serving_version: str | None = None
    paused: bool = False
    at: datetime | None = None
    id: int | None = None


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        TABLE,
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model_id", sa.String(200), nullable=False, index=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False, index=True),
        sa.Column("from_version", sa.String(40), nullable=True),
        sa.Column("to_version", sa.String(40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("gates", sa.Text(), nullable=False),
        sa.Column("production_version", sa.String(40), nullable=True),
        sa.Column("pinned_version", sa.String(40), nullable=True),
        sa.Column("serving_version", sa.String(40), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        # Event names are checked in append(), not by a CHECK constraint, so new kinds of event
        # (e.g. progressive rollout steps) need no migration of an append-only table.
    )


class AuditTrail:
    """Append and read lifecycle events. ``clock`` (aware UTC datetime) stamps new records."""

    def __init__(self, url: str, *, clock: Any = None):
        self.url = url
        self._clock = clock or (lambda: datetime.now(UTC))
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # Several processes (Dagster runs, the CLI) share the file: wait for the lock.
            self.engine = sa.create_engine(url, connect_args={"timeout": 30})
        else:
            self.engine = sa.create_engine(installed_driver_url(url), pool_pre_ping=True)
        self.metadata = sa.MetaData()
        self.table = _table(self.metadata)
        self._ready = False

    def _ensure_table(self) -> None:
        if self._ready:
            return
        try:
            self._create()
        except sa.exc.DatabaseError:
            # Another process created the table or triggers between our check and CREATE.
            self._create()
        self._ready = True

    def _create(self) -> None:
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"{self.url}: the audit trail needs SQLite or PostgreSQL to enforce "
                f"append-only records (got {dialect})"
            )
        with self.engine.begin() as conn:
            self.metadata.create_all(conn)
            make_append_only(conn, TABLE, APPEND_ONLY_MESSAGE)

    def close(self) -> None:
        self.engine.dispose()

    def append(self, event: LifecycleEvent) -> LifecycleEvent:
        """Record one event; returns it with its id and timestamp."""
        if event.event not in EVENTS:
            raise ValueError(f"unknown lifecycle event {event.event!r} (known: {EVENTS})")
        if not event.actor.strip():
            raise ValueError("a lifecycle event needs an actor (who did it)")
        self._ensure_table()
        at = event.at or self._clock()
        row = {
            "model_id": event.model_id,
            "event": event.event,
            "actor": event.actor,
            "at": at,
            "from_version": event.from_version,
            "to_version": event.to_version,
            "reason": event.reason,
            "forced": bool(event.forced),
            "gates": json.dumps(event.gates, default=str),
            "production_version": event.production_version,
            "pinned_version": event.pinned_version,
            "serving_version": event.serving_version,
            "paused": bool(event.paused),
        }
        with self.engine.begin() as conn:
            new_id = conn.execute(self.table.insert().values(**row)).inserted_primary_key[0]
        return LifecycleEvent(
            **{k: v for k, v in row.items() if k not in ("gates", "at")},
            gates=event.gates,
            at=at if isinstance(at, datetime) else pd.Timestamp(at).to_pydatetime(),
            id=int(new_id),
        )

    def events(
        self, model_id: str | None = None, until: datetime | None = None
    ) -> list[LifecycleEvent]:
        """Events in the order they were recorded (optionally one model's, up to a time)."""
        self._ensure_table()
        q = sa.select(self.table).order_by(self.table.c.at, self.table.c.id)
        if model_id is not None:
            q = q.where(self.table.c.model_id == model_id)
        if until is not None:
            q = q.where(self.table.c.at <= until)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [
            LifecycleEvent(
                **{k: v for k, v in r.items() if k != "gates"}, gates=json.loads(r["gates"])
            )
            for r in rows
        ]

    def latest(self, model_id: str) -> LifecycleEvent | None:
        """The newest event of a model (its current lifecycle state), if any."""
        self._ensure_table()
        q = (
            sa.select(self.table)
            .where(self.table.c.model_id == model_id)
            .order_by(self.table.c.at.desc(), self.table.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            r = conn.execute(q).mappings().first()
        if r is None:
            return None
        return LifecycleEvent(
            **{k: v for k, v in r.items() if k != "gates"}, gates=json.loads(r["gates"])
        )

    def frame(self, model_id: str | None = None) -> pd.DataFrame:
        """Events as a table (for the CLI and asset metadata)."""
        events = self.events(model_id)
        columns = [
            "id",
            "at",
            "model_id",
            "event",
            "actor",
            "from_version",
            "to_version",
            "serving_version",
            "production_version",
            "pinned_version",
            "paused",
            "forced",
            "reason",
        ]
        return pd.DataFrame([{c: getattr(e, c) for c in columns} for e in events], columns=columns)
