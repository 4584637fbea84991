"""Time partitions shared by every asset: UTC hours, and days that map onto 24 hours."""

import dagster as dg

from refrig_assets.core.settings import get_settings

_start = get_settings().partition_start

hourly_partitions = dg.HourlyPartitionsDefinition(start_date=_start, timezone="UTC")
daily_partitions = dg.DailyPartitionsDefinition(start_date=_start[:10], timezone="UTC")
