"""The infrastructure layer's input: step executions recorded in the Dagster instance."""

import dagster as dg
import pandas as pd

from refrig_assets.monitoring.pipeline_health import STEP_COLUMNS

PARTITION_TAG = "dagster/partition"


def _model_of(step: str, model_ids: set[str]) -> str | None:
    for suffix in ("_scores", "_model"):
        if step.endswith(suffix) and step.removesuffix(suffix) in model_ids:
            return step.removesuffix(suffix)
    return None


def _version_of(stats) -> str | None:
    for entry in stats.materialization_events or []:
        materialization = entry.asset_materialization
        value = materialization.metadata.get("model_version") if materialization else None
        if value is not None:
            return str(getattr(value, "value", value))
    return None


def step_executions(
    instance: dg.DagsterInstance, partition_keys: list[str], model_ids: set[str], limit: int = 5000
) -> pd.DataFrame:
    """One row per step of every run for ``partition_keys``: status, start, duration, attempts,
    and for a detector's steps its model id and the version it materialized."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={PARTITION_TAG: list(partition_keys)}), limit=limit
    )
    rows = []
    for record in records:
        run = record.dagster_run
        for stats in instance.get_run_step_stats(run.run_id):
            started, ended = stats.start_time, stats.end_time
            model_id = _model_of(stats.step_key, model_ids)
            rows.append(
                {
                    "step": stats.step_key,
                    "run_id": run.run_id,
                    "partition": run.tags.get(PARTITION_TAG),
                    "status": stats.status.value if stats.status else None,
                    "started_at": started,
                    "duration_s": (ended - started) if started and ended else None,
                    "attempts": stats.attempts,
                    "model_id": model_id,
                    "model_version": _version_of(stats) if model_id else None,
                }
            )
    return pd.DataFrame(rows, columns=STEP_COLUMNS)
