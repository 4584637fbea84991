"""Daily monitoring on the real graph: a small fleet whose walk-in cohort drifts after training.

Parquet on disk, MLflow registry, Dagster instance and the alert database are all real; the only
intervention is shifting one feature of one cohort in the hours after the training hour.
"""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.monitoring.retraining_trigger import RetrainingLog

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
DAY = "2026-01-01"
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
MODELS = ["isolation_forest", "statistical_baseline"]


@pytest.fixture
def small_settings(small_fleet, tmp_path, monkeypatch):
    """The project's config/ with monitoring sized for 40 devices: slices of 20+ windows are
    compared, the score reference is one hour, the HTML report shows 2,000 rows."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    path = config / "monitoring.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["drift"].update(min_windows=20, report_max_rows=2000)
    raw["drift"]["kl"]["reference_hours"] = 1
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(config))
    return small_fleet


def run(defs, instance, assets, partition=None, run_config=None, job=None):
    job = job or ("hourly_pipeline" if partition else "train_detectors")
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        run_config=run_config,
        raise_on_error=True,
    )


def shift_cohort(store: ParquetStore, hours, cohort: str, feature: str) -> None:
    """Move ``feature`` of every device in ``cohort`` up by three fleet standard deviations."""
    devices = store.read("device_registry").query("cohort == @cohort")["device_id"]
    for hour in hours:
        frame = store.read("device_features", hour)
        rows = frame["device_id"].isin(devices)
        frame.loc[rows, feature] += 3 * frame[feature].std()
        store.write("device_features", hour, frame)


def test_daily_monitoring_finds_the_drifting_cohort_and_requests_retraining(small_settings):
    from refrig_assets.definitions import defs
    from refrig_assets.monitoring.summary import pipeline_run_summary

    s = small_settings
    store = ParquetStore(s.data_dir)
    feature = load_model_config(MODELS[0]).feature_columns[0]
    with dg.instance_for_test() as instance:
        run(defs, instance, None, job="refresh_device_registry")
        for hour in HOURS:
            run(defs, instance, PREP, hour)
        cohorts = store.read("device_registry")["cohort"].value_counts()
        cohort = cohorts.index[0]
        shift_cohort(store, HOURS[1:], cohort, feature)
        config = {"start_partition": HOURS[0], "end_partition": HOURS[0]}
        run(defs, instance, [f"{m}_model" for m in MODELS], run_config=_ops(config))
        for hour in HOURS:
            run(defs, instance, [f"{m}_scores" for m in MODELS] + ["device_alerts"], hour)

        result = run(defs, instance, None, DAY, job="daily_monitoring")

        # Feature drift: the shifted cohort is significant for every model using the feature.
        drift = store.read("feature_drift", DAY)
        assert load_contract("feature_drift").validate(drift).empty
        assert set(drift["model_id"]) == set(MODELS)
        assert set(drift["training_partitions"]) == {"2026-01-01T00..2026-01-01T00"}
        shifted = drift[(drift["cohort"] == cohort) & (drift["feature"] == feature)]
        assert set(shifted["band"]) == {"significant"}
        fleet = drift[(drift["scope"] == "fleet") & (drift["feature"] == feature)]
        assert (fleet["psi"].to_numpy() < shifted["psi"].to_numpy()).all()
        metadata = _metadata(result, "feature_drift")
        table = {r.data["feature"]: r.data for r in metadata["psi_by_feature"].value.records}
        assert table[feature][MODELS[0]] == pytest.approx(
            float(fleet[fleet["model_id"] == MODELS[0]]["psi"].iloc[0]), abs=5e-5
        )
        # One report per distinct input set (models with the same features share one).
        links = {k: Path(v.value) for k, v in metadata.items() if k.startswith("report: ")}
        feature_sets = {tuple(load_model_config(m).feature_columns) for m in MODELS}
        assert len(set(links.values())) == len(feature_sets)
        assert len(list((s.home / "reports" / "drift" / DAY).glob("*.html"))) == len(feature_sets)
        report = next(p for k, p in links.items() if MODELS[0] in k)
        page = report.read_text()
        assert report.is_relative_to(s.home) and feature in page
        assert f"Feature drift {DAY}" in page and f"{MODELS[0]} v1" in page
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["no_significant_feature_drift"].passed
        assert checks["feature_drift_contract"].passed

        # Score drift: hour 02 against each version's first production hour (01).
        scores = store.read("score_drift", DAY).set_index("model_id")
        assert load_contract("score_drift").validate(scores.reset_index()).empty
        assert set(scores.index) == set(MODELS) and set(scores["model_version"]) == {"1"}
        assert (scores["reference_from"] == pd.Timestamp("2026-01-01 01:00", tz="UTC")).all()
        assert (scores["windows"] > 0).all() and (scores["kl_divergence"] >= 0).all()

        # Health: three separate layers; model rows tagged with model id and version.
        health = store.read("pipeline_health", DAY)
        assert load_contract("pipeline_health").validate(health).empty
        assert set(health["layer"]) == {"infrastructure", "data", "model"}
        model_rows = health[health["layer"] == "model"].dropna(subset=["model_id"])
        assert set(zip(model_rows["model_id"], model_rows["model_version"], strict=True)) == {
            (m, "1") for m in MODELS
        }
        infra = health[health["layer"] == "infrastructure"].set_index(["subject", "metric"])
        assert infra.loc[("device_features", "executions"), "value"] == len(HOURS)
        assert infra.loc[(f"{MODELS[0]}_scores", "failures"), "value"] == 0
        assert infra.loc[(f"{MODELS[0]}_scores", "executions"), "model_version"] == "1"
        data = health[health["layer"] == "data"].set_index(["subject", "metric"])["value"]
        assert data[("device_features", "partitions")] == len(HOURS)
        assert (s.home / "reports" / "monitoring" / f"{DAY}.md").exists()

        # The retraining trigger fires for the drifted models, once.
        sensor = defs.resolve_sensor_def("retraining_trigger")
        first = sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        requested = {r.asset_selection[0].to_user_string(): r for r in first.run_requests}
        drifted = set(shifted["model_id"])
        assert set(requested) == {f"{m}_model" for m in drifted}
        request = requested[f"{MODELS[0]}_model"]
        assert request.run_key == f"retrain:{MODELS[0]}:1:drift:{DAY}"
        assert request.tags["refrig/trigger"] == "drift"
        assert (
            f"{feature} PSI" in request.tags["refrig/reason"]
            and cohort in request.tags["refrig/reason"]
        )
        log = RetrainingLog(s.alerts_db_url)
        assert set(log.list()["request_id"]) == {r.run_key for r in first.run_requests}
        again = dg.build_sensor_context(
            instance=instance, resources=defs.resources, cursor=first.cursor
        )
        assert sensor(again).run_requests == []
        fresh = dg.build_sensor_context(instance=instance, resources=defs.resources)
        assert sensor(fresh).run_requests == []  # already recorded: not requested twice
        assert len(log.list()) == len(first.run_requests)
        log.close()

        # The request runs the detector's own training asset on the drifted day.
        retrain = defs.resolve_job_def("train_detectors").execute_in_process(
            instance=instance,
            asset_selection=request.asset_selection,
            run_config=request.run_config,
            tags=request.tags,
        )
        assert retrain.success
        (event,) = retrain.get_asset_materialization_events()
        assert event.materialization.metadata["training_partitions"].value == (
            "2026-01-01T00..2026-01-01T02"
        )

    summary = pipeline_run_summary(HOURS)
    assert f"drift report {s.home}" in summary and "top drifting features" in summary
    assert f"{feature}" in summary.split("top drifting features:")[1]


def _ops(config):
    return {"ops": {f"{m}_model": {"config": config} for m in MODELS}}


def _metadata(result, asset):
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return event.materialization.metadata
