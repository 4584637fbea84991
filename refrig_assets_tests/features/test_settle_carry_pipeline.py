"""The device_features asset carries the running state's settle across hours the same way one
run per hour and one run over the range do: a fleet read every 5 seconds (1-minute windows)
whose defrost ends three minutes before an hour gets the same features either way, with the
next hour's first minutes of pull-down out of its running statistics."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd

from refrig_assets.cli.runner import prepare_hours
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.partition_range import hour_keys
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.shared.event_log import EVENT_BATCH_SIZE, batched

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 2
READINGS = load_contract("sensor_readings")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
DEFROST_ABOVE = READINGS.column("temperature_evaporator").extra["defrost_above"]


def landing_zone(source, monkeypatch):
    """Two devices at 5 s for two hours; the first one's defrost ends at 00:57 and its
    compressor then pulls the coil down until its first stop (01:15-01:20)."""
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    monkeypatch.setenv("REFRIG_HOME", str(source))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "5")
    s = get_settings()
    config = SimulationConfig(devices=2, hours=HOURS, start=START, seed=3, cadence_seconds=5)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    day = s.landing_dir / "2026-01-01"
    files = sorted(day.glob("readings_*.parquet"))
    assert len(files) == HOURS
    first = None
    for path in files:
        rows = pd.read_parquet(path)
        first = first or sorted(rows["device_id"].unique())[0]
        mine = rows["device_id"] == first
        t = (
            pd.to_datetime(rows.loc[mine, "ts"], utc=True) - pd.Timestamp(START)
        ).dt.total_seconds()
        running = (t >= 3420) & ((t < 4500) | (t >= 4800))  # the first stop: 01:15-01:20
        since = np.clip((t - 3420) / 60.0, 0, None)
        noise = np.random.default_rng(len(rows)).normal(0.0, 0.05, (2, int(mine.sum())))
        rows.loc[mine, "current_compressor"] = (
            np.where(running, RUNNING_ABOVE + 5.0, RUNNING_ABOVE / 4) + noise[0]
        )
        rows.loc[mine, "temperature_evaporator"] = (
            np.where(t >= 3420, -20.0 + 26.0 * 0.7**since, DEFROST_ABOVE + 1.0) + noise[1]
        )
        rows.to_parquet(path)
    return first


def features(source, home, monkeypatch, per_run: int) -> pd.DataFrame:
    """Readings -> features of the hours, ``per_run`` hours a run."""
    from refrig_assets.definitions import defs

    shutil.copytree(source, home)
    (home / "dagster").mkdir(exist_ok=True)
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    keys = hour_keys(START, HOURS)
    with dg.instance_for_test() as plain:
        if per_run > 1:
            monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        instance = batched(plain) if per_run > 1 else plain
        defs.resolve_job_def("refresh_device_registry").execute_in_process(instance=instance)
        failures = prepare_hours(defs, instance, keys, per_run, print)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    assert failures == []
    return ParquetStore(get_settings().data_dir).read_many("device_features", keys)


def test_one_run_per_hour_and_one_range_carry_the_settle_alike(tmp_path, monkeypatch):
    device = landing_zone(tmp_path / "source", monkeypatch)

    per_hour = features(tmp_path / "source", tmp_path / "a", monkeypatch, 1)
    ranged = features(tmp_path / "source", tmp_path / "b", monkeypatch, HOURS)

    pd.testing.assert_frame_equal(ranged, per_hour)
    mine = per_hour[per_hour["device_id"] == device].set_index("window_start")
    after = pd.Timestamp(START) + pd.Timedelta(hours=1)
    col = "temperature_evaporator_running_mean"
    # The windows of 01:00 up to after_defrost_seconds after the defrost's last reading
    # (00:56:55) hold no settled running reading.
    settle = load_contract("device_features").settings["running_settle"]["after_defrost_seconds"]
    last = pd.Timestamp(START) + pd.Timedelta(seconds=3415 + settle - 60)
    unsettled = mine.loc[after:last, col]
    assert len(unsettled) and unsettled.isna().all()
    assert mine.loc[after + pd.Timedelta(minutes=30), col] < -19.0
