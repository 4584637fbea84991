"""The daily monitoring job and schedule, and the retraining trigger sensor."""

import json
from datetime import UTC, datetime

import dagster as dg

from refrig_assets.defs.monitoring.assets import monitoring_assets
from refrig_assets.defs.shared.jobs import TRAINING_JOB
from refrig_assets.defs.shared.partitions import daily_partitions, hours_within
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.monitoring.retraining_trigger import (
    RetrainingLog,
    RetrainingRequest,
    requests_for_day,
    schedule_requests,
)

DRIFT_ASSETS = ("feature_drift", "score_drift")

daily_monitoring = dg.define_asset_job(
    "daily_monitoring",
    selection=dg.AssetSelection.assets(*monitoring_assets),
    partitions_def=daily_partitions,
    description="Feature drift, score drift, pipeline health and the monitoring summary of a day.",
    executor_def=dg.in_process_executor,
)

daily_monitoring_schedule = dg.build_schedule_from_partitioned_job(
    daily_monitoring,
    hour_of_day=0,
    minute_of_hour=30,
    name="daily_monitoring_schedule",
    description="At 00:30 UTC: drift, score drift and pipeline health of the day just ended.",
)


def training_range(store, day: str) -> tuple[str, str] | None:
    """First and last hourly partition key of ``day`` that has feature windows."""
    window = daily_partitions.time_window_for_partition_key(day)
    hours = hours_within(window.start, window.end)
    present = [h for h in hours if store.exists("device_features", h)]
    return (present[0], present[-1]) if present else None


def run_request(request: RetrainingRequest) -> dg.RunRequest:
    """A run of the detector's own training asset, tagged with the trigger and its reason."""
    asset = f"{request.model_id}_model"
    config = {}
    if request.train_start and request.train_end:
        config = {
            "ops": {
                asset: {
                    "config": {
                        "start_partition": request.train_start,
                        "end_partition": request.train_end,
                    }
                }
            }
        }
    return dg.RunRequest(
        run_key=request.request_id,
        job_name=TRAINING_JOB,
        asset_selection=[dg.AssetKey(asset)],
        run_config=config,
        tags={
            "refrig/retraining_request": request.request_id,
            "refrig/trigger": request.trigger,
            "refrig/reason": request.reason[:500],
        },
    )


@dg.sensor(
    name="retraining_trigger",
    job_name=TRAINING_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests retraining of a detector when a new feature_drift / score_drift "
    "partition shows significant drift for its production version (PSI above the significant "
    "band, or score KL above its threshold), or when the version is older than the configured "
    "schedule. Every request is recorded in the retraining_requests table first.",
)
def retraining_trigger(
    context: dg.SensorEvaluationContext, refrig: RefrigResource
) -> dg.SensorResult:
    """Evaluate new drift partitions (cursor: last storage id per drift asset) and model age."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    days: set[str] = set()
    for asset in DRIFT_ASSETS:
        while True:
            result = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey(asset), after_storage_id=cursor.get(asset)
                ),
                limit=100,
                ascending=True,
            )
            for record in result.records:
                if record.partition_key:
                    days.add(record.partition_key)
                cursor[asset] = record.storage_id
            if not result.has_more:
                break
    requests = [
        r
        for day in sorted(days)
        for r in requests_for_day(
            refrig.store,
            refrig.registry,
            day,
            training_range(refrig.store, day),
            refrig.settings.models_dir,
        )
    ]
    requests += schedule_requests(refrig.registry, datetime.now(UTC), refrig.settings.models_dir)
    log = RetrainingLog(refrig.settings.alerts_db_url)
    run_requests = []
    try:
        for request in requests:
            if log.record(request):
                context.log.info(f"retraining requested: {request.reason}")
                run_requests.append(run_request(request))
    finally:
        log.close()
    return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(cursor))
