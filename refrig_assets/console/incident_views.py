"""Incidents in the console: the main list, one incident with its evidence timeline, and the
operator actions, over :class:`refrig_assets.incidents.repository.IncidentStore`.

The list takes the live incidents matching the store's filters (at most ``max_limit`` of
them, usually far fewer: an incident is a whole fault episode), then applies what the store
does not know — free-text search, time range, active silences and sorting — and pages the
result with the console's cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from refrig_assets.access.policy import AccessPolicy
from refrig_assets.alerts.store import ACKNOWLEDGED, OPEN, STATUSES, AlertStore
from refrig_assets.console.paging import decode_cursor, encode_cursor
from refrig_assets.console.silences import SilenceStore, silence_for
from refrig_assets.incidents.repository import IncidentNotFound, IncidentStore

LIVE = [OPEN, ACKNOWLEDGED]
# A status filter of ``all`` (any case) asks for every status, in the API as on the pages.
ALL = "ALL"


def asked_statuses(status: list[str] | None) -> list[str] | None:
    """The statuses a filter asks for, upper-cased: ``all`` stands for every status; None or
    empty when it asks for none (the caller's default)."""
    if not status:
        return None
    upper = [s.upper() for s in status]
    return list(STATUSES) if ALL in upper else upper


# Sortable columns of the incident list; ``severity`` ranks most severe first.
INCIDENT_SORT_KEYS = (
    "severity",
    "sla",
    "cause",
    "site",
    "device",
    "started",
    "alerts",
    "status",
)
_SEARCHED = ("incident_id", "device_id", "site_id", "cause", "kind", "explanation")


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


class IncidentViews:
    """What the console shows and does with incidents."""

    def __init__(
        self,
        alerts: AlertStore,
        silences: SilenceStore,
        access: AccessPolicy,
        now: Callable[[], datetime],
        filter_error: type[Exception],
    ):
        self.store = IncidentStore(alerts)
        self.silences = silences
        self.access = access
        self.now = now
        self.filter_error = filter_error

    def _decorate(self, incident: dict[str, Any]) -> dict[str, Any]:
        now = pd.Timestamp(self.now())
        deadline = incident.get("sla_deadline")
        left = None
        if incident["status"] == OPEN and deadline is not None:
            left = (pd.Timestamp(deadline) - now).total_seconds()
            state = "breached" if incident.get("sla_breached") or left < 0 else "due"
        elif incident["status"] == ACKNOWLEDGED:
            state = "acknowledged"
        else:
            state = "closed" if incident["status"] != OPEN else "due"
        try:
            evidence = json.loads(incident.get("cause_evidence") or "[]")
        except ValueError:
            evidence = []
        return {
            **incident,
            "sla_state": state,
            "time_left_seconds": left,
            "cause_signals": evidence,
        }

    def listing(
        self,
        *,
        status: list[str] | None = None,
        severity: str | None = None,
        cause: str | None = None,
        site: str | None = None,
        device: str | None = None,
        q: str | None = None,
        since: datetime | None = None,
        include_silenced: bool = False,
        sort: str | None = None,
        order: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of incidents (default: OPEN and ACKNOWLEDGED), most severe first, newest
        first; ``next_cursor`` for the next page and ``truncated`` when more incidents
        matched the store's filters than ``pagination.max_limit``."""
        statuses = asked_statuses(status) or LIVE
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise self.filter_error(f"status must be one of {', '.join(STATUSES)}; got {unknown}")
        if sort not in (None, "", *INCIDENT_SORT_KEYS):
            raise self.filter_error(
                f"sort must be one of {', '.join(INCIDENT_SORT_KEYS)}; got {sort!r}"
            )
        severities = list(self.store.policy.severities)
        if severity and severity.upper() not in severities:
            raise self.filter_error(
                f"severity must be one of {', '.join(severities)}; got {severity!r}"
            )
        frame, more = self.store.list(
            status=statuses,
            severity=severity.upper() if severity else None,
            cause=cause or None,
            site_id=site or None,
            device_id=device or None,
            limit=self.access.max_limit,
        )
        items = [self._decorate(i) for i in _records(frame)]
        if q and q.strip():
            needle = q.strip().lower()
            items = [
                i for i in items if any(needle in str(i.get(f) or "").lower() for f in _SEARCHED)
            ]
        if since is not None:
            items = [
                i
                for i in items
                if i["last_window_end"]
                and pd.Timestamp(i["last_window_end"]) >= pd.Timestamp(since)
            ]
        active = self.silences.active()
        for item in items:
            silence = silence_for(item, active)
            item["silenced_by"] = silence["id"] if silence else None
            item["silence_reason"] = silence["description"] if silence else None
        if not include_silenced:
            items = [i for i in items if not i["silenced_by"]]
        if sort:
            items = self._sorted(items, sort, order == "desc")
        position = decode_cursor(cursor)
        page = items[position : position + limit]
        end = position + len(page)
        return {
            "items": page,
            "limit": limit,
            "total": len(items),
            "next_cursor": encode_cursor(end) if end < len(items) else None,
            "truncated": more is not None,
            "summary": self._summary(items),
        }

    def _sorted(
        self, items: list[dict[str, Any]], sort: str, descending: bool
    ) -> list[dict[str, Any]]:
        severities = list(self.store.policy.severities)
        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "severity": lambda i: (
                severities.index(i["severity"]) if i["severity"] in severities else 99
            ),
            "sla": lambda i: (
                pd.Timestamp(i["sla_deadline"])
                if i.get("sla_deadline")
                else pd.Timestamp.max.tz_localize("UTC")
            ),
            "cause": lambda i: str(i.get("cause") or ""),
            "site": lambda i: str(i.get("site_id") or ""),
            "device": lambda i: str(i.get("device_id") or ""),
            "started": lambda i: pd.Timestamp(i["first_window_start"]),
            "alerts": lambda i: int(i.get("alert_count") or 0),
            "status": lambda i: str(i["status"]),
        }
        return sorted(items, key=keys[sort], reverse=descending)

    def _summary(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        by_severity = {s: 0 for s in self.store.policy.severities}
        for i in items:
            if i["status"] in LIVE:
                by_severity[i["severity"]] = by_severity.get(i["severity"], 0) + 1
        return {
            "by_severity": by_severity,
            "open": sum(i["status"] == OPEN for i in items),
            "acknowledged": sum(i["status"] == ACKNOWLEDGED for i in items),
            "breached": sum(i["sla_state"] == "breached" for i in items),
        }

    def get(self, incident_id: str) -> dict[str, Any]:
        """One incident with its evidence timeline (oldest first) and its history."""
        incident = self.store.get(incident_id)
        if incident is None:
            raise IncidentNotFound(f"no incident with id {incident_id!r}")
        return {
            "incident": self._decorate({k: _plain(v) for k, v in incident.items()}),
            "timeline": _records(self.store.evidence(incident_id)),
            "history": self.store.history(incident_id),
        }

    def act(self, incident_id: str, action: str, actor: str, note: str = "") -> dict[str, Any]:
        """acknowledge, resolve or false_positive an incident (its alerts follow)."""
        changed = getattr(self.store, action)(incident_id, actor, note)
        return {"incident": self._decorate({k: _plain(v) for k, v in changed.items()})}

    def bulk(self, action: str, ids: list[str], actor: str, note: str = "") -> dict[str, Any]:
        """Act on many incidents; those that cannot change are reported with why."""
        from refrig_assets.alerts.store import InvalidTransition

        if len(ids) > self.access.bulk_max:
            raise self.filter_error(
                f"at most {self.access.bulk_max} incidents per request; got {len(ids)}"
            )
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for incident_id in dict.fromkeys(ids):
            try:
                self.act(incident_id, action, actor, note)
                done.append(incident_id)
            except (IncidentNotFound, InvalidTransition) as exc:
                failed.append({"incident_id": incident_id, "detail": str(exc)})
        return {"action": action, "done": done, "failed": failed}

    def sites(self) -> list[dict[str, Any]]:
        """Live, unsilenced incidents grouped per site, most urgent site first."""
        listing = self.listing(limit=self.access.max_limit)
        severities = list(self.store.policy.severities)
        by_site: dict[str, dict[str, Any]] = {}
        for item in listing["items"]:
            site = by_site.setdefault(
                item["site_id"],
                {
                    "site_id": item["site_id"],
                    "by_severity": dict.fromkeys(severities, 0),
                    "open": 0,
                    "acknowledged": 0,
                    "breached": 0,
                    "incidents": [],
                },
            )
            site["by_severity"][item["severity"]] += 1
            site["open" if item["status"] == OPEN else "acknowledged"] += 1
            site["breached"] += item["sla_state"] == "breached"
            site["incidents"].append(item)
        return sorted(
            by_site.values(),
            key=lambda s: (
                -s["breached"],
                [-s["by_severity"][v] for v in severities],
                s["site_id"],
            ),
        )
