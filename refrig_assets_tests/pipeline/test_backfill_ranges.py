"""A history backfilled in runs of several hours gives exactly what one run per hour gives:
the same clean readings, quarantine, features, scores, alerts, incidents and device status,
the same alert database (alerts, incidents, evidence, audits, notification outbox) and the
incidents' defrost state and baselines, every hour recorded as its own partition with its own
check results, with an empty hour and rejected files inside the range and the streaming rules'
alerts stored with the hours they meet. The same landing files (same mtimes) are run in two
homes, once per way."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from refrig_assets.cli.runner import StreamingReplay, prepare_hours, score_hours
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
        # The streaming rules' alerts enter the store with the hours they meet, as in the runner.
        stream = StreamingReplay()
        try:
            failures += score_hours(defs, instance, keys, per_run, SCORE[:2], print, stream)
        finally:
            stream.finish()
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
    frames |= alert_database(get_settings().alerts_db_url)
    for derived in ("cause_state", "cause_baselines"):  # the incidents' defrost state, baselines
        files = sorted((get_settings().data_dir / derived).glob("*.parquet"))
        frames[derived] = pd.concat(
            [pd.DataFrame({"file": []})] + [pd.read_parquet(f).assign(file=f.name) for f in files],
            ignore_index=True,
        )
    return frames, runs


# Columns of the alert database that say when a row was written (wall clock), not what it says.
WRITTEN_AT = {
    "first_seen_at",
    "updated_at",
    "at",
    "next_attempt_at",
    "delivered_at",
    "linked_at",
    "resolved_at",
    "acknowledged_at",
}


# Written by training and model promotion, not by the hourly steps compared here.
TRAINING_TABLES = {"model_lifecycle_events"}


def alert_database(url: str) -> dict[str, pd.DataFrame]:
    """Every table of the alert database (alerts, incidents, evidence, both audits, the
    notification outbox, ...) but training's, in row order, without the wall-clock columns."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            frames = {
                f"db {t}": pd.read_sql_table(t, conn).drop(
                    columns=WRITTEN_AT | PROCESSING_COLUMNS, errors="ignore"
                )
                for t in tables
                if t not in TRAINING_TABLES
            }
    finally:
        engine.dispose()
    assert {"db alerts", "db incidents", "db notification_outbox"} <= set(frames)
    return frames


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
    assert set(ranged) == set(one_per_hour)
    differences = []
    for dataset, expected in one_per_hour.items():
        try:
            pd.testing.assert_frame_equal(
                ranged[dataset].reset_index(drop=True),
                expected.reset_index(drop=True),
                obj=dataset,
            )
        except AssertionError as difference:
            differences.append(str(difference))
    assert not differences, "\n\n".join(differences)


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
    assert per_hour["db alerts"]["source"].ne("batch").any()  # streaming alerts in the range
    assert len(per_hour["db incidents"]) > 0
    # registry, training and one run per hour for readings, scores and alerts; against runs of
    # four hours for readings, scores and alerts → incidents → status
    assert per_hour_runs == 1 + 1 + 3 * 6
    assert ranged_runs == 1 + 1 + 2 + 2 + 2


@pytest.mark.slow
def test_one_device_thirty_hours_at_five_minutes_with_an_empty_hour(tmp_path, monkeypatch):
    source = tmp_path / "source"
    s = simulate(source, monkeypatch, devices=1, hours=30, cadence=300)
    (s.landing_dir / "2026-01-01" / "readings_20260101T10.parquet").unlink()  # gateway outage
    keys = hour_keys(START, 30)

    per_hour, _ = backfill(source, tmp_path / "a", monkeypatch, keys, 1, 12)
    ranged, runs = backfill(source, tmp_path / "b", monkeypatch, keys, 12, 12)

    assert_same(per_hour, ranged)
    assert runs == 1 + 1 + 3 + 3 + 3  # readings, scores, alerts: hours 0-11, 12-23, 24-29
    empty = ranged["sensor_readings"]
    assert empty[empty["ts"].dt.hour == 10].empty
    assert len(ranged["clean_readings"]) == 29 * 12
