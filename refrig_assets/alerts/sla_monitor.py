"""The SLA monitor's memory between checks: when it (re)started and when it last checked.

A monitor that was down (the daemon stopped, the code server restarted, the sensor was off) comes
back to every alert that went overdue meanwhile. So that the first check does not page all of
them at once, a gap of more than ``sla_monitor.restart_gap_minutes`` since the last check counts
as a (re)start, and for ``sla_monitor.startup_grace_minutes`` after it the monitor only watches.
The state is a small JSON text, kept as the sensor's cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from refrig_assets.alerts.severity import SlaMonitorPolicy
from refrig_assets.alerts.store.schema import as_utc


@dataclass(frozen=True)
class MonitorState:
    """When the running monitor started and when it last checked (None: never)."""

    started_at: datetime | None = None
    last_check_at: datetime | None = None

    @classmethod
    def from_json(cls, text: str | None) -> MonitorState:
        """The state of a cursor; an empty or unreadable one is a monitor that never ran."""
        try:
            raw = json.loads(text) if text else {}
            return cls(
                started_at=as_utc(raw["started_at"]) if raw.get("started_at") else None,
                last_check_at=as_utc(raw["last_check_at"]) if raw.get("last_check_at") else None,
            )
        except (ValueError, TypeError, AttributeError):
            return cls()

    def to_json(self) -> str:
        return json.dumps(
            {
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "last_check_at": self.last_check_at.isoformat() if self.last_check_at else None,
            }
        )

    def checked(self, now: datetime, policy: SlaMonitorPolicy) -> MonitorState:
        """The state after a check at ``now``: a (re)start when the monitor never ran or its
        last check is more than the restart gap ago (or in the future: the clock went back)."""
        now = as_utc(now)
        last = self.last_check_at
        restarted = (
            self.started_at is None
            or last is None
            or not (last <= now <= last + policy.restart_gap)
        )
        return MonitorState(started_at=now if restarted else self.started_at, last_check_at=now)

    def grace_until(self, policy: SlaMonitorPolicy) -> datetime | None:
        """End of the grace period after the last (re)start."""
        return None if self.started_at is None else self.started_at + policy.startup_grace

    def in_grace(self, now: datetime, policy: SlaMonitorPolicy) -> bool:
        """Whether ``now`` is still within the grace period after the last (re)start."""
        until = self.grace_until(policy)
        return until is not None and as_utc(now) < until
