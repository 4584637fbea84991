"""Monitoring: daily drift and health assets, their job and schedule, the retraining trigger."""

import dagster as dg

from refrig_assets.defs.monitoring.assets import monitoring_assets
from refrig_assets.defs.monitoring.sensors import (
    daily_monitoring,
    daily_monitoring_schedule,
    retraining_trigger,
)

defs = dg.Definitions(
    assets=monitoring_assets,
    jobs=[daily_monitoring],
    schedules=[daily_monitoring_schedule],
    sensors=[retraining_trigger],
)
