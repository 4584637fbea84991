"""Lifecycle domain: canary + gated promotion per detector, serving state, rules fallback."""

import dagster as dg

from refrig_assets.defs.lifecycle.conditional_retraining import (
    conditional_retraining,
    currency_checks,
)
from refrig_assets.defs.lifecycle.promotion import canary_assets, promotion_assets
from refrig_assets.defs.lifecycle.serving import fallback_alerts, model_serving_state
from refrig_assets.defs.shared.lifecycle import GROUP
from refrig_assets.defs.shared.partitions import hourly_partitions

promotion_selection = dg.AssetSelection.assets(*canary_assets, *promotion_assets)

model_promotion = dg.define_asset_job(
    "model_promotion",
    selection=promotion_selection,
    description="Canary and gates for each detector's newest candidate; promotes those that pass.",
    executor_def=dg.in_process_executor,
)

train_and_promote = dg.define_asset_job(
    "train_and_promote",
    selection=dg.AssetSelection.groups("training") | promotion_selection,
    description="Train every detector, then canary, gates and promotion of the new versions "
    "(the first version of a detector becomes production directly).",
    executor_def=dg.in_process_executor,
)

lifecycle_watch = dg.define_asset_job(
    "lifecycle_watch",
    selection=dg.AssetSelection.assets(model_serving_state, fallback_alerts),
    partitions_def=hourly_partitions,
    description="Per-detector serving state of an hour and, when no batch model has usable "
    "scores, rules-based fallback alerts.",
    executor_def=dg.in_process_executor,
)

lifecycle_watch_schedule = dg.build_schedule_from_partitioned_job(
    lifecycle_watch,
    minute_of_hour=35,
    name="lifecycle_watch_schedule",
    description="35 minutes past each hour: serving state of every detector (staleness, pins) "
    "and rules-based fallback alerts while no model has usable scores.",
)

defs = dg.Definitions(
    assets=[*canary_assets, *promotion_assets, model_serving_state, fallback_alerts],
    jobs=[model_promotion, train_and_promote, lifecycle_watch],
    schedules=[lifecycle_watch_schedule],
    asset_checks=currency_checks,
    sensors=[conditional_retraining],
)

__all__ = ["GROUP", "defs"]
