"""How old a model's newest scores are, and what that means (seed 001 staleness policy).

Bands (hours, from ``staleness`` in ``config/lifecycle.yaml``): [0, 1) fresh — normal;
[1, 2) stale — "scores delayed" warning; [2, 4] very stale — rules-based fallback alerts;
beyond 4 expired — streaming rules only. A model scored daily is allowed its schedule period
minus one hour before its age counts.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

SCHEDULE_PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


class Staleness(StrEnum):
    FRESH = "FRESH"
    STALE = "STALE"
    VERY_STALE = "VERY_STALE"
    EXPIRED = "EXPIRED"
    NO_SCORES = "NO_SCORES"


class Action(StrEnum):
    """What alerting does about one model."""

    NORMAL = "normal"
    DELAYED = "normal, scores delayed"
    RULES_FALLBACK = "rules-based fallback"
    STREAMING_ONLY = "streaming rules only"


ACTION = {
    Staleness.FRESH: Action.NORMAL,
    Staleness.STALE: Action.DELAYED,
    Staleness.VERY_STALE: Action.RULES_FALLBACK,
    Staleness.EXPIRED: Action.STREAMING_ONLY,
    Staleness.NO_SCORES: Action.STREAMING_ONLY,
}


def schedule_allowance(schedule: str) -> timedelta:
    """Age a model's scores may have before its staleness counts (period − 1 h)."""
    try:
        return SCHEDULE_PERIOD[schedule] - timedelta(hours=1)
    except KeyError:
        raise ValueError(
            f"unknown schedule {schedule!r} (known: {sorted(SCHEDULE_PERIOD)})"
        ) from None


def classify_age(age: timedelta | None, policy: dict[str, Any]) -> Staleness:
    """The staleness band of a score age (``policy`` is the ``staleness`` section)."""
    if age is None:
        return Staleness.NO_SCORES
    hours = age.total_seconds() / 3600
    if hours < float(policy["stale_from_hours"]):
        return Staleness.FRESH
    if hours < float(policy["very_stale_from_hours"]):
        return Staleness.STALE
    if hours <= float(policy["expired_after_hours"]):
        return Staleness.VERY_STALE
    return Staleness.EXPIRED
