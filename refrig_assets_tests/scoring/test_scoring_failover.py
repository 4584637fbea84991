"""A detector that fails does not stop the others, and the hour still gets its alerts; the
backtest asset reports detection quality (or says why it cannot)."""

import dagster as dg
import pytest
import yaml

from refrig_assets.core.storage import ParquetStore

HOURS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
MODELS = ["isolation_forest", "statistical_baseline"]


def run(defs, instance, job, assets=None, partition=None, run_config=None, raise_on_error=True):
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


@pytest.fixture
def trained_fleet(small_fleet):
    """The small fleet through features for three hours, both hourly detectors trained on the
    first two."""
    from refrig_assets.definitions import defs
    from refrig_assets.defs.ingestion.assets import device_registry

    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([device_registry], instance=instance, resources=defs.resources)
    for hour in HOURS:
        run(defs, instance, "hourly_pipeline", PREP, hour)
    config = {"start_partition": HOURS[0], "end_partition": HOURS[1]}
    models = [f"{m}_model" for m in MODELS]
    run(
        defs,
        instance,
        "train_detectors",
        models,
        run_config={"ops": {m: {"config": config} for m in models}},
    )
    return defs, instance, small_fleet


def pin_missing_version(tmp_path, monkeypatch, model_id: str) -> None:
    """Point the models/ settings at a copy whose ``model_id`` is pinned to a version the
    registry does not have (a bad rollback): scoring that model raises."""
    from refrig_assets.core.settings import MODELS_DIR

    d = tmp_path / "models"
    d.mkdir()
    for f in MODELS_DIR.glob("*.yaml"):
        spec = yaml.safe_load(f.read_text())
        if f.stem == model_id:
            spec["pinned_version"] = "999"
        (d / f.name).write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("REFRIG_MODELS_DIR", str(d))


def test_a_raising_detector_leaves_the_others_scores_and_alerts_follow(
    trained_fleet, tmp_path, monkeypatch
):
    from refrig_assets.defs.scoring.sensors import alerts_despite_failed_scoring

    defs, instance, settings = trained_fleet
    store = ParquetStore(settings.data_dir)
    pin_missing_version(tmp_path, monkeypatch, "isolation_forest")
    hour = HOURS[2]
    scores = [f"{m}_scores" for m in MODELS]
    result = run(
        defs, instance, "hourly_pipeline", [*scores, "device_alerts"], hour, raise_on_error=False
    )
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {"isolation_forest_scores"}
    assert store.exists("statistical_baseline_scores", hour)
    assert not store.exists("isolation_forest_scores", hour)
    assert not store.exists("device_alerts", hour)  # skipped: an upstream step failed

    context = dg.build_run_status_sensor_context(
        sensor_name="alerts_despite_failed_scoring",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    request = alerts_despite_failed_scoring(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == hour
    assert request.tags["refrig/failed_detectors"] == "isolation_forest_scores"

    alerts_run = run(
        defs, instance, "alerts_from_available_scores", partition=request.partition_key
    )
    assert alerts_run.success
    assert store.exists("device_alerts", hour)
    (mat,) = alerts_run.asset_materializations_for_node("device_alerts")
    assert mat.metadata["models_present"].value == ["statistical_baseline"]


def test_the_backtest_asset_reports_per_fault_type_and_per_detector(trained_fleet):
    defs, instance, settings = trained_fleet
    scores = [f"{m}_scores" for m in MODELS]
    for hour in HOURS:
        run(defs, instance, "hourly_pipeline", [*scores, "device_alerts"], hour)
    result = dg.materialize([defs.resolve_assets_def("detection_backtest")], instance=instance)
    (mat,) = result.asset_materializations_for_node("detection_backtest")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["evaluated"] is True
    assert meta["hours"] == "2026-01-01T00..2026-01-01T02"
    assert "| fault_type" in meta["per_fault_type"] and "recall" in meta["per_fault_type"]
    assert "statistical_baseline" in meta["per_detector"]
    assert 0.0 <= meta["recall"] <= 1.0
    assert meta["false_alerts_per_1000_device_days"] >= 0.0


def test_without_labels_the_backtest_says_so(refrig_home):
    from refrig_assets.definitions import defs

    result = dg.materialize(
        [defs.resolve_assets_def("detection_backtest")], instance=dg.DagsterInstance.ephemeral()
    )
    (mat,) = result.asset_materializations_for_node("detection_backtest")
    assert mat.metadata["evaluated"].value is False
    assert "No labels file" in mat.metadata["note"].value


def test_reading_an_hour_takes_one_hour_of_a_daily_detectors_day(tmp_path):
    import pandas as pd

    from refrig_assets.core.model_config import all_model_ids, load_model_config
    from refrig_assets.scoring.reads import read_scores_for_hour

    daily = next(m for m in all_model_ids() if load_model_config(m).schedule == "daily")
    store = ParquetStore(tmp_path)
    starts = pd.date_range("2026-01-01T00:00Z", periods=8, freq="15min")  # hours 00 and 01
    scores = pd.DataFrame(
        {
            "device_id": "d1",
            "window_start": starts,
            "window_end": starts + pd.Timedelta("15min"),
            "model_id": daily,
            "anomaly_score": 0.5,
        }
    )
    store.write(f"{daily}_scores", "2026-01-01", scores)
    hour = pd.Timestamp("2026-01-01T01:00Z")
    got = read_scores_for_hour(store, "2026-01-01-01:00", hour, hour + pd.Timedelta("1h"))
    assert got["window_start"].tolist() == starts[4:].tolist()
