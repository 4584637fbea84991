"""The end of ``refrig pipeline run``: daily detectors over the days touched, then the backtest."""

import dagster as dg

from refrig_assets.cli.runner import run_tags, stop_if_interrupted


def run_daily_scores_and_backtest(
    defs: dg.Definitions, instance, keys: list[str], log, run_config: dict
) -> list[str]:
    """Materialize the daily score assets for every day of ``keys`` (hourly partition keys),
    then ``detection_backtest`` over those hours; returns the failed step keys."""
    failures: list[str] = []
    job = defs.resolve_job_def("daily_scoring")
    for day in sorted({k[:10] for k in keys}):
        result = job.execute_in_process(
            instance=instance,
            partition_key=day,
            run_config=run_config,
            tags=run_tags(),
            raise_on_error=False,
        )
        stop_if_interrupted(result)
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        held = held_assets(result)
        status = "ok" if result.success else "FAILED " + ",".join(failed)
        log(f"  {day}: daily scores {status}")
        for asset, reason in held.items():
            log(f"    {asset} {reason.split(', more than')[0]}")
        failures += failed
    backtest = dg.materialize(
        [defs.resolve_assets_def("detection_backtest")],
        instance=instance,
        tags=run_tags(),
        run_config=run_config
        | {
            "ops": {
                "detection_backtest": {
                    "config": {"start_partition": keys[0], "end_partition": keys[-1]}
                }
            }
        },
        raise_on_error=False,
    )
    stop_if_interrupted(backtest)
    if not backtest.success:
        failures.append("detection_backtest")
    log(f"  detection backtest: {'ok' if backtest.success else 'FAILED'}")
    return failures


def held_assets(result) -> dict[str, str]:
    """Assets of a run that were held (not scored), are not trained, or trained with a note
    (e.g. plain statistics in place of running-conditioned ones), and why."""
    out = {}
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            if "held" in mat.metadata:
                out[mat.asset_key.to_user_string()] = f"held: {mat.metadata['held'].value}"
            elif str(getattr(mat.metadata.get("not_trained"), "value", "") or ""):
                out[mat.asset_key.to_user_string()] = (
                    f"not trained: {mat.metadata['not_trained'].value}"
                )
            elif str(getattr(mat.metadata.get("training_notes"), "value", "") or ""):
                out[mat.asset_key.to_user_string()] = (
                    f"trained, note: {mat.metadata['training_notes'].value}"
                )
    return out
