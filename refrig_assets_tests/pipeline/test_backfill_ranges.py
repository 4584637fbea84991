"""A history backfilled in runs of several hours gives exactly what one run per hour gives:
the same clean readings, quarantine, features, scores, alerts, incidents and device status,
every hour recorded as its own partition, with an empty hour and rejected files inside the
range. The same landing files (same mtimes) are run in two homes, once per way."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from refrig_assets.cli.runner import prepare_hours, score_hours
from refrig_assets.core.partition_range import hour_keys
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.shared.event_log import EVENT_BATCH_SIZE, batched

START = datetime(2026, 1, 1, tzinfo=UTC)
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
MODELS = ["isolation_forest", "statistical_baseline"]
SCORE = [f"{m}_scores" for m in MODELS] + ["device_alerts", "device_incidents", "device_status"]
COMPARED = [
    "sensor_readings",
    "clean_readings",
    "quarantined_readings",
    "device_features",
    *SCORE,
]
# When and by which run a row was produced: the two ways differ there and only there.
PROCESSING_COLUMNS = {
    "run_id",
    "scored_at",
    "created_at",
    "updated_at",
    "computed_at",
    "generated_at",
}


def simulate(home, monkeypatch, devices: int, hours: int, cadence: int):
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    s = get_settings()
    config = SimulationConfig(
        devices=devices, hours=hours, start=START, seed=11, cadence_seconds=cadence
    )
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    return s


def backfill(source, home, monkeypatch, keys: list[str], per_run: int, train_hours: int):
    """Copy the source landing zone and registry (mtimes kept) into ``home`` and run the hours as
    ``refrig pipeline run`` does, ``per_run`` hours per Dagster run. Returns (frames, runs)."""
    from refrig_assets.definitions import defs

    shutil.copytree(source, home)
    (home / "dagster").mkdir(exist_ok=True)
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    failures: list[str] = []
    with dg.instance_for_test() as plain:
        # Runs of several hours as the runner runs them: its batched event log.
        if per_run > 1:
            monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        instance = batched(plain) if per_run > 1 else plain
        defs.resolve_job_def("refresh_device_registry").execute_in_process(instance=instance)
        failures += prepare_hours(defs, instance, keys, per_run, print)
        models = [f"{m}_model" for m in MODELS]
        span = {"start_partition": keys[0], "end_partition": keys[train_hours - 1]}
        trained = defs.resolve_job_def("train_detectors").execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(m) for m in models],
            run_config={"ops": {m: {"config": span} for m in models}},
        )
        assert trained.success
        failures += score_hours(defs, instance, keys, per_run, SCORE[:2], print)
        recorded = {a: instance.get_materialized_partitions(dg.AssetKey(a)) for a in PREP + SCORE}
        runs = len(instance.get_run_ids())
        checks = check_outcomes(instance)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    assert failures == []
    assert all(partitions == set(keys) for partitions in recorded.values()), recorded
    store = ParquetStore(get_settings().data_dir)
    frames = {}
    for dataset in COMPARED:
        frame = store.read_many(dataset, keys)
        frames[dataset] = frame.drop(columns=[c for c in frame if c in PROCESSING_COLUMNS])
    frames["check evaluations"] = checks
    return frames, runs


def check_outcomes(instance) -> pd.DataFrame:
    """Every check evaluation recorded: asset, check, hour, passed (the UI's per-hour status)."""
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    outcomes = {
        (e.asset_key.to_user_string(), e.check_name, e.partition, e.passed)
        for e in (r.event_log_entry.get_dagster_event().event_specific_data for r in records)
    }
    return pd.DataFrame(sorted(outcomes), columns=["asset", "check", "hour", "passed"])


def assert_same(one_per_hour: dict, ranged: dict):
    for dataset, expected in one_per_hour.items():
        pd.testing.assert_frame_equal(
            ranged[dataset].reset_index(drop=True),
            expected.reset_index(drop=True),
            obj=dataset,
        )


def test_twenty_devices_six_hours_with_rejected_files_in_runs_of_four_hours(tmp_path, monkeypatch):
    source = tmp_path / "source"
    s = simulate(source, monkeypatch, devices=20, hours=6, cadence=60)
    day = s.landing_dir / "2026-01-01"
    hour = pd.read_parquet(day / "readings_20260101T02.parquet")
    bad = hour.head(5).astype(str)
    bad.loc[bad.index[1], "ts"] = "not a time"
    bad.to_csv(day / "gateway_b_20260101T02.csv", index=False)  # one row quarantined
    (day / "readings_20260101T03_copy.parquet").write_bytes(b"PAR1 truncated")  # rejected file
    keys = hour_keys(START, 6)

    per_hour, per_hour_runs = backfill(source, tmp_path / "a", monkeypatch, keys, 1, 3)
    ranged, ranged_runs = backfill(source, tmp_path / "b", monkeypatch, keys, 4, 3)

    assert_same(per_hour, ranged)
    assert len(per_hour["quarantined_readings"]) >= 2  # the bad row and the rejected file
    assert len(per_hour["device_alerts"]) > 0
    # registry, training and one run per hour for readings, scores and alerts; against runs of
    # four hours for readings and scores, and alert runs that start at each hour that may alert
    assert per_hour_runs == 1 + 1 + 3 * 6
    assert ranged_runs <= 1 + 1 + 2 + 2 + 6


@pytest.mark.slow
def test_one_device_thirty_hours_at_five_minutes_with_an_empty_hour(tmp_path, monkeypatch):
    source = tmp_path / "source"
    s = simulate(source, monkeypatch, devices=1, hours=30, cadence=300)
    (s.landing_dir / "2026-01-01" / "readings_20260101T10.parquet").unlink()  # gateway outage
    keys = hour_keys(START, 30)

    per_hour, _ = backfill(source, tmp_path / "a", monkeypatch, keys, 1, 12)
    ranged, runs = backfill(source, tmp_path / "b", monkeypatch, keys, 12, 12)

    assert_same(per_hour, ranged)
    assert runs <= 1 + 1 + 3 + 3 + 30  # readings and scores: hours 0-11, 12-23, 24-29
    empty = ranged["sensor_readings"]
    assert empty[empty["ts"].dt.hour == 10].empty
    assert len(ranged["clean_readings"]) == 29 * 12
