"""``GET /health``: component states and scoring latency / error rate per model version.

Components: the Dagster instance (reachable, last successful materialization per asset), the
alert database and the model registry. Scoring figures come from Dagster's own records of the
``<model_id>_scores`` steps: latency from step start to end, model version from the
materialization's metadata; failed steps count towards the error rate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from refrig_assets.core.model_config import all_model_ids
from refrig_assets.core.settings import get_settings
from refrig_assets.monitoring.service_health import (
    DOWN,
    ComponentState,
    ScoringObservation,
    alert_db_state,
    health_report,
    probe,
    registry_state,
    scoring_stats,
)

RECENT_STEPS = 200


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def dagster_state(instance: Any) -> ComponentState:
    """The instance answers, and when each asset last materialized successfully (and in which run)."""

    def check() -> tuple[str, dict[str, Any]]:
        instance.get_runs(limit=1)
        keys = instance.get_asset_keys()
        events = instance.get_latest_materialization_events(keys)
        last = {
            key.to_user_string(): {"run_id": event.run_id, "at": _iso(event.timestamp)}
            for key, event in sorted(events.items(), key=lambda kv: kv[0].to_user_string())
            if event is not None
        }
        return f"reachable; {len(last)} assets materialized", {"last_successful": last}

    return probe("dagster_instance", check)


def scoring_observations(instance: Any, model_ids: list[str]) -> list[ScoringObservation]:
    """Recent scoring steps of each model from the instance's event log and run step stats."""
    import dagster as dg

    observations = []
    steps = {f"{m}_scores": m for m in model_ids}
    for step, model_id in steps.items():
        records = instance.fetch_materializations(dg.AssetKey(step), limit=RECENT_STEPS).records
        for record in records:
            entry = record.event_log_entry
            meta = entry.asset_materialization.metadata if entry.asset_materialization else {}
            if "model_version" not in meta:
                continue  # held partitions: nothing was scored
            if "model_versions" in meta:  # a progressive rollout: each version on its own
                observations += rollout_observations(model_id, meta["model_versions"].value)
                continue
            stats = instance.get_run_step_stats(entry.run_id, step_keys=[step])
            latency = None
            if stats and stats[0].start_time and stats[0].end_time:
                latency = stats[0].end_time - stats[0].start_time
            windows = meta.get("windows_scored")
            observations.append(
                ScoringObservation(
                    model_id,
                    str(meta["model_version"].value),
                    latency,
                    failed=False,
                    windows_scored=int(windows.value) if windows is not None else 0,
                )
            )
    failed_runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=RECENT_STEPS
    )
    for run in failed_runs:
        for stat in instance.get_run_step_stats(run.run_id):
            if (
                stat.step_key in steps
                and stat.status is not None
                and stat.status.value == "FAILURE"
            ):
                observations.append(ScoringObservation(steps[stat.step_key], None, None, True))
    return observations


def rollout_observations(model_id: str, versions: dict[str, Any]) -> list[ScoringObservation]:
    """One observation per version a rollout partition was scored with (its own scoring time,
    whether it raised, the windows it scored)."""
    return [
        ScoringObservation(
            model_id,
            str(side["version"]),
            float(side["seconds"]) if side.get("seconds") is not None else None,
            failed=bool(side.get("failed")),
            windows_scored=int(side.get("windows_scored") or 0),
        )
        for side in versions.values()
    ]


def build_health(alerts_db_url: str) -> APIRouter:
    """The ``/health`` router over the configured Dagster instance, alert database and registry."""
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health() -> JSONResponse:
        import dagster as dg

        from refrig_assets.training.registry import ModelRegistry

        settings = get_settings()
        model_ids = all_model_ids(settings.models_dir)
        components = [alert_db_state(alerts_db_url)]
        registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
        from refrig_assets.lifecycle.integrity import not_trained_models

        components.append(
            registry_state(registry, model_ids, not_trained_models(model_ids, alerts_db_url))
        )
        scoring: list[dict[str, Any]] = []
        # DAGSTER_HOME, else $REFRIG_HOME/dagster as the Makefile sets it.
        dagster_home = settings.dagster_home
        try:
            if not dagster_home.is_dir():
                raise FileNotFoundError(f"no Dagster instance at {dagster_home} (set DAGSTER_HOME)")
            instance = dg.DagsterInstance.from_config(str(dagster_home))
        except Exception as exc:  # unreadable dagster.yaml, storage gone: the instance is down
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            components.insert(
                0, ComponentState("dagster_instance", DOWN, f"{type(exc).__name__}: {first_line}")
            )
        else:
            with instance:
                components.insert(0, dagster_state(instance))
                if components[0].state != DOWN:
                    scoring = scoring_stats(scoring_observations(instance, model_ids))
        report = health_report(components, scoring)
        return JSONResponse(report, status_code=503 if report["status"] == DOWN else 200)

    return router
