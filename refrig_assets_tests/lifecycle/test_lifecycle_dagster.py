"""The lifecycle in the asset graph: gated promotion after training, and each failure mode's
fallback in the scoring and serving-state assets (in-process runs on a temporary instance)."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from support.lifecycle_world import HOURS, MODEL, use_world

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.config import config_path
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle import audit as ev
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.fallback import FALLBACK_SOURCE
from refrig_assets.lifecycle.pinning import write_pin
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.promotion import (
    ModelLifecycle,
    evaluate_candidate,
    read_labels,
    recent_features,
)
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry


def execute(job: str, assets: list[str], partition=None, run_config=None):
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        return defs.resolve_job_def(job).execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=[dg.AssetKey(a) for a in assets],
            run_config=run_config,
            raise_on_error=False,
        )


def lifecycle_service() -> ModelLifecycle:
    s = get_settings()
    registry = ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)
    return ModelLifecycle(registry, AuditTrail(lifecycle_db_url(s.alerts_db_url)), s.models_dir)


def metadata(result, asset: str) -> dict:
    (mat,) = [m for m in result.asset_materializations_for_node(asset)]
    return {k: v.value for k, v in mat.metadata.items()}


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture
def world(tmp_path, monkeypatch):
    return use_world(tmp_path, monkeypatch)


def test_training_promotes_the_first_version_and_gates_a_worse_one(world):
    promote = [f"{MODEL}_model", f"{MODEL}_canary", f"{MODEL}_promotion"]
    first = execute("train_and_promote", promote)
    assert first.success
    lc = lifecycle_service()
    v_first = lc.registry.production_version(MODEL)
    assert v_first == lc.registry.latest_version(MODEL)  # the world's versions had no alias
    assert metadata(first, f"{MODEL}_canary")["candidate"] == "none"

    # a deliberately worse configuration in the models/ file
    path = lc.models_dir / f"{MODEL}.yaml"
    config = yaml.safe_load(path.read_text())
    config["hyperparameters"].update(n_estimators=2, max_samples=16)
    path.write_text(yaml.safe_dump(config))
    second = execute("train_and_promote", promote)
    assert not second.success  # blocking gate checks fail the run ...
    assert second.asset_materializations_for_node(f"{MODEL}_promotion") == []  # ... skip this
    candidate = lc.registry.latest_version(MODEL)
    assert lc.registry.production_version(MODEL) == v_first
    canary = metadata(second, f"{MODEL}_canary")
    assert canary["candidate"] == candidate and canary["passed"] is False
    assert "plot" in canary and "top_k_overlap" in canary
    failed = [name for name, ok in checks(second).items() if not ok]
    assert any(name.startswith("canary_") for name in failed)
    blocked = lc.audit.latest(MODEL)
    assert blocked.event == ev.PROMOTION_BLOCKED and blocked.to_version == candidate
    assert blocked.actor.startswith("dagster run ")
    assert ParquetStore(get_settings().data_dir).exists("canary_scores", MODEL)

    forced = execute(
        "model_promotion",
        [f"{MODEL}_promotion"],
        run_config={
            "ops": {f"{MODEL}_promotion": {"config": {"force": True, "reason": "field test"}}}
        },
    )
    assert forced.success
    assert lc.registry.production_version(MODEL) == candidate
    assert lc.audit.latest(MODEL).event == ev.PROMOTED_FORCED
    lc.audit.close()


def materialize(assets, partition: str):
    """Materialize asset definitions for one partition (their upstream data is on disk)."""
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        return dg.materialize(
            assets,
            partition_key=partition,
            instance=instance,
            resources=defs.resources,
            raise_on_error=False,
        )


def _score(hour: str):
    from refrig_assets.defs.scoring.assets import scoring_assets

    (asset,) = [a for a in scoring_assets if a.key == dg.AssetKey(f"{MODEL}_scores")]
    return materialize([asset], hour)


def test_each_failure_mode_triggers_its_fallback(world):
    s = get_settings()
    store = ParquetStore(s.data_dir)
    lc = lifecycle_service()
    policy = load_policy(s.models_dir, MODEL)
    lc.after_training(MODEL, "1", "trainer")
    features, _ = recent_features(store, policy["canary"]["recent_hours"])
    evaluation = evaluate_candidate(
        lc.registry,
        MODEL,
        "3",
        "1",
        features,
        store.read("device_registry"),
        read_labels(s.labels_path),
        policy,
    )
    lc.apply(evaluation.report, "alice")

    # production v3 scores hour 0; a rollback pins v1 and the next run scores with it
    assert _score(HOURS[0]).success
    assert set(store.read(f"{MODEL}_scores", HOURS[0])["model_version"]) == {"3"}
    lc.rollback(MODEL, "bob", "v3 misbehaves")
    assert _score(HOURS[1]).success
    good = store.read(f"{MODEL}_scores", HOURS[1])
    assert set(good["model_version"]) == {"1"}

    # scoring crashes (a broken pin): nothing is written, the last good partition stays
    write_pin(lc.models_dir / f"{MODEL}.yaml", "99")
    assert not _score(HOURS[2]).success
    assert not store.exists(f"{MODEL}_scores", HOURS[2])
    pd.testing.assert_frame_equal(store.read(f"{MODEL}_scores", HOURS[1]), good)

    # a version that produces NaN scores (a broken calibration setting): the blocking contract
    # check fails and nothing is written either
    config = load_model_config(MODEL, s.models_dir)
    broken = {**config.settings["calibration"], "decades": float("nan")}
    detector, lineage, metrics = train_detector(
        dataclasses.replace(config, settings={**config.settings, "calibration": broken}),
        features,
        "recent",
        "nan-test",
    )
    nan_version = lc.registry.register(detector, lineage, metrics)
    lc.pin(MODEL, nan_version, "carol", "reproduce a field report", force=True)
    nan_run = _score(HOURS[2])
    assert not nan_run.success and checks(nan_run) == {"model_scores_contract": False}
    assert not store.exists(f"{MODEL}_scores", HOURS[2])

    # two hours later the last good scores are very stale: rules-based fallback alerts
    hot = store.read("device_features", HOURS[3])
    device = sorted(hot["device_id"])[0]
    hot.loc[hot["device_id"] == device, "temperature_evaporator_mean"] = 5.0
    store.write("device_features", HOURS[3], hot)
    from refrig_assets.defs.lifecycle.serving import fallback_alerts, model_serving_state

    watch = materialize([model_serving_state, fallback_alerts], HOURS[3])
    assert watch.success
    state = store.read("model_serving_state", HOURS[3]).set_index("model_id")
    assert state.loc[MODEL, "state"] == "VERY_STALE" and state.loc[MODEL, "score_age_hours"] == 2
    assert metadata(watch, "fallback_alerts")["fleet_action"] == "rules-based fallback"
    rules = {r["feature"]: r for r in policy["fallback"]["rules"]}
    fires = (
        (hot["temperature_evaporator_mean"] > rules["temperature_evaporator_mean"]["above"])
        | (hot["vibration_compressor_max"] > rules["vibration_compressor_max"]["above"])
        | (hot["pressure_low_side_mean"] < rules["pressure_low_side_mean"]["below"])
        | (hot["current_compressor_max"] > rules["current_compressor_max"]["above"])
    )
    alerts = AlertStore(s.alerts_db_url).list(include_suppressed=True)
    fallback = alerts[alerts["source"] == FALLBACK_SOURCE]
    expected = set(zip(hot.loc[fires, "device_id"], hot.loc[fires, "window_start"], strict=True))
    assert device in set(fallback["device_id"])
    assert set(zip(fallback["device_id"], fallback["window_start"], strict=True)) == expected
    # the hand-edited pin was noticed and audited
    assert any(e.actor == f"models/{MODEL}.yaml" for e in lc.audit.events(MODEL))

    # a paused model is held: nothing scored, nothing written, no failure
    write_pin(lc.models_dir / f"{MODEL}.yaml", "1")
    lc.pause(MODEL, "carol", "investigating")
    held = _score(HOURS[4])
    assert held.success and "held" in metadata(held, f"{MODEL}_scores")
    assert not store.exists(f"{MODEL}_scores", HOURS[4])

    # a score distribution that suddenly diverges pauses the model automatically
    lc.resume(MODEL, "carol")
    lifecycle_file = config_path("lifecycle")
    lifecycle_file.write_text(
        lifecycle_file.read_text().replace("min_windows: 1000", "min_windows: 50")
    )
    broken = store.read("device_features", HOURS[5])
    for column in [c for c in broken.columns if c.startswith("vibration_compressor_")]:
        broken[column] = broken[column] * 25 + 40
    store.write("device_features", HOURS[5], broken)
    diverged = _score(HOURS[5])
    assert diverged.success
    assert "diverged" in metadata(diverged, f"{MODEL}_scores")["held"]
    assert not store.exists(f"{MODEL}_scores", HOURS[5])
    paused = lc.audit.latest(MODEL)
    assert paused.event == ev.SCORING_PAUSED and paused.paused
    assert paused.actor == f"scoring {HOURS[5]}"
    assert np.isfinite(float(paused.reason.split("KL ")[1].split(" ")[0]))
    lc.audit.close()
