"""Daily monitoring for the days a ``refrig pipeline run`` covered (recorded in the instance)."""

import dagster as dg

from refrig_assets.cli.runner import run_tags, stop_if_interrupted


def run_monitoring(defs: dg.Definitions, instance, hour_keys: list[str], log, run_config) -> list:
    """Materialize the daily_monitoring job for every UTC day in ``hour_keys``; returns the
    failed step keys."""
    job = defs.resolve_job_def("daily_monitoring")
    failed: list[str] = []
    for day in sorted({k[:10] for k in hour_keys}):
        result = job.execute_in_process(
            instance=instance,
            partition_key=day,
            run_config=run_config,
            tags=run_tags(),
            raise_on_error=False,
        )
        stop_if_interrupted(result)
        steps = [e.step_key for e in result.all_events if e.is_step_failure]
        log(f"  {day}: drift and health {'ok' if result.success else 'FAILED ' + ','.join(steps)}")
        failed += steps
    return failed
