"""Scoring: one score asset per detector, all in the model_scores contract (hourly detectors in
the hourly pipeline, daily ones in their own daily job); alerts are still built when a detector
fails."""

import dagster as dg

from refrig_assets.defs.scoring.assets import DAILY_GROUP, scoring_assets
from refrig_assets.defs.scoring.sensors import (
    alerts_despite_failed_scoring,
    alerts_from_available_scores,
)
from refrig_assets.defs.shared.partitions import daily_partitions

daily_scoring = dg.define_asset_job(
    "daily_scoring",
    selection=dg.AssetSelection.groups(DAILY_GROUP),
    partitions_def=daily_partitions,
    description="Daily detectors (autoencoder, DBSCAN cohorts, ...) over the 24 feature hours "
    "of one UTC day.",
    executor_def=dg.in_process_executor,
)

# Seed schedule: the daily batch with every model runs at 03:00 UTC for the day before.
daily_scoring_schedule = dg.build_schedule_from_partitioned_job(
    daily_scoring,
    hour_of_day=3,
    minute_of_hour=0,
    name="daily_scoring_schedule",
    description="At 03:00 UTC: the daily detectors score the day just ended.",
)

defs = dg.Definitions(
    assets=scoring_assets,
    jobs=[alerts_from_available_scores, daily_scoring],
    schedules=[daily_scoring_schedule],
    sensors=[alerts_despite_failed_scoring],
)

__all__ = ["defs"]
