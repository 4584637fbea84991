"""Which version was in production at time T — answered from the append-only audit trail.

Every audit record carries the state after its event (production alias, pin, and the version
scoring serves: the pin when set, else the alias), so the serving version at T is the one of the
last record at or before T. A registry alias alone cannot answer this: it only knows "now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from refrig_assets.lifecycle.audit import AuditTrail, LifecycleEvent


@dataclass(frozen=True)
class ServingPeriod:
    """A version served from ``start`` until ``end`` (None: still serving)."""

    version: str | None
    start: datetime
    end: datetime | None
    pinned: bool
    forced: bool
    because: str


def _as_utc(at: datetime) -> datetime:
    ts = pd.Timestamp(at)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def serving_version_at(audit: AuditTrail, model_id: str, at: datetime) -> str | None:
    """The version scoring used for ``model_id`` at ``at`` (None: nothing was in production)."""
    events = audit.events(model_id, until=_as_utc(at))
    return events[-1].serving_version if events else None


def serving_periods(events: list[LifecycleEvent]) -> list[ServingPeriod]:
    """The serving timeline of one model: a new period each time the served version changes."""
    periods: list[ServingPeriod] = []
    for e in events:
        if periods and periods[-1].version == e.serving_version:
            continue
        if not periods and e.serving_version is None:
            continue  # e.g. the first version registered: nothing serves before its promotion
        if periods:
            last = periods[-1]
            periods[-1] = ServingPeriod(
                last.version, last.start, e.at, last.pinned, last.forced, last.because
            )
        periods.append(
            ServingPeriod(
                e.serving_version,
                e.at,
                None,
                e.pinned_version is not None and e.pinned_version == e.serving_version,
                e.forced,
                f"{e.event} by {e.actor}: {e.reason}",
            )
        )
    return periods


def timeline_frame(audit: AuditTrail, model_id: str) -> pd.DataFrame:
    """Serving periods as a table: version, from, until, pinned, forced, because."""
    rows = [
        {
            "version": p.version,
            "from": p.start,
            "until": p.end,
            "pinned": p.pinned,
            "forced": p.forced,
            "because": p.because,
        }
        for p in serving_periods(audit.events(model_id))
    ]
    return pd.DataFrame(rows, columns=["version", "from", "until", "pinned", "forced", "because"])
