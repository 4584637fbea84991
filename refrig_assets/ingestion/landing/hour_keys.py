"""Hourly partition keys of readings (``2026-01-01-05:00``), all in UTC, and the hour a landing
file names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# An hour in a file name: 20260101T05, 2026-01-01T05, 2026-01-01_05, 2026010105, ...
_NAMED_HOUR = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})[T_ -]?(\d{2})(?!\d)")


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


def named_hour(file_name: str) -> str | None:
    """The hour a file's name carries (``readings_20260101T05.csv`` → ``2026-01-01-05:00``)."""
    for m in _NAMED_HOUR.finditer(file_name):
        try:
            year, month, day, hour = (int(g) for g in m.groups())
            return hour_key(datetime(year, month, day, hour, tzinfo=UTC))
        except ValueError:  # digits that are not a date and hour
            continue
    return None


def file_hour(file_name: str, mtime: datetime) -> str:
    """The hour a landing file belongs to when its rows cannot tell: the hour its name carries,
    else the hour it was last modified (arrived)."""
    return named_hour(file_name) or hour_key(mtime)
