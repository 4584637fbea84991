"""Time partitions shared by every asset: UTC hours, and days that map onto 24 hours.

Their range comes from :func:`refrig_assets.core.partition_range.partition_range`:
``REFRIG_PARTITION_START`` for a real fleet, else the hours ``refrig pipeline run`` ran on."""

import dagster as dg

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
