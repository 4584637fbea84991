"""The ``notification_outbox``: notifications queued with the alert change that causes them.

:func:`enqueue` runs inside the store's own write transactions (a new alert, an escalation), so a
notification exists exactly when its alert change was committed. Each row has a ``dedup_key``;
queuing the same key again is a no-op, so an alert or an escalation step is queued once however
often the pipeline re-runs.

:class:`Outbox` is what a delivery loop (:mod:`refrig_assets.alerts.delivery`) and operators use:
due rows, a claim that counts the attempt before the send, the outcome of a send, dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from refrig_assets.alerts.store.schema import DEAD, DELIVERED, OUTBOX_STATUSES, PENDING, as_utc

if TYPE_CHECKING:
    from refrig_assets.alerts.store.repository import AlertStore

Records = list[dict[str, Any]]
# The longest error text kept per row.
ERROR_CHARS = 2000


def notification(event: str, key: str, payload: dict[str, Any], alert_id: str | None) -> dict:
    """One notification to queue with :func:`enqueue`."""
    return {"event": event, "dedup_key": key, "payload": payload, "alert_id": alert_id}


def enqueue(conn: Connection, outbox: sa.Table, items: Iterable[dict], now: datetime) -> int:
    """Queue notifications in the caller's transaction, skipping keys already queued (also
    those queued concurrently). Returns how many were new."""
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        rows.setdefault(
            item["dedup_key"],
            {
                "dedup_key": item["dedup_key"],
                "event": item["event"],
                "alert_id": item.get("alert_id"),
                "payload": json.dumps(item["payload"], default=str, sort_keys=True),
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "updated_at": now,
                "delivered_at": None,
                "last_error": None,
            },
        )
    if not rows:
        return 0
    keys = list(rows)
    known: set[str] = set()
    for i in range(0, len(keys), 10_000):
        chunk = keys[i : i + 10_000]
        found = conn.execute(sa.select(outbox.c.dedup_key).where(outbox.c.dedup_key.in_(chunk)))
        known.update(found.scalars())
    new = [rows[k] for k in keys if k not in known]
    if new:
        conn.execute(_insert_ignoring_duplicates(conn, outbox), new)
    return len(new)


def _insert_ignoring_duplicates(conn: Connection, outbox: sa.Table) -> Any:
    """INSERT that skips a ``dedup_key`` another transaction committed in the meantime."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(outbox).on_conflict_do_nothing(index_elements=["dedup_key"])
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(outbox).on_conflict_do_nothing(index_elements=["dedup_key"])
    return outbox.insert()


class Outbox:
    """Reads and delivery bookkeeping of one store's ``notification_outbox``."""

    def __init__(self, store: AlertStore):
        self.store = store

    @property
    def table(self) -> sa.Table:
        return self.store.outbox_table

    def list(self, status: str | Iterable[str] | None = None, limit: int | None = None) -> Records:
        """Notifications (newest first), optionally of some statuses; ``payload`` decoded."""
        t = self.table
        query = sa.select(t).order_by(t.c.id.desc())
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            unknown = set(wanted) - set(OUTBOX_STATUSES)
            if unknown:
                raise ValueError(f"outbox status must be one of {OUTBOX_STATUSES}: {unknown}")
            query = query.where(t.c.status.in_(wanted))
        if limit is not None:
            query = query.limit(limit)
        with self.store._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def counts(self) -> dict[str, int]:
        """How many notifications are pending, delivered and dead."""
        t = self.table
        with self.store._begin(write=False) as conn:
            found = dict(
                conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)).all()
            )
        return {s: int(found.get(s, 0)) for s in OUTBOX_STATUSES}

    def due(self, now: datetime, limit: int) -> Records:
        """Pending notifications whose next attempt is due, the longest waiting first."""
        t = self.table
        query = (
            sa.select(t)
            .where(t.c.status == PENDING, t.c.next_attempt_at <= as_utc(now))
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(limit)
        )
        with self.store._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def claim(self, row: dict[str, Any], now: datetime, retry_at: datetime) -> bool:
        """Count one attempt of ``row`` before it is sent, and schedule its retry at
        ``retry_at`` in case the sender dies mid-send. False when another deliverer claimed it
        first (its ``attempts`` moved) or it is no longer due."""
        t = self.table
        with self.store._begin() as conn:
            done = conn.execute(
                t.update()
                .where(
                    t.c.id == row["id"],
                    t.c.status == PENDING,
                    t.c.attempts == row["attempts"],
                    t.c.next_attempt_at <= as_utc(now),
                )
                .values(
                    attempts=t.c.attempts + 1,
                    next_attempt_at=as_utc(retry_at),
                    updated_at=as_utc(now),
                )
            )
            return done.rowcount == 1

    def delivered(self, notification_id: int, now: datetime) -> None:
        """The receiver took it: never sent again."""
        t = self.table
        with self.store._begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == notification_id, t.c.status == PENDING)
                .values(status=DELIVERED, delivered_at=as_utc(now), updated_at=as_utc(now))
            )

    def failed(
        self, notification_id: int, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """A failed attempt: retried at ``retry_at``, or dead when that is None."""
        t = self.table
        values: dict[str, Any] = {"last_error": error[:ERROR_CHARS], "updated_at": as_utc(now)}
        if retry_at is None:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = as_utc(retry_at)
        with self.store._begin() as conn:
            conn.execute(
                t.update().where(t.c.id == notification_id, t.c.status == PENDING).values(values)
            )

    def requeue_dead(self, now: datetime, ids: Iterable[int] | None = None) -> int:
        """Give dead notifications (all, or those of ``ids``) a fresh set of attempts."""
        t = self.table
        query = t.update().where(t.c.status == DEAD)
        if ids is not None:
            query = query.where(t.c.id.in_(list(ids)))
        values = {"status": PENDING, "attempts": 0, "next_attempt_at": as_utc(now)}
        with self.store._begin() as conn:
            return conn.execute(query.values(updated_at=as_utc(now), **values)).rowcount
