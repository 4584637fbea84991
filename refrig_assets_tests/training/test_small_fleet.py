"""A pilot fleet too small for a detector, through the same jobs as ``refrig pipeline run``:
the detector is recorded as not trained (and why), its scores are empty partitions that say so,
the serving state and the training check show it as not trained instead of failing — and once
the fleet has grown, the next training trains it normally."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle import audit as ev
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.integrity import not_trained_models
from refrig_assets.monitoring.service_health import registry_state
from refrig_assets.simulator import SimulationConfig
from refrig_assets.training.registry import ModelRegistry
from tools.demos.lifecycle_demo import simulated_features

MODEL = "dbscan_cohort"
OTHER = "isolation_forest"
START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = "2026-01-01"
# The whole day on disk (a daily score partition is judged at its end); training takes 3 hours.
HOURS = [f"{DAY}-{h:02d}:00" for h in range(24)]
TRAIN = HOURS[:3]
MIN_SAMPLES = int(load_model_config(MODEL).hyperparameter("min_samples"))


def write_fleet(devices: int) -> None:
    """Feature windows of a simulated fleet of ``devices`` for HOURS, and its registry."""
    store = ParquetStore(get_settings().data_dir)
    config = SimulationConfig(devices=devices, hours=len(HOURS), start=START, seed=11)
    by_hour, registry, _ = simulated_features(config)
    store.write("device_registry", None, registry)
    for key, frame in by_hour.items():
        store.write("device_features", key, frame)


@pytest.fixture
def home(refrig_home):
    """A fresh project home; yields the Dagster instance the jobs record in."""
    with dg.instance_for_test() as instance:
        yield instance


def execute(instance, job: str, assets: list[str], partition=None, run_config=None):
    from refrig_assets.definitions import defs

    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets],
        run_config=run_config,
        raise_on_error=False,
    )


def train(instance, models: list[str]):
    assets = [f"{m}_model" for m in models]
    span = {"start_partition": TRAIN[0], "end_partition": TRAIN[-1]}
    return execute(
        instance,
        "train_detectors",
        assets,
        run_config={"ops": {a: {"config": span} for a in assets}},
    )


def metadata(result, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def registry() -> ModelRegistry:
    s = get_settings()
    return ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)


def audit_events(model_id: str) -> list:
    trail = AuditTrail(lifecycle_db_url(get_settings().alerts_db_url))
    try:
        return trail.events(model_id)
    finally:
        trail.close()


def test_a_fleet_smaller_than_min_samples_leaves_dbscan_visibly_not_trained(home):
    write_fleet(MIN_SAMPLES - 2)
    trained = train(home, [MODEL, OTHER])
    assert trained.success
    dbscan = metadata(trained, f"{MODEL}_model")
    assert dbscan["trained"] is False
    assert "fleet too small" in dbscan["not_trained"]
    assert f"{MIN_SAMPLES - 2} devices" in dbscan["not_trained"]
    assert "min_samples" in dbscan["not_trained"]
    assert dbscan["short_of_setting"] == "hyperparameters.min_samples"
    assert "trained" not in metadata(trained, f"{OTHER}_model")  # the others train as before
    # nothing pretends a model exists: no version, no production alias; the refusal is audited
    assert registry().latest_version(MODEL) is None
    assert registry().production_version(MODEL) is None
    (refusal,) = audit_events(MODEL)
    assert refusal.event == ev.NOT_TRAINED and refusal.reason == dbscan["not_trained"]
    assert refusal.gates == [{"setting": "hyperparameters.min_samples"}]
    # the registry's health and `refrig models list` say it too
    health = registry_state(
        registry(), [MODEL, OTHER], not_trained_models([MODEL, OTHER], get_settings().alerts_db_url)
    )
    assert health.state == "ok"
    assert f"{MODEL} not trained ({dbscan['not_trained']})" in health.detail
    assert "no production version" not in health.detail
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"not trained: {dbscan['not_trained']}" in listed.output
    checks = {e.check_name: e for e in trained.get_asset_check_evaluations()}
    if "training_is_current" in checks:  # the check runs with its asset when selected
        assert checks["training_is_current"].passed

    # the promotion gates have nothing to judge, and say why
    gated = execute(home, "train_and_promote", [f"{MODEL}_canary", f"{MODEL}_promotion"])
    assert gated.success
    canary = metadata(gated, f"{MODEL}_canary")
    assert canary["candidate"] == "none"
    assert canary["summary"] == f"not trained ({dbscan['not_trained']}): nothing to promote"
    assert all(e.passed for e in gated.get_asset_check_evaluations())
    assert metadata(gated, f"{MODEL}_promotion")["promoted"] is False

    daily = execute(home, "daily_scoring", [f"{MODEL}_scores"], partition=DAY)
    assert daily.success
    scores = metadata(daily, f"{MODEL}_scores")
    assert scores["not_trained"] == dbscan["not_trained"]
    assert scores["windows_scored"] == 0
    partition = ParquetStore(get_settings().data_dir).read(f"{MODEL}_scores", DAY)
    assert partition.empty
    assert list(partition.columns) == list(load_contract("model_scores").empty_frame().columns)
    assert all(e.passed for e in daily.get_asset_check_evaluations())

    hourly = execute(
        home,
        "hourly_pipeline",
        [f"{OTHER}_scores", "model_serving_state"],
        partition=HOURS[-1],
    )
    assert hourly.success
    state = ParquetStore(get_settings().data_dir).read("model_serving_state", HOURS[-1])
    row = state.set_index("model_id").loc[MODEL]
    assert row["state"] == "NOT_TRAINED"
    assert dbscan["not_trained"] in row["message"]
    assert state.set_index("model_id").loc[OTHER, "state"] == "FRESH"
    usable = {e.check_name: e.passed for e in hourly.get_asset_check_evaluations()}
    assert usable[f"{MODEL}_scores_usable"] is True


def test_once_the_fleet_has_grown_the_next_training_trains_it(home):
    write_fleet(MIN_SAMPLES - 2)
    assert metadata(train(home, [MODEL]), f"{MODEL}_model")["trained"] is False

    write_fleet(MIN_SAMPLES + 4)
    grown = train(home, [MODEL])
    assert grown.success
    trained = metadata(grown, f"{MODEL}_model")
    assert "not_trained" not in trained and trained["promoted_to_production"] is True
    version = registry().production_version(MODEL)
    assert version is not None
    assert [e.event for e in audit_events(MODEL)] == [ev.NOT_TRAINED, ev.REGISTERED, ev.PROMOTED]

    daily = execute(home, "daily_scoring", [f"{MODEL}_scores"], partition=DAY)
    assert daily.success
    scores = metadata(daily, f"{MODEL}_scores")
    assert scores["not_trained"] == "" and scores["model_version"] == version
    assert scores["windows_scored"] > 0


def test_a_not_trained_detectors_empty_scores_neither_add_nor_remove_agreement():
    from refrig_assets.alerts.generation import generate_alerts

    start = pd.Timestamp("2026-01-01T10:00Z")
    registry = pd.DataFrame({"device_id": ["d1"], "site_id": ["site-1"], "cohort": ["reach_in"]})
    previous = pd.DataFrame(
        columns=["device_id", "top_contributors", "alert_created_at", "suppressed"]
    )

    def flagged(model: str) -> dict:
        return {
            "device_id": "d1",
            "window_start": start,
            "window_end": start + pd.Timedelta(minutes=15),
            "model_id": model,
            "model_version": "1",
            "granularity": "device",
            "anomaly_score": 0.9,
            "anomaly_flag": True,
            "top_contributors": "current_compressor",
            "contributor_detail": "current_compressor_max 3.1σ above this device's baseline",
            "confidence": 1.0,
            "scored_at": start,
        }

    scored = pd.DataFrame([flagged("statistical_baseline"), flagged("isolation_forest")])
    skipped = load_contract("model_scores").empty_frame().assign(model_id=MODEL)
    alone = generate_alerts(scored, registry, previous, HOURS[10], "run-1")
    beside = generate_alerts(
        pd.concat([scored, skipped], ignore_index=True), registry, previous, HOURS[10], "run-1"
    )
    columns = ["alert_id", "severity", "models_flagging", "max_score", "model_versions"]
    pd.testing.assert_frame_equal(alone[columns], beside[columns])
    assert beside["models_flagging"].tolist() == [2]
