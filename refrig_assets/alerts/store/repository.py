"""The :class:`AlertStore`: upserts from the pipeline, operator actions, the SLA monitor and reads.

Re-running a partition upserts the same deterministic ``alert_id`` values again: batch-derived
fields are refreshed, operator and SLA state is never reset. The notifications an alert change
causes (a new CRITICAL/HIGH alert, an escalation) are queued in ``notification_outbox`` in the
same transaction; :attr:`AlertStore.outbox` is how they are delivered and inspected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from refrig_assets.alerts.notify import (
    DIGEST_EVENT,
    ESCALATION_EVENT,
    digest_key,
    digest_payload,
    escalation_key,
    escalation_payload,
)
from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.store.engine import make_engine
from refrig_assets.alerts.store.incident_tables import (
    INCIDENT_TRANSITIONS_APPEND_ONLY,
    add_incident_tables,
)
from refrig_assets.alerts.store.outbox import Outbox, enqueue, notification
from refrig_assets.alerts.store.schema import (
    ACKNOWLEDGED,
    FALSE_POSITIVE,
    OPEN,
    RESOLVED,
    STATUSES,
    UTCDateTime,
    as_utc,
    build_tables,
)
from refrig_assets.alerts.store.transitions import (
    ALLOWED_TRANSITIONS,
    INITIAL_ALERT_TYPE,
    SLA_ACTOR,
    SYSTEM_ACTOR,
    InvalidTransition,
    deadlines_passed,
)
from refrig_assets.core.append_only import make_append_only
from refrig_assets.core.contracts import ColumnSpec, Contract, load_contract

# Contract columns an upsert never rewrites: the identity, when the alert was first raised, and
# the escalation state owned by the SLA monitor. sla_deadline is only ever brought forward.
_INSERT_ONLY = ("alert_id", "alert_created_at", "escalation_level", "sla_deadline")
# Bind parameters per IN (...) query: one query for ~10K ids, under SQLite's (32766) and
# PostgreSQL's (65535) limits.
_IN_CHUNK = 30_000
# The alert history (who acknowledged, resolved, marked false positive; escalations) is an audit
# trail: the database refuses to change or remove its rows.
TRANSITIONS_APPEND_ONLY = "alert_transitions is append-only: the alert history cannot be changed"

Records = list[dict[str, Any]]


class AlertNotFound(KeyError):
    """No alert with this id."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "alert not found"


def _column_values(spec: ColumnSpec, series: pd.Series) -> list[Any]:
    """A frame column as the Python values the database driver expects (None for missing)."""
    if spec.type == "timestamp":
        stamps = pd.DatetimeIndex(pd.to_datetime(series, utc=True)).to_pydatetime()
        return [None if v is pd.NaT else v for v in stamps]
    convert = {"float": float, "int": int, "bool": bool, "string": str}[spec.type]
    present = series.notna().tolist()
    return [convert(v) if ok else None for v, ok in zip(series.tolist(), present, strict=True)]


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class AlertStore:
    """Alerts and their lifecycle in a SQL database (SQLite or PostgreSQL: the history table
    ``alert_transitions`` is kept append-only by database triggers, which other databases
    cannot provide).

    Tables are created on first use. ``clock`` (returns an aware UTC ``datetime``) stamps
    ``updated_at``/transitions; tests pass a fixed one.
    """

    def __init__(self, url: str, *, clock: Any = None, contract: Contract | None = None):
        self.url = url
        self.contract = contract or load_contract("device_alerts")
        self._clock = clock or (lambda: datetime.now(UTC))
        self.engine = make_engine(url)
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        self.metadata, self.alerts, self.transitions, self.outbox_table = build_tables(
            self.contract
        )
        self.incidents, self.incident_evidence, self.incident_transitions = add_incident_tables(
            self.metadata
        )
        self.outbox = Outbox(self)
        # What the last upsert's fold into incidents did (see _fold_into_incidents).
        self.last_fold: dict[str, int] = {}
        self._ready = False
        self._empty_frames: dict[tuple[str, ...], pd.DataFrame] = {}

    # -- plumbing -------------------------------------------------------------------------

    @property
    def severities(self) -> tuple[str, ...]:
        """Severity levels, most severe first (contract order)."""
        return self.contract.column("severity").allowed or ()

    @property
    def escalation_levels(self) -> list[str]:
        """Escalation levels, first to last (``config/alerts.yaml``)."""
        return list(alert_policy().escalation_levels)

    def sla_period(self, severity: str) -> timedelta:
        """Time an operator has to acknowledge an alert of this severity."""
        return timedelta(minutes=alert_policy().sla_minutes[severity])

    def _begin(self, write: bool = True):
        """A transaction; on SQLite a writing one takes the write lock up front."""
        self._ensure_tables()
        return (self._writer if write else self.engine).begin()

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        # On SQLite the writer engine serialises concurrent creators (BEGIN IMMEDIATE).
        try:
            self._create_tables()
        except sa.exc.DatabaseError:
            # PostgreSQL: another process created the tables between the check and CREATE.
            self._create_tables()
        self._ready = True

    def _create_tables(self) -> None:
        """The tables, and the triggers that keep ``alert_transitions`` append-only."""
        with self._writer.begin() as conn:
            self.metadata.create_all(conn)
            make_append_only(conn, self.transitions.name, TRANSITIONS_APPEND_ONLY)
            make_append_only(conn, self.incident_transitions.name, INCIDENT_TRANSITIONS_APPEND_ONLY)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def _now(self) -> datetime:
        return as_utc(self._clock())

    @staticmethod
    def _audit_row(
        alert_id: str,
        event: str,
        from_status: str | None,
        to_status: str,
        actor: str,
        at: datetime,
        note: str = "",
    ) -> dict[str, Any]:
        """One ``alert_transitions`` row."""
        return {
            "alert_id": alert_id,
            "event": event,
            "from_status": from_status,
            "to_status": to_status,
            "actor": actor,
            "at": at,
            "note": note or "",
        }

    def _record(self, conn: Connection, *args: Any) -> None:
        """Insert one transition; arguments as for :meth:`_audit_row`."""
        conn.execute(self.transitions.insert(), self._audit_row(*args))

    def _row(self, conn: Connection, alert_id: str) -> dict[str, Any]:
        row = (
            conn.execute(sa.select(self.alerts).where(self.alerts.c.alert_id == alert_id))
            .mappings()
            .first()
        )
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        return dict(row)

    # -- writes from the pipeline ---------------------------------------------------------

    def upsert(
        self, alerts: pd.DataFrame, *, notify: bool = False, hold_historic: bool = False
    ) -> dict[str, Any]:
        """Insert new alerts and refresh batch-derived fields of known ones, idempotently.

        New ``alert_id`` → inserted OPEN with a creation transition (actor ``system``). Known
        ``alert_id`` → its batch-derived contract fields are updated when they changed;
        ``status``, acknowledgement, ``escalation_level``, ``sla_breached`` and
        ``alert_created_at`` are never touched, ``sla_deadline`` only moves earlier (a re-run that
        raises the severity tightens it), and a reconciled ``alert_type`` is not reverted to
        ``ANOMALY_DETECTED``. A changed ``alert_type`` is recorded as a transition. Duplicate ids
        in the frame: the last row wins.

        New alerts are folded into their device's incident in the same transaction
        (:func:`refrig_assets.incidents.repository.fold_alerts`): each joins the device's live
        incident, reopens a recently closed one or opens a new one. Notifications are per
        incident, not per alert: with ``notify``, an incident that opens or rises to a severity
        of ``notifications.severities`` (config/incidents.yaml) is paged once per severity
        (``queued`` counts them); a repeat inside an open incident pages nothing. With
        ``hold_historic`` too (batch alerts), an incident whose latest window ended more than
        ``notifications.historic_cutoff_hours`` (config/alerts.yaml) before now (a backfill) is
        not paged; ``held_historic`` counts the new unsuppressed alerts of a paged severity
        held back that way.

        Returns ``{"inserted": n, "updated": n, "unchanged": n, "inserted_ids": [...],
        "queued": n, "held_historic": n}``.
        """
        missing = [c for c in self.contract.column_names if c not in alerts.columns]
        if missing:
            raise ValueError(f"alerts frame lacks device_alerts columns {missing}")
        result: dict[str, Any] = {
            "inserted": 0,
            "updated": 0,
            "unchanged": 0,
            "inserted_ids": [],
            "queued": 0,
            "held_historic": 0,
        }
        if alerts.empty:
            return result
        frame = alerts.drop_duplicates("alert_id", keep="last")
        names = self.contract.column_names
        values = [_column_values(c, frame[c.name]) for c in self.contract.columns]
        records = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        now = self._now()
        t = self.alerts
        updatable = [c for c in self.contract.column_names if c not in _INSERT_ONLY]
        with self._begin() as conn:
            existing: dict[str, dict[str, Any]] = {}
            ids = [r["alert_id"] for r in records]
            for chunk in _chunks(ids):
                query = sa.select(
                    t.c.alert_id, t.c.status, t.c.sla_deadline, *(t.c[c] for c in updatable)
                )
                for row in conn.execute(query.where(t.c.alert_id.in_(chunk))).mappings():
                    existing[row["alert_id"]] = dict(row)

            new = [r for r in records if r["alert_id"] not in existing]
            raced = 0
            if new:
                lifecycle = {
                    "status": OPEN,
                    "sla_breached": False,
                    "first_seen_at": now,
                    "updated_at": now,
                    "acknowledged_by": None,
                    "acknowledged_at": None,
                }
                rows = [{**r, **lifecycle} for r in new]
                if conn.dialect.name == "postgresql":
                    inserted = self._insert_or_refresh(conn, rows, updatable)
                    raced = len(new) - len(inserted)
                    new = [r for r in new if r["alert_id"] in inserted]
                else:
                    # SQLite: the writer holds the write lock since the read (BEGIN IMMEDIATE),
                    # so no other writer can have inserted these ids in between.
                    conn.execute(t.insert(), rows)
                created = [
                    self._audit_row(
                        r["alert_id"],
                        "created",
                        None,
                        OPEN,
                        SYSTEM_ACTOR,
                        now,
                        f"{r['severity']} {r['alert_type']} from {r['source']}",
                    )  # fmt: skip
                    for r in new
                ]
                if created:  # (none left when a concurrent writer inserted them all first)
                    conn.execute(self.transitions.insert(), created)
            held = self._held_historic(new, now) if notify and hold_historic else 0
            self.last_fold = self._fold_into_incidents(conn, new, now, notify, hold_historic)
            queued = self.last_fold.get("pages_queued", 0)

            changes, type_changes = self._diff(records, existing, updatable)
            changes.sort(key=lambda c: c["_id"])  # one lock order for concurrent writers
            if changes:
                stmt = (
                    t.update()
                    .where(t.c.alert_id == sa.bindparam("_id"))
                    .values({c: sa.bindparam(c) for c in [*updatable, "sla_deadline"]})
                    .values(updated_at=now)
                )
                conn.execute(stmt, changes)
            if type_changes:
                retyped = [
                    self._audit_row(
                        alert_id,
                        "alert_type",
                        status,
                        status,
                        SYSTEM_ACTOR,
                        now,
                        f"alert_type {old} -> {new_type} (re-run)",
                    )  # fmt: skip
                    for alert_id, old, new_type, status in type_changes
                ]
                conn.execute(self.transitions.insert(), retyped)
        result.update(
            inserted=len(new),
            updated=len(changes) + raced,
            unchanged=len(existing) - len(changes),
            inserted_ids=[r["alert_id"] for r in new],
            queued=queued,
            held_historic=held,
        )
        return result

    def _fold_into_incidents(
        self, conn: Connection, new: Records, now: datetime, notify: bool, hold_historic: bool
    ) -> dict[str, int]:
        """Fold newly stored alerts into their device's open incidents (or open new ones), in
        the alert's own transaction, so a streaming alert joins its incident within minutes."""
        if not new:
            return {}
        from refrig_assets.incidents.repository import fold_alerts

        frame = pd.DataFrame(new, columns=self.contract.column_names)
        return fold_alerts(self, conn, frame, now, notify=notify, hold_historic=hold_historic)

    def _insert_or_refresh(self, conn: Connection, rows: Records, updatable: list[str]) -> set[str]:
        """PostgreSQL: insert alerts this transaction did not see, as ``INSERT ... ON CONFLICT
        (alert_id) DO UPDATE``, so a concurrent writer that inserted the same ids first never
        makes this one fail. A conflicting row gets the batch fields only, with the rules of
        :meth:`_diff` (``sla_deadline`` only earlier, a reconciled ``alert_type`` kept); its
        operator and SLA state is never touched. Returns the ids this statement inserted."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        t = self.alerts
        insert = pg_insert(t)
        incoming = insert.excluded
        refresh: dict[str, Any] = {c: incoming[c] for c in updatable}
        refresh["alert_type"] = sa.case(
            (
                sa.and_(
                    t.c.alert_type != INITIAL_ALERT_TYPE,
                    incoming.alert_type == INITIAL_ALERT_TYPE,
                ),
                t.c.alert_type,
            ),
            else_=incoming.alert_type,
        )
        refresh["sla_deadline"] = sa.func.least(t.c.sla_deadline, incoming.sla_deadline)
        refresh["updated_at"] = incoming.updated_at
        stmt = insert.on_conflict_do_update(index_elements=[t.c.alert_id], set_=refresh).returning(
            t.c.alert_id, sa.literal_column("xmax = 0").label("inserted")
        )
        inserted: set[str] = set()
        # Sorted ids: concurrent writers take the row locks in one order (no deadlock).
        ordered = sorted(rows, key=lambda r: r["alert_id"])
        for chunk in _chunks(ordered, 1000):
            for alert_id, was_inserted in conn.execute(stmt.values(list(chunk))).all():
                if was_inserted:
                    inserted.add(alert_id)
        return inserted

    def _held_historic(self, new: Records, now: datetime) -> int:
        """New unsuppressed alerts of a notified severity whose window ended before the
        historic cut-off (a backfill): stored and folded, never paged."""
        policy = alert_policy().notifications
        historic_before = now - policy.historic_cutoff
        return sum(
            1
            for r in new
            if r["severity"] in policy.severities
            and not r["suppressed"]
            and r["window_end"] is not None
            and r["window_end"] < historic_before
        )

    def _diff(
        self, records: Records, existing: dict[str, dict[str, Any]], updatable: list[str]
    ) -> tuple[Records, list[tuple[str, str, str, str]]]:
        """Update parameters for known alerts whose batch fields changed, and alert_type moves."""
        changes: Records = []
        type_changes = []
        for r in records:
            old = existing.get(r["alert_id"])
            if old is None:
                continue
            params = {c: r[c] for c in updatable}
            if old["alert_type"] != INITIAL_ALERT_TYPE and r["alert_type"] == INITIAL_ALERT_TYPE:
                params["alert_type"] = old["alert_type"]
            deadlines = [d for d in (old["sla_deadline"], r["sla_deadline"]) if d is not None]
            params["sla_deadline"] = min(deadlines) if deadlines else None
            if all(_same(params[c], old[c]) for c in [*updatable, "sla_deadline"]):
                continue
            changes.append({"_id": r["alert_id"], **params})
            if params["alert_type"] != old["alert_type"]:
                type_changes.append(
                    (r["alert_id"], old["alert_type"], params["alert_type"], old["status"])
                )
        return changes, type_changes

    def set_alert_type(
        self, alert_id: str, alert_type: str, note: str = "", actor: str = ""
    ) -> dict:
        """Reconcile a streaming alert with the batch score: change ``alert_type`` only.

        Records an ``alert_type`` transition (status unchanged); a no-op when the type is
        already ``alert_type``. Returns the alert.
        """
        allowed = self.contract.column("alert_type").allowed or ()
        if alert_type not in allowed:
            raise ValueError(f"alert_type must be one of {list(allowed)}, got {alert_type!r}")
        with self._begin() as conn:
            row = self._row(conn, alert_id)
            if row["alert_type"] != alert_type:
                now = self._now()
                conn.execute(
                    self.alerts.update()
                    .where(self.alerts.c.alert_id == alert_id)
                    .values(alert_type=alert_type, updated_at=now)
                )
                change = f"alert_type {row['alert_type']} -> {alert_type}"
                status = row["status"]
                actor = actor or "reconciliation"
                note = f"{change}: {note}" if note else change
                self._record(conn, alert_id, "alert_type", status, status, actor, now, note)
            return self._row(conn, alert_id)

    # -- operator actions -----------------------------------------------------------------

    def transition(self, alert_id: str, to_status: str, actor: str, note: str = "") -> dict:
        """Move an alert to ``to_status`` on behalf of ``actor``; returns the updated alert.

        Allowed: OPEN → ACKNOWLEDGED, OPEN/ACKNOWLEDGED → RESOLVED or FALSE_POSITIVE.
        Raises :class:`AlertNotFound` or :class:`InvalidTransition`.
        """
        if to_status not in STATUSES:
            raise InvalidTransition(f"unknown status {to_status!r}; expected one of {STATUSES}")
        if not actor or not actor.strip():
            raise InvalidTransition("an actor is required to change an alert's status")
        with self._begin() as conn:
            row = self._row(conn, alert_id)
            current = row["status"]
            if to_status not in ALLOWED_TRANSITIONS[current]:
                allowed = ", ".join(ALLOWED_TRANSITIONS[current]) or "none (final status)"
                raise InvalidTransition(
                    f"alert {alert_id} is {current}; cannot move it to {to_status} "
                    f"(allowed from {current}: {allowed})"
                )
            now = self._now()
            values: dict[str, Any] = {"status": to_status, "updated_at": now}
            if to_status == ACKNOWLEDGED:
                values.update(acknowledged_by=actor, acknowledged_at=now)
            # Guard on the status we read, so two operators racing cannot both succeed.
            done = conn.execute(
                self.alerts.update()
                .where(self.alerts.c.alert_id == alert_id, self.alerts.c.status == current)
                .values(values)
            )
            if done.rowcount != 1:
                raise InvalidTransition(f"alert {alert_id} changed concurrently; retry")
            self._record(conn, alert_id, "status", current, to_status, actor, now, note)
            return self._row(conn, alert_id)

    def acknowledge(self, alert_id: str, actor: str, note: str = "") -> dict:
        """OPEN → ACKNOWLEDGED (stops SLA escalation)."""
        return self.transition(alert_id, ACKNOWLEDGED, actor, note)

    def resolve(self, alert_id: str, actor: str, note: str = "") -> dict:
        """OPEN/ACKNOWLEDGED → RESOLVED."""
        return self.transition(alert_id, RESOLVED, actor, note)

    def mark_false_positive(self, alert_id: str, actor: str, note: str = "") -> dict:
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE (feeds model evaluation)."""
        return self.transition(alert_id, FALSE_POSITIVE, actor, note)

    # -- SLA monitor ----------------------------------------------------------------------

    def check_sla(self, now: datetime, *, notify: bool = True) -> Records:
        """Flag and escalate unacknowledged alerts past their SLA deadline.

        An OPEN, unsuppressed alert is breached once ``now`` is strictly after ``sla_deadline``
        and then belongs ``n`` levels up ``escalation_levels`` (capped at the last), where ``n``
        is how many deadlines have passed: the deadline itself, then one per further SLA period
        of its severity (L1 → L2 just after the deadline, → L3 one period later). One call moves
        an alert at most one level, so a late check catches up one level per call instead of
        paging every level at once. Levels are never lowered. An alert whose window ended more
        than ``sla_monitor.historic_cutoff_hours`` before ``now`` (a backfill) is marked
        breached but neither escalated nor paged. Each change is a transition by
        ``sla-monitor``.

        With ``notify`` the changes are queued in the outbox in the same transaction: one
        ``alert.escalated`` per alert and level reached, or, when more than
        ``sla_monitor.digest_above`` alerts change in this call, one ``alert.sla_digest`` for
        all of them.

        Returns the alerts newly breached or escalated by this call, each with
        ``previous_escalation_level``, ``paged`` (False for a backfill) and ``notification``
        (the dedup key queued for it, or None).
        """
        now = as_utc(now)
        policy = alert_policy()
        levels = list(policy.escalation_levels)
        historic_before = now - policy.sla_monitor.historic_cutoff
        t = self.alerts
        out: Records = []
        updates: Records = []
        audit: Records = []
        with self._begin() as conn:
            due = conn.execute(
                sa.select(t)
                .where(
                    t.c.status == OPEN,
                    t.c.suppressed.is_(False),
                    t.c.sla_deadline < now,
                    sa.or_(
                        t.c.sla_breached.is_(False),
                        # breached: only live alerts below the top level have a step left
                        sa.and_(
                            t.c.escalation_level != levels[-1],
                            t.c.window_end >= historic_before,
                        ),
                    ),
                )
                .order_by(t.c.sla_deadline, t.c.alert_id)
            ).mappings()
            for row in due:
                current = levels.index(row["escalation_level"])
                historic = row["window_end"] < historic_before
                target = current
                if not historic:
                    overdue = now - row["sla_deadline"]
                    passed = deadlines_passed(overdue, self.sla_period(row["severity"]))
                    target = max(current, min(passed, len(levels) - 1, current + 1))
                if row["sla_breached"] and target == current:
                    continue
                alert_id, deadline = row["alert_id"], row["sla_deadline"].isoformat()
                updates.append({"_id": alert_id, "level": levels[target]})
                if target == current:
                    note = f"SLA deadline {deadline} passed"
                    if historic:
                        note += (
                            f"; not escalated or paged: its window ended "
                            f"{row['window_end'].isoformat()}, before the historic cut-off"
                        )
                    event = "sla_breached"
                else:
                    note = (
                        f"unacknowledged past SLA deadline {deadline}: "
                        f"{levels[current]} -> {levels[target]}"
                    )
                    event = "escalated"
                audit.append(self._audit_row(alert_id, event, OPEN, OPEN, SLA_ACTOR, now, note))
                out.append(
                    {
                        **dict(row),
                        "sla_breached": True,
                        "escalation_level": levels[target],
                        "previous_escalation_level": levels[current],
                        "updated_at": now,
                        "paged": not historic,
                        "notification": None,
                    }
                )
            if updates:
                conn.execute(
                    t.update()
                    .where(t.c.alert_id == sa.bindparam("_id"))
                    .values(
                        sla_breached=True, escalation_level=sa.bindparam("level"), updated_at=now
                    ),
                    updates,
                )
                conn.execute(self.transitions.insert(), audit)
            if notify:
                paged = [a for a in out if a["paged"]]
                self._queue_sla_notifications(conn, paged, now, self._now())
        return out

    def _queue_sla_notifications(
        self, conn: Connection, changed: Records, checked_at: datetime, now: datetime
    ) -> None:
        """One notification per alert, or one digest when too many changed at once; queued at
        the store's ``now`` (due at once), whatever time the check was evaluated for."""
        if not changed:
            return
        if len(changed) > alert_policy().sla_monitor.digest_above:
            key = digest_key(changed)
            items = [notification(DIGEST_EVENT, key, digest_payload(changed, checked_at), None)]
            for a in changed:
                a["notification"] = key
        else:
            items = []
            for a in changed:
                a["notification"] = escalation_key(a["alert_id"], a["escalation_level"])
                payload = escalation_payload(a)
                items.append(
                    notification(ESCALATION_EVENT, a["notification"], payload, a["alert_id"])
                )
        enqueue(conn, self.outbox_table, items, now)

    # -- reads ----------------------------------------------------------------------------

    def get(self, alert_id: str) -> dict | None:
        """One alert with its lifecycle fields, or None."""
        with self._begin(write=False) as conn:
            try:
                return self._row(conn, alert_id)
            except AlertNotFound:
                return None

    def history(self, alert_id: str) -> Records:
        """Transitions of one alert in the order they were recorded (empty for an unknown id)."""
        tr = self.transitions
        with self._begin(write=False) as conn:
            rows = conn.execute(sa.select(tr).where(tr.c.alert_id == alert_id).order_by(tr.c.id))
            return [dict(r) for r in rows.mappings()]

    def list(
        self,
        severity: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        site_id: str | None = None,
        device_id: str | None = None,
        source: str | None = None,
        include_suppressed: bool = False,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Alerts matching the filters, most severe first, then earliest SLA deadline.

        ``severity`` and ``status`` accept one value or several. Suppressed alerts are left out
        unless ``include_suppressed``. Timestamp columns are tz-aware UTC.
        """
        t = self.alerts
        query = sa.select(t)
        for column, value in (("severity", severity), ("status", status)):
            if value is not None:
                values = [value] if isinstance(value, str) else list(value)
                query = query.where(t.c[column].in_(values))
        for column, value in (("site_id", site_id), ("device_id", device_id), ("source", source)):
            if value is not None:
                query = query.where(t.c[column] == value)
        if not include_suppressed:
            query = query.where(t.c.suppressed.is_(False))
        rank = sa.case(
            {s: i for i, s in enumerate(self.severities)},
            value=t.c.severity,
            else_=len(self.severities),
        )
        query = query.order_by(rank, t.c.sla_deadline, t.c.alert_id)
        if limit is not None:
            query = query.limit(limit)
        with self._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return self._frame(rows, [c.name for c in t.columns])

    def overlapping(
        self,
        start: datetime,
        end: datetime,
        *,
        source: str | None = None,
        alert_type: str | None = None,
    ) -> pd.DataFrame:
        """Alerts whose window [window_start, window_end] meets [start, end), every column.

        Used by batch/streaming reconciliation to find the streaming alerts a partition's
        scores can confirm or soften.
        """
        t = self.alerts
        query = sa.select(t).where(t.c.window_start < as_utc(end), t.c.window_end >= as_utc(start))
        if source is not None:
            query = query.where(t.c.source == source)
        if alert_type is not None:
            query = query.where(t.c.alert_type == alert_type)
        with self._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query.order_by(t.c.alert_id)).mappings()]
        return self._frame(rows, [c.name for c in t.columns])

    def open_alert_counts(self, created_before: datetime | None = None) -> pd.Series:
        """Unsuppressed OPEN or ACKNOWLEDGED alerts per device (devices with none are absent),
        optionally only those created before ``created_before``."""
        t = self.alerts
        query = sa.select(t.c.device_id, sa.func.count().label("n")).where(
            t.c.status.in_([OPEN, ACKNOWLEDGED]), t.c.suppressed.is_(False)
        )
        if created_before is not None:
            query = query.where(t.c.alert_created_at < as_utc(created_before))
        with self._begin(write=False) as conn:
            rows = conn.execute(query.group_by(t.c.device_id)).all()
        return pd.Series(
            {device: int(n) for device, n in rows}, dtype="int64", name="open_alert_count"
        )

    def recent_alerts(
        self, device_ids: Iterable[str] | None = None, *, since: datetime
    ) -> pd.DataFrame:
        """Alerts created strictly after ``since`` (optionally for some devices only).

        Columns: device_id, top_contributors, window_start, alert_created_at, suppressed,
        source. Used to suppress repeats within the dedup window across partitions.
        """
        t = self.alerts
        columns = [
            "device_id",
            "top_contributors",
            "window_start",
            "alert_created_at",
            "suppressed",
            "source",
        ]
        base = sa.select(*(t.c[c] for c in columns)).where(t.c.alert_created_at > as_utc(since))
        rows: Records = []
        with self._begin(write=False) as conn:
            if device_ids is None:
                rows = [dict(r) for r in conn.execute(base).mappings()]
            else:
                for chunk in _chunks(sorted(set(device_ids))):
                    result = conn.execute(base.where(t.c.device_id.in_(chunk)))
                    rows.extend(dict(r) for r in result.mappings())
        frame = self._frame(rows, columns)
        return frame.sort_values(["device_id", "alert_created_at"], ignore_index=True)

    def _frame(self, rows: Records, columns: Sequence[str]) -> pd.DataFrame:
        """``rows`` as a frame of ``columns`` typed as the table's columns. Most hours find no
        alert in a read (an hour without streaming alerts to reconcile): the empty frame of the
        same columns is typed once per store and copied."""
        if rows:
            return self._typed(rows, columns)
        key = tuple(columns)
        if key not in self._empty_frames:
            self._empty_frames[key] = self._typed([], columns)
        return self._empty_frames[key].copy()

    def _typed(self, rows: Records, columns: Sequence[str]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=columns)
        for name in columns:
            column = self.alerts.c[name]
            if isinstance(column.type, UTCDateTime):
                frame[name] = pd.to_datetime(frame[name], utc=True)
            elif isinstance(column.type, sa.Boolean) and not column.nullable:
                frame[name] = frame[name].astype(bool)
            elif isinstance(column.type, sa.Float):
                frame[name] = frame[name].astype("float64")
            elif isinstance(column.type, sa.BigInteger) and not column.nullable:
                frame[name] = frame[name].astype("int64")
        return frame


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b
