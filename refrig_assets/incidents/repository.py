"""Incidents in the alert database: what the pipeline writes, what operators do, what they read.

:class:`IncidentStore` works on the alert store's engine and tables (``incidents``,
``incident_evidence``, ``incident_transitions``; see
:mod:`refrig_assets.alerts.store.incident_tables`):

* :meth:`IncidentStore.apply` writes an :class:`~refrig_assets.incidents.build.IncidentBuild`
  idempotently: new incidents are inserted OPEN, known ones refreshed (severity never lowered,
  operator state never reset), closings and reopenings recorded, evidence linked; a page is
  queued in the notification outbox when an incident opens and whenever its severity rises
  (dedup key per incident and severity: never twice for the same fault), except for inhibited
  incidents, sensor tickets and backfilled windows.
* :func:`fold_alerts` is called by :meth:`AlertStore.upsert` inside its transaction: newly
  stored alerts (batch or streaming) join their device's open incident at once.
* :meth:`list`, :meth:`get`, :meth:`evidence`, :meth:`history` read; :meth:`acknowledge`,
  :meth:`resolve`, :meth:`false_positive` change the lifecycle on behalf of an actor, and carry
  the change to the incident's evidence alerts (acknowledging an incident acknowledges them).
* :meth:`check_sla` flags and escalates OPEN incidents past their SLA deadline.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.store import (
    ACKNOWLEDGED,
    ALLOWED_TRANSITIONS,
    FALSE_POSITIVE,
    OPEN,
    RESOLVED,
    SLA_ACTOR,
    SYSTEM_ACTOR,
    AlertStore,
    InvalidTransition,
)
from refrig_assets.alerts.store.outbox import enqueue, notification
from refrig_assets.alerts.store.schema import UTCDateTime, as_utc
from refrig_assets.alerts.store.transitions import deadlines_passed
from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.build import (
    EVIDENCE_COLUMNS,
    IncidentBuild,
    build_incidents,
)
from refrig_assets.incidents.policy import IncidentPolicy, incident_policy

Records = list[dict[str, Any]]
OPENED_EVENT = "incident.opened"
RAISED_EVENT = "incident.severity_raised"
ESCALATED_EVENT = "incident.escalated"
_LIVE = (OPEN, ACKNOWLEDGED)
_IN_CHUNK = 10_000
# What a page about an incident says.
PAYLOAD_FIELDS = (
    "incident_id",
    "scope",
    "kind",
    "device_id",
    "site_id",
    "cause",
    "cause_confidence",
    "severity",
    "severity_reasons",
    "first_window_start",
    "explanation",
    "sla_deadline",
)


class IncidentNotFound(KeyError):
    """No incident with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "incident not found"


def _py(value: Any) -> Any:
    """A frame value as the database driver expects it (None for missing)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(frame: pd.DataFrame, columns: Iterable[str]) -> Records:
    """Frame rows as dicts of Python values (None for missing, datetimes for timestamps)."""
    cols = list(columns)
    data = {}
    for c in cols:
        series = frame[c]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = np.array(pd.DatetimeIndex(series).to_pydatetime(), dtype=object)
            values[series.isna().to_numpy()] = None
        else:
            values = series.astype(object).to_numpy()
            values[series.isna().to_numpy()] = None
        data[c] = values.tolist()
    return [dict(zip(cols, row, strict=True)) for row in zip(*data.values(), strict=True)]


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in row.items()
        if k in PAYLOAD_FIELDS
    }


# Empty incident frames by table layout (column names, types, nullability): see _frame.
_EMPTY_FRAMES: dict[tuple, pd.DataFrame] = {}


class IncidentStore:
    """Incidents of the alert database (``alerts``: an :class:`AlertStore` or its URL)."""

    def __init__(self, alerts: AlertStore | str, *, policy: IncidentPolicy | None = None):
        self.alerts = alerts if isinstance(alerts, AlertStore) else AlertStore(alerts)
        self.table = self.alerts.incidents
        self.evidence_table = self.alerts.incident_evidence
        self.transitions = self.alerts.incident_transitions
        self._policy = policy
        self.contract = load_contract("device_incidents")

    @property
    def policy(self) -> IncidentPolicy:
        """The incident policy (config/incidents.yaml unless one was given)."""
        return self._policy or incident_policy()

    def close(self) -> None:
        """Release pooled connections."""
        self.alerts.close()

    # -- pipeline writes ------------------------------------------------------------------

    def open_incidents(
        self,
        conn: Connection | None = None,
        *,
        device_ids: Iterable[str] | None = None,
        site_ids: Iterable[str] | None = None,
        closed_since: Any = None,
    ) -> pd.DataFrame:
        """Live incidents (OPEN/ACKNOWLEDGED, not closed), plus incidents closed at or after
        ``closed_since`` (candidates for reopening); optionally only some devices' (and their
        sites')."""
        t = self.table
        live = sa.and_(t.c.status.in_(_LIVE), t.c.closed_at.is_(None))
        cond = live
        if closed_since is not None:
            cond = sa.or_(
                live,
                sa.and_(t.c.closed_at >= as_utc(closed_since), t.c.status != FALSE_POSITIVE),
            )
        query = sa.select(t).where(cond)
        rows: Records = []

        def run(c: Connection) -> None:
            if device_ids is None:
                rows.extend(dict(r) for r in c.execute(query).mappings())
                return
            devs = sorted(set(device_ids))
            for i in range(0, len(devs), _IN_CHUNK):
                chunk = devs[i : i + _IN_CHUNK]
                rows.extend(
                    dict(r) for r in c.execute(query.where(t.c.device_id.in_(chunk))).mappings()
                )
            sites = sorted(set(site_ids or ()))
            for i in range(0, len(sites), _IN_CHUNK):
                chunk = sites[i : i + _IN_CHUNK]
                q = query.where(t.c.scope == "site", t.c.site_id.in_(chunk))
                rows.extend(dict(r) for r in c.execute(q).mappings())

        if conn is None:
            with self.alerts._begin(write=False) as c:
                run(c)
        else:
            run(conn)
        return self._frame(rows)

    def apply(
        self,
        build: IncidentBuild,
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
        notify: bool = True,
        hold_historic: bool = True,
    ) -> dict[str, int]:
        """Write a build (see the module docstring); returns counts of what changed.

        With ``hold_historic`` an incident whose latest window ended before the historic
        cut-off (a backfill) is not paged; streaming alerts are live by nature and pass False.
        """
        counts = {
            "opened": 0,
            "updated": 0,
            "closed": 0,
            "reopened": 0,
            "raised": 0,
            "evidence_linked": 0,
            "pages_queued": 0,
        }
        inc = build.incidents
        if inc.empty:  # nothing to write: no transaction either (most hours of a small fleet)
            return counts
        if conn is None:
            with self.alerts._begin() as c:
                return self.apply(
                    build, conn=c, now=now, notify=notify, hold_historic=hold_historic
                )
        now = as_utc(now or self.alerts._now())
        t = self.table
        ids = inc["incident_id"].tolist()
        existing: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            for row in conn.execute(
                sa.select(t).where(t.c.incident_id.in_(ids[i : i + _IN_CHUNK]))
            ).mappings():
                existing[row["incident_id"]] = dict(row)
        columns = [*self.contract.column_names, "track"]
        records = _records(inc, columns)
        moved_to: dict[str, set[str]] = {}
        counts["evidence_linked"] = self._link(conn, build.evidence, now, moved_to)
        counts["evidence_linked"] += self._absorb(conn, build.absorbed, moved_to)
        tallies = self._tally(conn, ids)
        for r in records:
            r["evidence_count"], r["alert_count"] = tallies.get(r["incident_id"], (0, 0))
        policy, levels = self.policy, list(alert_policy().escalation_levels)
        ranks = {s: i for i, s in enumerate(policy.severities)}
        sla = {s: self.alerts.sla_period(s) for s in policy.severities}
        inserts, updates, audit = [], [], []
        late = set(build.arrived_late)
        for r in records:
            old = existing.get(r["incident_id"])
            if old is None:
                r.update(
                    paged_severity=None,
                    sla_deadline=self._raised_at(r, now) + sla[r["severity"]],
                    sla_breached=False,
                    escalation_level=levels[0],
                    first_seen_at=now,
                    updated_at=now,
                    acknowledged_by=None,
                    acknowledged_at=None,
                    resolved_by=SYSTEM_ACTOR if r["status"] == RESOLVED else None,
                    resolved_at=now if r["status"] == RESOLVED else None,
                )
                inserts.append(r)
                note = f"{r['severity']} {r['cause']} ({r['kind']})"
                audit.append(
                    self._audit(r["incident_id"], "created", None, OPEN, SYSTEM_ACTOR, now, note)
                )
                if r["status"] == RESOLVED:
                    note = "back to normal (hysteresis)"
                    audit.append(
                        self._audit(
                            r["incident_id"],
                            "closed",
                            OPEN,
                            RESOLVED,
                            SYSTEM_ACTOR,
                            now,
                            note,
                        )
                    )
                    counts["closed"] += 1
                counts["opened"] += 1
                continue
            if r["evidence_count"] == 0:
                self._superseded(r, old, moved_to.get(r["incident_id"], set()))
            r["arrived_late"] = r["incident_id"] in late
            change = self._refresh(r, old, now, ranks, audit, counts)
            if change:
                updates.append(change)
        if notify:
            counts["pages_queued"] = self._page(
                conn, inserts, updates, existing, now, hold_historic
            )
        if inserts:
            conn.execute(t.insert(), inserts)
        for u in sorted(updates, key=lambda u: u["incident_id"]):
            key = u.pop("incident_id")
            conn.execute(t.update().where(t.c.incident_id == key).values(**u))
        counts["updated"] = len(updates)
        if audit:
            conn.execute(self.transitions.insert(), audit)
        return counts

    @staticmethod
    def _superseded(r: dict[str, Any], old: dict[str, Any], moved_to: set[str]) -> None:
        """A stored incident left without evidence (its alerts regrouped into another incident,
        e.g. the sensor ticket that explains them) is superseded (in place): kept, linked to the
        incident that took its evidence like an inhibited one, never paged; :meth:`_refresh`
        closes it if it was live."""
        r["inhibited"] = True
        r["parent_incident_id"] = min(moved_to) if moved_to else old["parent_incident_id"]
        r["superseded"] = True

    def _refresh(
        self,
        r: dict[str, Any],
        old: dict[str, Any],
        now: datetime,
        ranks: dict[str, int],
        audit: Records,
        counts: dict[str, int],
    ) -> dict[str, Any] | None:
        """Update values of a known incident: build fields, with the lifecycle rules."""
        key = r["incident_id"]
        superseded = bool(r.pop("superseded", False))
        arrived_late = bool(r.pop("arrived_late", False))
        values = {
            c: r[c] for c in r if c not in ("incident_id", "status", "closed_at", "reopen_count")
        }
        if ranks[old["severity"]] < ranks[r["severity"]]:  # never lowered
            values["severity"] = old["severity"]
        elif ranks[r["severity"]] < ranks[old["severity"]]:
            audit.append(
                self._audit(
                    key,
                    "severity",
                    old["status"],
                    old["status"],
                    SYSTEM_ACTOR,
                    now,
                    f"severity {old['severity']} -> {r['severity']}: {r['severity_reasons']}",
                )
            )
            counts["raised"] += 1
            deadline = self._raised_at(r, now) + self.alerts.sla_period(r["severity"])
            values["sla_deadline"] = min(old["sla_deadline"], deadline)
        values["reopen_count"] = max(int(old["reopen_count"]), int(r["reopen_count"]))
        status, closed_at = old["status"], old["closed_at"]
        if superseded and old["status"] in _LIVE and old["closed_at"] is None:
            status, closed_at = RESOLVED, r["closed_at"] or r["last_window_end"]
            values.update(resolved_by=SYSTEM_ACTOR, resolved_at=now)
            note = f"superseded by {r['parent_incident_id']}: its evidence moved there"
            audit.append(
                self._audit(key, "superseded", old["status"], RESOLVED, SYSTEM_ACTOR, now, note)
            )
            counts["closed"] += 1
        elif superseded:
            pass  # closed already; its evidence is elsewhere, so it is not reopened
        elif old["status"] in _LIVE and old["closed_at"] is None and r["status"] == RESOLVED:
            status, closed_at = RESOLVED, r["closed_at"]
            values.update(resolved_by=SYSTEM_ACTOR, resolved_at=now)
            note = (
                "withdrawn: the readings of its windows arrived late, none is silent any more"
                if arrived_late
                else f"back to normal since {r['last_window_end']}"
            )
            audit.append(
                self._audit(key, "closed", old["status"], RESOLVED, SYSTEM_ACTOR, now, note)
            )
            counts["closed"] += 1
        elif (
            old["closed_at"] is not None
            and r["closed_at"] is None
            and old["status"] != FALSE_POSITIVE
        ):
            status, closed_at = OPEN, None
            values["reopen_count"] = max(values["reopen_count"], int(old["reopen_count"]) + 1)
            values.update(
                resolved_by=None,
                resolved_at=None,
                acknowledged_by=None,
                acknowledged_at=None,
            )
            audit.append(
                self._audit(
                    key,
                    "reopened",
                    old["status"],
                    OPEN,
                    SYSTEM_ACTOR,
                    now,
                    f"{r['cause']} returned at {r['last_window_end']}",
                )
            )
            counts["reopened"] += 1
        values.update(status=status, closed_at=closed_at)
        if all(_same(values[c], old.get(c)) for c in values):
            return None
        values.update(incident_id=key, updated_at=now)
        return values

    def _link(
        self,
        conn: Connection,
        evidence: pd.DataFrame,
        now: datetime,
        moved_to: dict[str, set[str]] | None = None,
    ) -> int:
        """Insert new evidence links, move links whose incident changed (noting in ``moved_to``
        which incidents each losing incident's evidence went to); returns how many."""
        if evidence.empty:
            return 0
        e = self.evidence_table
        rows = _records(evidence.assign(linked_at=now), [*EVIDENCE_COLUMNS, "linked_at"])
        ids = [r["evidence_id"] for r in rows]
        known: dict[str, tuple[str, bool]] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            q = sa.select(e.c.evidence_id, e.c.incident_id, e.c.repeat).where(
                e.c.evidence_id.in_(ids[i : i + _IN_CHUNK])
            )
            known.update({a: (b, c) for a, b, c in conn.execute(q)})
        new = [r for r in rows if r["evidence_id"] not in known]
        moved = [
            {
                "_id": r["evidence_id"],
                "incident_id": r["incident_id"],
                "repeat": r["repeat"],
                "cause": r["cause"],
            }
            for r in rows
            if r["evidence_id"] in known
            and known[r["evidence_id"]] != (r["incident_id"], r["repeat"])
        ]
        if moved_to is not None:
            for r in moved:
                old_incident = known[r["_id"]][0]
                if old_incident != r["incident_id"]:
                    moved_to.setdefault(old_incident, set()).add(r["incident_id"])
        if new:
            conn.execute(e.insert(), new)
        if moved:
            conn.execute(
                e.update()
                .where(e.c.evidence_id == sa.bindparam("_id"))
                .values(
                    incident_id=sa.bindparam("incident_id"),
                    repeat=sa.bindparam("repeat"),
                    cause=sa.bindparam("cause"),
                ),
                moved,
            )
        return len(new) + len(moved)

    def _absorb(
        self, conn: Connection, absorbed: dict[str, str], moved_to: dict[str, set[str]]
    ) -> int:
        """Move every evidence link of each absorbed incident to the incident that took it over
        (noted in ``moved_to``, so the emptied incident is superseded); returns how many."""
        e, moved = self.evidence_table, 0
        for old, new in sorted(absorbed.items()):
            done = conn.execute(
                e.update().where(e.c.incident_id == old).values(incident_id=new, repeat=True)
            ).rowcount
            if done:
                moved_to.setdefault(old, set()).add(new)
                moved += done
        return moved

    def _raised_at(self, r: dict[str, Any], now: datetime) -> datetime:
        """When an incident (or its rise) was raised in data time, as for alerts: the end of its
        latest window, never later than now (a re-run of old hours keeps their deadlines)."""
        return min(as_utc(r["last_window_end"]), now)

    def _tally(self, conn: Connection, ids: list[str]) -> dict[str, tuple[int, int]]:
        """(evidence, alerts) linked per incident, from the evidence table (exact on re-runs)."""
        e = self.evidence_table
        out: dict[str, tuple[int, int]] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            q = (
                sa.select(e.c.incident_id, sa.func.count(), sa.func.count(e.c.alert_id))
                .where(e.c.incident_id.in_(ids[i : i + _IN_CHUNK]))
                .group_by(e.c.incident_id)
            )
            out.update({k: (int(n), int(a)) for k, n, a in conn.execute(q)})
        return out

    def _pageable(self, conn: Connection, ids: list[str]) -> dict[str, str | None]:
        """Incidents with evidence an operator has not suppressed, each with its first alert
        (None for incidents raised without an alert: standalone causes, site events)."""
        e, a = self.evidence_table, self.alerts.alerts
        out: dict[str, str | None] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            query = (
                sa.select(e.c.incident_id, e.c.alert_id, a.c.suppressed)
                .select_from(e.outerjoin(a, a.c.alert_id == e.c.alert_id))
                .where(e.c.incident_id.in_(ids[i : i + _IN_CHUNK]))
                .order_by(e.c.incident_id, e.c.window_start, e.c.evidence_id)
            )
            for incident, alert_id, suppressed in conn.execute(query):
                if alert_id is not None and suppressed:
                    continue
                if incident not in out or out[incident] is None:
                    out[incident] = out.get(incident) or alert_id
        return out

    def _page(
        self,
        conn: Connection,
        inserts: Records,
        updates: Records,
        existing: dict[str, dict[str, Any]],
        now: datetime,
        hold_historic: bool = True,
    ) -> int:
        """Queue a page for each live incident that opened or rose to a paged severity, and
        note the paged severity in its insert or update (in place)."""
        policy = self.policy
        ranks = {s: i for i, s in enumerate(policy.severities)}
        historic_before = now - alert_policy().notifications.historic_cutoff
        changed = {u["incident_id"]: u for u in updates}
        candidates = [(r, r) for r in inserts]
        candidates += [({**existing[k], **u}, u) for k, u in changed.items()]
        first_alerts = self._pageable(conn, [r["incident_id"] for r, _ in candidates])
        items = []
        for r, target in candidates:
            if r["incident_id"] not in first_alerts:
                continue  # only alerts an operator suppressed (maintenance, feedback rules)
            if (
                r["status"] not in _LIVE
                or r["closed_at"] is not None
                or r["inhibited"]
                or r["kind"] == "sensor"
                or r["severity"] not in policy.notify_severities
                or (hold_historic and as_utc(r["last_window_end"]) < historic_before)
            ):
                continue
            before = r["paged_severity"]
            if before is not None and ranks[r["severity"]] >= ranks[before]:
                continue
            event = OPENED_EVENT if before is None else RAISED_EVENT
            key = f"incident:{r['incident_id']}:{r['severity']}"
            first = first_alerts[r["incident_id"]]
            items.append(notification(event, key, _payload(r), first))
            target["paged_severity"] = r["severity"]
        return enqueue(conn, self.alerts.outbox_table, items, now) if items else 0

    @staticmethod
    def _audit(
        incident_id: str,
        event: str,
        from_status: str | None,
        to_status: str,
        actor: str,
        at: datetime,
        note: str = "",
    ) -> dict[str, Any]:
        return {
            "incident_id": incident_id,
            "event": event,
            "from_status": from_status,
            "to_status": to_status,
            "actor": actor,
            "at": at,
            "note": note or "",
        }

    # -- operator actions -----------------------------------------------------------------

    def transition(self, incident_id: str, to_status: str, actor: str, note: str = "") -> dict:
        """Move an incident to ``to_status`` on behalf of ``actor`` and carry the change to its
        evidence alerts that allow it; returns the incident.

        Allowed as for alerts: OPEN → ACKNOWLEDGED, OPEN/ACKNOWLEDGED → RESOLVED or
        FALSE_POSITIVE. Raises :class:`IncidentNotFound` or :class:`InvalidTransition`.
        """
        if not actor or not actor.strip():
            raise InvalidTransition("an actor is required to change an incident's status")
        t = self.table
        with self.alerts._begin() as conn:
            row = self._row(conn, incident_id)
            current = row["status"]
            if to_status not in ALLOWED_TRANSITIONS.get(current, ()):
                allowed = ", ".join(ALLOWED_TRANSITIONS.get(current, ())) or "none (final status)"
                raise InvalidTransition(
                    f"incident {incident_id} is {current}; cannot move it to {to_status} "
                    f"(allowed from {current}: {allowed})"
                )
            now = self.alerts._now()
            values: dict[str, Any] = {"status": to_status, "updated_at": now}
            if to_status == ACKNOWLEDGED:
                values.update(acknowledged_by=actor, acknowledged_at=now)
            else:
                values.update(resolved_by=actor, resolved_at=now)
            done = conn.execute(
                t.update()
                .where(t.c.incident_id == incident_id, t.c.status == current)
                .values(values)
            )
            if done.rowcount != 1:
                raise InvalidTransition(f"incident {incident_id} changed concurrently; retry")
            conn.execute(
                self.transitions.insert(),
                self._audit(incident_id, "status", current, to_status, actor, now, note),
            )
            self._carry_to_alerts(conn, incident_id, to_status, actor, now)
            return self._row(conn, incident_id)

    def _carry_to_alerts(
        self,
        conn: Connection,
        incident_id: str,
        to_status: str,
        actor: str,
        now: datetime,
    ) -> None:
        """Apply an incident's status change to its evidence alerts where the alert allows it."""
        a, e = self.alerts.alerts, self.evidence_table
        alert_ids = sa.select(e.c.alert_id).where(
            e.c.incident_id == incident_id, e.c.alert_id.is_not(None)
        )
        sources = [s for s, targets in ALLOWED_TRANSITIONS.items() if to_status in targets]
        rows = conn.execute(
            sa.select(a.c.alert_id, a.c.status).where(
                a.c.alert_id.in_(alert_ids), a.c.status.in_(sources)
            )
        ).all()
        if not rows:
            return
        values: dict[str, Any] = {"status": to_status, "updated_at": now}
        if to_status == ACKNOWLEDGED:
            values.update(acknowledged_by=actor, acknowledged_at=now)
        conn.execute(
            a.update()
            .where(a.c.alert_id.in_([r[0] for r in rows]), a.c.status.in_(sources))
            .values(values)
        )
        conn.execute(
            self.alerts.transitions.insert(),
            [
                self.alerts._audit_row(
                    alert_id,
                    "status",
                    status,
                    to_status,
                    actor,
                    now,
                    f"with incident {incident_id}",
                )
                for alert_id, status in rows
            ],
        )

    def acknowledge(self, incident_id: str, actor: str, note: str = "") -> dict:
        """OPEN → ACKNOWLEDGED; acknowledges its OPEN evidence alerts too."""
        return self.transition(incident_id, ACKNOWLEDGED, actor, note)

    def resolve(self, incident_id: str, actor: str, note: str = "") -> dict:
        """OPEN/ACKNOWLEDGED → RESOLVED, with its evidence alerts."""
        return self.transition(incident_id, RESOLVED, actor, note)

    def false_positive(self, incident_id: str, actor: str, note: str = "") -> dict:
        """OPEN/ACKNOWLEDGED → FALSE_POSITIVE, with its evidence alerts (feeds evaluation)."""
        return self.transition(incident_id, FALSE_POSITIVE, actor, note)

    # -- SLA ------------------------------------------------------------------------------

    def check_sla(self, now: datetime, *, notify: bool = True) -> Records:
        """Flag OPEN, live, not inhibited incidents past their SLA deadline and move them one
        escalation level per call (each deadline period), as the alert SLA monitor does; each
        step is a transition by ``sla-monitor`` and, with ``notify``, one
        ``incident.escalated`` page (sensor tickets and backfills are not paged)."""
        now = as_utc(now)
        levels = list(alert_policy().escalation_levels)
        historic_before = now - alert_policy().sla_monitor.historic_cutoff
        t = self.table
        out: Records = []
        with self.alerts._begin() as conn:
            due = (
                conn.execute(
                    sa.select(t)
                    .where(
                        t.c.status == OPEN,
                        t.c.closed_at.is_(None),
                        t.c.inhibited.is_(False),
                        t.c.sla_deadline < now,
                        sa.or_(
                            t.c.sla_breached.is_(False),
                            t.c.escalation_level != levels[-1],
                        ),
                    )
                    .order_by(t.c.sla_deadline, t.c.incident_id)
                )
                .mappings()
                .all()
            )
            items, audit = [], []
            for row in due:
                r = dict(row)
                current = levels.index(r["escalation_level"])
                historic = r["last_window_end"] < historic_before
                target = current
                if not historic:
                    passed = deadlines_passed(
                        now - r["sla_deadline"], self.alerts.sla_period(r["severity"])
                    )
                    target = max(current, min(passed, len(levels) - 1, current + 1))
                if r["sla_breached"] and target == current:
                    continue
                conn.execute(
                    t.update()
                    .where(t.c.incident_id == r["incident_id"])
                    .values(
                        sla_breached=True,
                        escalation_level=levels[target],
                        updated_at=now,
                    )
                )
                event = "escalated" if target != current else "sla_breached"
                audit.append(
                    self._audit(
                        r["incident_id"],
                        event,
                        OPEN,
                        OPEN,
                        SLA_ACTOR,
                        now,
                        f"SLA deadline {r['sla_deadline'].isoformat()}: "
                        f"{levels[current]} -> {levels[target]}",
                    )
                )
                r.update(
                    sla_breached=True,
                    escalation_level=levels[target],
                    previous_escalation_level=levels[current],
                    paged=not historic,
                    notification=None,
                )
                out.append(r)
                if notify and target != current and r["kind"] != "sensor" and not historic:
                    key = f"incident:{r['incident_id']}:escalated:{levels[target]}"
                    r["notification"] = key
                    items.append(
                        notification(
                            ESCALATED_EVENT,
                            key,
                            {**_payload(r), "escalation_level": levels[target]},
                            None,
                        )
                    )
            if audit:
                conn.execute(self.transitions.insert(), audit)
            if items:
                enqueue(conn, self.alerts.outbox_table, items, self.alerts._now())
        return out

    # -- reads ----------------------------------------------------------------------------

    def _row(self, conn: Connection, incident_id: str) -> dict[str, Any]:
        row = (
            conn.execute(sa.select(self.table).where(self.table.c.incident_id == incident_id))
            .mappings()
            .first()
        )
        if row is None:
            raise IncidentNotFound(f"no incident with id {incident_id!r}")
        return dict(row)

    def get(self, incident_id: str) -> dict | None:
        """One incident with its lifecycle fields, or None."""
        with self.alerts._begin(write=False) as conn:
            try:
                return self._row(conn, incident_id)
            except IncidentNotFound:
                return None

    def evidence(self, incident_id: str) -> pd.DataFrame:
        """The incident's evidence timeline, oldest first: every linked alert (with its
        explanation, score, source and status), standalone cause, quality or site window."""
        e, a = self.evidence_table, self.alerts.alerts
        query = (
            sa.select(e, a.c.explanation, a.c.status.label("alert_status"), a.c.alert_type)
            .select_from(e.outerjoin(a, a.c.alert_id == e.c.alert_id))
            .where(e.c.incident_id == incident_id)
            .order_by(e.c.window_start, e.c.evidence_id)
        )
        with self.alerts._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        columns = [
            *(c.name for c in e.columns),
            "explanation",
            "alert_status",
            "alert_type",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        for c in ("window_start", "window_end", "linked_at"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        return frame

    def history(self, incident_id: str) -> Records:
        """Transitions of one incident in the order they were recorded."""
        tr = self.transitions
        with self.alerts._begin(write=False) as conn:
            rows = conn.execute(
                sa.select(tr).where(tr.c.incident_id == incident_id).order_by(tr.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    def by_ids(self, incident_ids: Iterable[str]) -> pd.DataFrame:
        """The stored incidents with these ids (every column)."""
        ids = list(incident_ids)
        rows: Records = []
        with self.alerts._begin(write=False) as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                q = sa.select(self.table).where(
                    self.table.c.incident_id.in_(ids[i : i + _IN_CHUNK])
                )
                rows.extend(dict(r) for r in conn.execute(q).mappings())
        return self._frame(rows)

    def linked_alerts(self, alert_ids: Iterable[str]) -> set[str]:
        """Which of these alerts are linked to an incident as evidence."""
        ids, e = list(alert_ids), self.evidence_table
        out: set[str] = set()
        with self.alerts._begin(write=False) as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                q = sa.select(e.c.alert_id).where(e.c.alert_id.in_(ids[i : i + _IN_CHUNK]))
                out.update(conn.execute(q).scalars())
        return out

    def incident_for_alert(self, alert_id: str) -> str | None:
        """The incident an alert is evidence of, if any."""
        e = self.evidence_table
        with self.alerts._begin(write=False) as conn:
            return conn.execute(sa.select(e.c.incident_id).where(e.c.alert_id == alert_id)).scalar()

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        severity: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        cause: str | None = None,
        site_id: str | None = None,
        device_id: str | None = None,
        include_inhibited: bool = True,
        live_only: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> tuple[pd.DataFrame, str | None]:
        """Incidents matching the filters, most severe first, then newest first.

        Returns ``(frame, next_cursor)``: pass ``next_cursor`` back as ``cursor`` for the next
        page (None when there is none). ``live_only``: not closed and OPEN/ACKNOWLEDGED.
        """
        t = self.table
        rank = sa.case(
            {s: i for i, s in enumerate(self.policy.severities)},
            value=t.c.severity,
            else_=len(self.policy.severities),
        )
        query = sa.select(t, rank.label("_rank"))
        for column, value in (
            ("status", status),
            ("severity", severity),
            ("kind", kind),
        ):
            if value is not None:
                values = [value] if isinstance(value, str) else list(value)
                query = query.where(t.c[column].in_(values))
        for column, value in (
            ("cause", cause),
            ("site_id", site_id),
            ("device_id", device_id),
        ):
            if value is not None:
                query = query.where(t.c[column] == value)
        if not include_inhibited:
            query = query.where(t.c.inhibited.is_(False))
        if live_only:
            query = query.where(t.c.status.in_(_LIVE), t.c.closed_at.is_(None))
        if cursor:
            at_rank, start, key = _decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    rank > at_rank,
                    sa.and_(rank == at_rank, t.c.first_window_start < start),
                    sa.and_(
                        rank == at_rank,
                        t.c.first_window_start == start,
                        t.c.incident_id > key,
                    ),
                )
            )
        query = query.order_by(rank, t.c.first_window_start.desc(), t.c.incident_id)
        if limit is not None:
            query = query.limit(limit + 1)
        with self.alerts._begin(write=False) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        next_cursor = None
        if limit is not None and len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = _encode_cursor(
                last["_rank"], last["first_window_start"], last["incident_id"]
            )
        for r in rows:
            r.pop("_rank", None)
        return self._frame(rows), next_cursor

    def _frame(self, rows: Records) -> pd.DataFrame:
        """``rows`` as a frame of the incidents table's columns, typed as they are. Most hours
        of a history find no incident open: the empty frame is typed once per table layout and
        copied (a store is opened per hour)."""
        if rows:
            return self._typed(rows)
        layout = tuple((c.name, type(c.type), c.nullable) for c in self.table.columns)
        if layout not in _EMPTY_FRAMES:
            _EMPTY_FRAMES[layout] = self._typed([])
        return _EMPTY_FRAMES[layout].copy()

    def _typed(self, rows: Records) -> pd.DataFrame:
        columns = [c.name for c in self.table.columns]
        frame = pd.DataFrame(rows, columns=columns)
        for c in self.table.columns:
            if isinstance(c.type, UTCDateTime):
                frame[c.name] = pd.to_datetime(frame[c.name], utc=True)
            elif isinstance(c.type, sa.Boolean):
                frame[c.name] = frame[c.name].astype(bool)
            elif isinstance(c.type, sa.Float):
                frame[c.name] = frame[c.name].astype("float64")
            elif isinstance(c.type, sa.BigInteger) and not c.nullable:
                frame[c.name] = frame[c.name].astype("int64")
        return frame


def _encode_cursor(rank: int, start: datetime, key: str) -> str:
    raw = json.dumps([int(rank), as_utc(start).isoformat(), key])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    try:
        rank, start, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(rank), as_utc(start), str(key)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a cursor of this list: {cursor!r}") from exc


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    if isinstance(a, datetime) and isinstance(b, datetime):
        return as_utc(a) == as_utc(b)
    return a == b


def fold_alerts(
    store: AlertStore,
    conn: Connection,
    alerts: pd.DataFrame,
    now: datetime,
    *,
    notify: bool,
    hold_historic: bool = True,
) -> dict[str, int]:
    """Fold newly stored alerts into incidents inside the alert store's transaction: each joins
    its device's (or, for a site-wide cause, its site's) live incident (or reopens a recently
    closed one, or opens a new one), with the cause its streaming rule stands for (batch
    alerts: unknown until the hourly ``device_incidents`` diagnoses them)."""
    incidents = IncidentStore(store)
    policy = incidents.policy
    earliest = pd.to_datetime(alerts["window_start"], utc=True).min()
    # the alerts' sites too: a site-wide cause in a later batch continues the site's incident
    prior = incidents.open_incidents(
        conn,
        device_ids=alerts["device_id"].astype(str).unique(),
        site_ids=alerts["site_id"].dropna().astype(str).unique().tolist()
        if "site_id" in alerts
        else (),
        closed_since=(earliest - policy.reopen - policy.hysteresis).to_pydatetime(),
    )
    build = build_incidents(alerts, None, policy=policy, open_incidents=prior)
    return incidents.apply(build, conn=conn, now=now, notify=notify, hold_historic=hold_historic)
