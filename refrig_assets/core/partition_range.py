"""Which hours the hourly (and daily) partitions cover.

Two sources, in this order:

1. ``REFRIG_PARTITION_START`` (a real fleet: the first hour of its data); the partitions then run
   open-ended up to the present hour.
2. The range ``refrig pipeline run`` (so ``make run``) recorded in ``$REFRIG_HOME/partitions.json``
   for the hours it ran on: from the first to the last of them, widened by every later run. The
   Dagster UI (``make dev``) then lists only those hours instead of every hour since the default
   start.

Without either, the default start of :func:`refrig_assets.core.settings.get_settings` applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import durable_replace

ENV_START = "REFRIG_PARTITION_START"
RANGE_FILE = "partitions.json"
KEY_FORMAT = "%Y-%m-%d-%H:00"


@dataclass(frozen=True)
class PartitionRange:
    """First hourly partition key, the exclusive end hour (None: up to now) and where they came
    from (shown when a run falls outside)."""

    start: str
    end: str | None
    source: str

    @property
    def daily_start(self) -> str:
        return self.start[:10]

    @property
    def daily_end(self) -> str | None:
        """The day after the last hour's day (days are kept whole)."""
        if self.end is None:
            return None
        last_hour = _parse(self.end) - timedelta(hours=1)
        return (last_hour + timedelta(days=1)).strftime("%Y-%m-%d")

    def outside(self, keys: list[str]) -> list[str]:
        """The hourly keys of ``keys`` this range does not hold."""
        first = _parse(self.start)
        end = _parse(self.end) if self.end else None
        return [k for k in keys if _parse(k) < first or (end is not None and _parse(k) >= end)]

    def explain(self, keys: list[str]) -> str:
        """Why ``keys`` cannot run here and how to change the range."""
        outside = self.outside(keys)
        shown = ", ".join(outside[:3]) + (
            f" and {len(outside) - 3} more" if len(outside) > 3 else ""
        )
        until = f"up to {self.end} (exclusive)" if self.end else "up to the present hour"
        fix = (
            f"set {ENV_START} to the first hour of the fleet's data (or unset it)"
            if self.source == ENV_START
            else "restart the process that loaded the definitions (make dev) to pick up the range "
            "refrig pipeline run recorded"
        )
        return (
            f"hour(s) {shown} are outside the hourly partitions, which start at {self.start} "
            f"and run {until} (from {self.source}); {fix}. See README, 'Partitions'."
        )


def hour_keys(start: datetime, hours: int) -> list[str]:
    """Hourly partition keys from ``start`` (UTC) for ``hours`` hours."""
    return [(start + timedelta(hours=h)).strftime(KEY_FORMAT) for h in range(hours)]


def _parse(key: str) -> datetime:
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def range_file(home: Path | None = None) -> Path:
    return (home or get_settings().home) / RANGE_FILE


def partition_range() -> PartitionRange:
    """The range for this process (read once by ``defs/shared/partitions`` at import)."""
    if os.environ.get(ENV_START):
        return PartitionRange(os.environ[ENV_START], None, ENV_START)
    path = range_file()
    if path.exists():
        recorded = json.loads(path.read_text())
        return PartitionRange(recorded["start"], recorded["end"], str(path))
    return PartitionRange(get_settings().partition_start, None, "the default start")


def record_run_range(first_hour: datetime, hours: int) -> PartitionRange:
    """Widen the recorded range to hold ``hours`` hours from ``first_hour`` (UTC) and return the
    range in force. With ``REFRIG_PARTITION_START`` set nothing is recorded: the configured range
    stays and a run outside it is refused with :meth:`PartitionRange.explain`."""
    current = partition_range()
    if current.source == ENV_START:
        return current
    start = first_hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=hours)
    path = range_file()
    if path.exists():
        start = min(start, _parse(current.start))
        end = max(end, _parse(current.end)) if current.end else end
    recorded = {"start": start.strftime(KEY_FORMAT), "end": end.strftime(KEY_FORMAT)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(recorded, indent=1) + "\n")
    durable_replace(tmp, path)
    return PartitionRange(recorded["start"], recorded["end"], str(path))
