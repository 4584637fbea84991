"""Time partitions shared by every asset: UTC hours, and days that map onto 24 hours.

Their range comes from :func:`refrig_assets.core.partition_range.partition_range`:
``REFRIG_PARTITION_START`` for a real fleet, else the hours ``refrig pipeline run`` ran on."""

from datetime import datetime

import dagster as dg
from dagster._core.definitions.partitions.utils import TimeWindow

from refrig_assets.core.partition_range import partition_range

partition_range_in_force = partition_range()

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=partition_range_in_force.start,
    end_date=partition_range_in_force.end,
    timezone="UTC",
)
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partition_range_in_force.daily_start,
    end_date=partition_range_in_force.daily_end,
    timezone="UTC",
)


def hours_within(start: datetime, end: datetime) -> list[str]:
    """Hourly partition keys of [start, end), leaving out hours outside the partitions (a day
    of a run that covered only some of its hours)."""
    keys = hourly_partitions.get_partition_keys_in_time_window(TimeWindow(start, end))
    return [k for k in keys if hourly_partitions.has_partition_key(k)]
