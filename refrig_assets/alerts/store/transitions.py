"""The alert lifecycle rules: allowed status changes, automatic actors, missed SLA deadlines.

Operators move an alert OPEN → ACKNOWLEDGED → RESOLVED, or OPEN/ACKNOWLEDGED → FALSE_POSITIVE;
RESOLVED and FALSE_POSITIVE are final. Changes the system makes itself are recorded under
``SYSTEM_ACTOR`` (creation, re-runs) or ``SLA_ACTOR`` (breaches and escalations).
"""

from __future__ import annotations

import math
from datetime import timedelta

from refrig_assets.alerts.store.schema import ACKNOWLEDGED, FALSE_POSITIVE, OPEN, RESOLVED

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    OPEN: (ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE),
    ACKNOWLEDGED: (RESOLVED, FALSE_POSITIVE),
    RESOLVED: (),
    FALSE_POSITIVE: (),
}

SYSTEM_ACTOR = "system"
SLA_ACTOR = "sla-monitor"
# The first alert type a detector emits; reconciliation replaces it, and a later re-upsert of
# the original alert must not put it back.
INITIAL_ALERT_TYPE = "ANOMALY_DETECTED"


class InvalidTransition(ValueError):
    """The requested lifecycle change is not allowed from the alert's current status."""


def deadlines_passed(overdue: timedelta, period: timedelta) -> int:
    """How many deadlines lie strictly before now: ceil(overdue / period), for overdue > 0."""
    if overdue <= timedelta(0):
        return 0
    return math.ceil(overdue / period) if period > timedelta(0) else 1
