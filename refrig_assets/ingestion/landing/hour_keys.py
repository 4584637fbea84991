"""Hourly partition keys of readings (``2026-01-01-05:00``), all in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def hour_key(ts: datetime) -> str:
    """The hourly partition key holding ``ts`` (UTC), e.g. ``2026-01-01-05:00``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d-%H:00")


def hours_between(first: datetime, last: datetime) -> list[str]:
    """Partition keys of every hour from the one holding ``first`` to the one holding ``last``."""
    h = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while h <= last:
        out.append(hour_key(h))
        h += timedelta(hours=1)
    return out
