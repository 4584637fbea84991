"""The benchmark's parts: the pandas reference agrees with the project's feature SQL, inputs are
scaled faithfully, each step is measured in its own process and the report judges the targets.
Nothing here asserts on time: measuring is ``make bench``'s job."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.contracts import load_contract, quality_flag_names
from tools.benchmarks import steps
from tools.benchmarks.measure import StepResult, run_step
from tools.benchmarks.reference import pandas_features
from tools.benchmarks.report import markdown, summary
from tools.benchmarks.run import BenchConfig, BenchRun

PARTITION = "2026-01-01-00:00"


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory):
    """A clean_readings file of 30 simulated devices with dropouts, wild values and flags."""
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    frame = FleetSimulator(
        SimulationConfig(devices=30, hours=1, seed=5, fault_fraction=0.3, sensor_fault_fraction=0.2)
    ).hour(0)
    rng = np.random.default_rng(0)
    wild = rng.random(len(frame)) < 0.01
    frame.loc[wild, "pressure_low_side"] = -5.0  # below the physical range: ignored, flagged
    dropout = frame[load_contract("sensor_readings").sensor_columns].isna().any(axis=1)
    names = quality_flag_names()
    frame["quality_mask"] = np.where(dropout, 1 << names.index("SENSOR_DROPOUT"), 0) | np.where(
        wild, 1 << names.index("OUT_OF_RANGE"), 0
    )
    frame["quality_flags"] = ""
    frame["source_file"] = "readings.parquet"
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    path = tmp_path_factory.mktemp("bench") / "clean.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_pandas_reference_computes_the_project_features(clean_file, tmp_path):
    project = steps.features_project(
        {"source": str(clean_file), "out_root": str(tmp_path / "p"), "partition": PARTITION}
    )
    assert project["contract_failures"] == 0
    expected = pd.read_parquet(project["path"])
    actual = pandas_features(pd.read_parquet(clean_file))
    assert list(actual.columns) == load_contract("device_features").column_names
    keys = ["device_id", "window_start"]
    expected = expected.sort_values(keys).reset_index(drop=True)
    actual = actual.sort_values(keys).reset_index(drop=True)
    for col in expected.columns:
        if expected[col].dtype.kind == "f":
            np.testing.assert_allclose(actual[col], expected[col], rtol=1e-9, atol=1e-9)
        elif col.startswith("window_"):
            assert (actual[col] == expected[col]).all(), col
        else:
            assert actual[col].tolist() == expected[col].tolist(), col


def test_feature_steps_report_their_agreement_with_the_project(clean_file, tmp_path):
    project = steps.features_project(
        {"source": str(clean_file), "out_root": str(tmp_path / "p"), "partition": PARTITION}
    )
    report = steps.features_pandas(
        {
            "source": str(clean_file),
            "target": str(tmp_path / "pandas.parquet"),
            "compare_with": project["path"],
        }
    )
    agreement = report["agreement"]
    assert agreement["same_shape"] and agreement["null_mismatches"] == 0
    assert agreement["max_rel_diff"] < 1e-9 and agreement["columns_differing"] == []


@pytest.mark.parametrize("devices", [10, 75])
def test_scaled_inputs_keep_the_order_and_reach_the_size(clean_file, tmp_path, devices):
    target = tmp_path / "scaled.parquet"
    report = steps.scaled_clean_readings(
        {"source": str(clean_file), "devices": devices, "target": str(target)}
    )
    scaled = pq.read_table(target).to_pandas()
    assert scaled["device_id"].nunique() == devices == report["devices"]
    assert scaled.equals(scaled.sort_values(["device_id", "ts"]))
    per_device = scaled.groupby("device_id").size()
    original = pd.read_parquet(clean_file).groupby("device_id").size()
    assert set(per_device.to_numpy()) <= set(original.to_numpy())


def test_a_step_runs_in_its_own_process_and_is_measured(clean_file, tmp_path):
    result = run_step("read_floor", "read_floor", {"source": str(clean_file)}, log_dir=tmp_path)
    assert result.ok, result.error
    assert result.report["rows"] == len(pd.read_parquet(clean_file))
    assert result.peak_rss_mb > 10 and result.process_wall_s >= result.wall_s > 0
    assert (tmp_path / "read_floor.log").exists()


def test_a_failing_step_is_reported_with_its_cause(tmp_path):
    result = run_step("read_floor", "read_floor", {"source": str(tmp_path / "missing.parquet")})
    assert not result.ok
    assert "FileNotFoundError" in result.error and "missing.parquet" in result.error


def _result(name, wall, rss=500.0, **report):
    return StepResult(name, True, wall + 5, wall, rss, {"wall_s": wall, **report})


def test_the_report_judges_each_target_from_the_measurements():
    run = BenchRun(BenchConfig())
    for r in [
        _result("read_floor", 1.0),
        _result("ingest", 1.4),
        _result("quality", 2.5),
        _result("features_project", 1.1),
        _result("features_pandas", 6.0),
        _result("features_spark", 12.0, session_start_s=9.0),
        _result("growth_10000", 0.2),
        _result("growth_300000", 5.1),
        _result("hourly_total", 4.0, rss=3000.0, import_s=2.0),
        _result("daily_scores", 50.0, rss=4500.0),
    ]:
        run.results[r.name] = r
    run.results["growth_100000"] = run.results["features_project"]
    s = summary(run)
    assert s["ratios"]["project_over_read_floor"] == 1.1
    assert s["ratios"]["quality_over_read_floor"] == 2.5
    assert s["growth"]["ratio_100k_to_300k"] == 4.636
    verdicts = {name: t["met"] for name, t in s["targets"].items()}
    assert verdicts == {
        "ingest_vs_read_floor": True,
        "quality_vs_read_floor": False,
        "hourly_total_vs_read_floor": True,
        "hourly_total_rss_mb": True,
        "feature_speedup_vs_spark": False,
        "feature_speedup_vs_pandas": True,
        "feature_vs_read_floor": True,
        "daily_scores_wall_s": True,
        "daily_scores_rss_mb": False,
        "growth_100k_to_300k": False,
    }
    table = markdown(run)
    assert "| hourly_total |" in table and "| growth_300000 |" in table
    assert "+ 9.0 s session start" in table


def test_missing_measurements_are_reported_as_not_measured():
    run = BenchRun(BenchConfig())
    run.results["read_floor"] = _result("read_floor", 1.0)
    failed = StepResult("features_project", False, 3.0, 1.0, 100.0, {}, "exit code 1: Boom")
    run.results["features_project"] = failed
    s = summary(run)
    assert s["targets"]["feature_vs_read_floor"]["met"] is None
    assert "FAILED: exit code 1: Boom" in markdown(run)


def test_only_the_daily_steps_run_on_the_home_of_an_earlier_run(tmp_path):
    from tools.benchmarks.__main__ import parse_args
    from tools.benchmarks.run import run_benchmark

    config = parse_args(["--only", "daily_scores", "--out", str(tmp_path)])
    assert config.only == "daily_scores"
    with pytest.raises(FileNotFoundError, match="earlier full run"):
        run_benchmark(config, log=lambda *_: None)  # no earlier run: nothing to measure on
    run = BenchRun(config)
    for r in [
        _result("daily_scores", 50.0, rss=3000.0),
        _result("daily_scores_autoencoder", 30.0, rss=2500.0),
    ]:
        run.results[r.name] = r
    assert summary(run)["targets"]["daily_scores_rss_mb"]["met"] is True
    assert "| daily_scores_autoencoder | autoencoder_scores alone" in markdown(run)


def test_dagster_runs_are_measured_on_the_instance_refrig_pipeline_run_uses(tmp_path, monkeypatch):
    """The bench's Dagster runs write their events as ``refrig pipeline run`` does: through the
    home's instance with the batched SQLite event log, over the same files."""
    from refrig_assets.defs.shared.event_log import BatchedSqliteEventLogStorage

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "50")
    instance = steps.pipeline_instance()
    try:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert instance.root_directory == str(tmp_path)
    finally:
        instance.dispose()


def test_a_step_counts_the_threads_of_its_process_that_want_a_core():
    """``busy_threads`` counts the process's threads running or waiting for a core, the one
    that counts not included: none while the others sleep, at least one while a thread hashes
    outside the GIL."""
    import hashlib
    import threading

    assert min(steps.StepResources._runnable() for _ in range(20)) == 0
    stop = threading.Event()
    block = bytes(1 << 22)

    def hash_until_stopped() -> None:
        while not stop.is_set():
            hashlib.sha256(block).digest()  # releases the GIL for large inputs

    worker = threading.Thread(target=hash_until_stopped)
    worker.start()
    try:
        assert max(steps.StepResources._runnable() for _ in range(200)) >= 1
    finally:
        stop.set()
        worker.join()
