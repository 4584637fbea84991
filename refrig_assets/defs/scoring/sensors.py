"""A failing detector does not cost the hour its alerts.

In the hourly run a score asset that raises makes Dagster skip ``device_alerts`` (it depends on
every hourly score asset), although the other detectors' scores were written. This run-failure
sensor notices a failed run of ``hourly_pipeline`` whose failed steps include a score asset and
launches ``device_alerts`` alone for that hour: it reads whatever scores exist.
"""

import dagster as dg

from refrig_assets.defs.shared.jobs import hourly_pipeline
from refrig_assets.defs.shared.partitions import hourly_partitions

SCORE_SUFFIX = "_scores"

alerts_from_available_scores = dg.define_asset_job(
    "alerts_from_available_scores",
    selection=dg.AssetSelection.assets("device_alerts"),
    partitions_def=hourly_partitions,
    description="device_alerts alone for one hour, from whichever detectors' scores exist.",
    executor_def=dg.in_process_executor,
)


def failed_steps(context: dg.RunFailureSensorContext) -> list[str]:
    """Step keys that failed in the run the sensor is looking at."""
    return sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})


@dg.run_failure_sensor(
    name="alerts_despite_failed_scoring",
    monitored_jobs=[hourly_pipeline],
    request_job=alerts_from_available_scores,
    description="After an hourly run fails in a score asset, build that hour's alerts from the "
    "scores that were written.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alerts_despite_failed_scoring(context: dg.RunFailureSensorContext):
    """RunRequest for ``device_alerts`` of the failed run's hour, when a detector failed."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    failed = failed_steps(context)
    detectors = [s for s in failed if s.endswith(SCORE_SUFFIX)]
    if partition is None or not detectors:
        return dg.SkipReason(f"run {run.run_id}: no failed score asset ({failed or 'none'})")
    if "device_alerts" in failed:
        return dg.SkipReason(f"run {run.run_id}: device_alerts itself failed")
    return dg.RunRequest(
        run_key=f"alerts-after-{run.run_id}",
        partition_key=partition,
        tags={"refrig/failed_detectors": ",".join(detectors), "refrig/after_run": run.run_id},
    )
