"""Jobs that span domains: hourly readings → alerts, training, the release order, the registry.

Shared because sensors of several domains start or watch them; ``defs/pipeline`` registers them
with their schedule."""

import dagster as dg

from refrig_assets.core.model_config import all_model_ids
from refrig_assets.defs.shared.partitions import hourly_partitions

hourly_selection = dg.AssetSelection.groups(
    "ingestion", "quality", "features", "scoring", "alerts"
) - dg.AssetSelection.assets("device_registry")

hourly_pipeline = dg.define_asset_job(
    "hourly_pipeline",
    selection=hourly_selection.required_multi_asset_neighbors(),
    partitions_def=hourly_partitions,
    description="One UTC hour from landing files to alerts: readings, quality, features, hourly "
    "scores, alerts.",
    executor_def=dg.in_process_executor,
)

train_detectors = dg.define_asset_job(
    "train_detectors",
    selection=dg.AssetSelection.groups("training"),
    description="Fit every detector on a range of feature hours and register it in MLflow.",
    executor_def=dg.in_process_executor,
)

# The release order as one job: ingest → features → train → validate (canary with blocking gate
# checks) → deploy (promotion) → monitor (scores, alerts, serving state). A failing gate check
# skips the promotion in the same run: validation blocks deployment in the asset graph itself.
release_selection = (
    hourly_selection
    | dg.AssetSelection.groups("training")
    | dg.AssetSelection.assets(
        *[f"{m}_{stage}" for m in all_model_ids() for stage in ("canary", "promotion")],
        "model_serving_state",
    )
)

release_pipeline = dg.define_asset_job(
    "release_pipeline",
    selection=release_selection.required_multi_asset_neighbors(),
    partitions_def=hourly_partitions,
    description="ingest → features → train → validate → deploy → monitor for one UTC hour: "
    "readings and features, training, canary and blocking promotion gates, promotion, then "
    "scores, alerts and the serving state.",
    executor_def=dg.in_process_executor,
)

refresh_device_registry = dg.define_asset_job(
    "refresh_device_registry",
    selection=dg.AssetSelection.assets("device_registry"),
    description="Re-read the device registry file (sites, cohorts, per-device thresholds).",
    executor_def=dg.in_process_executor,
)

TRAINING_JOB = train_detectors.name
