"""A compressor that stops and never restarts while its coil warms slowly (0.25 K/min, below
any rate-of-rise rule) is diagnosed ``total_cooling_loss``, standalone, once the stop has
outlasted the device's longest ordinary stop; nothing else of the healthy fleet is. Readings
through the real ingestion, quality and feature steps, the probable-cause step hour by hour
with its stored state."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.causes import HourDiagnosis

PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
START = pd.Timestamp("2026-01-01T00:00", tz="UTC")
LOST = pd.Timestamp("2026-01-01T12:00", tz="UTC")
HOURS = 15


def _lose_cooling(landing, idle_amps: float) -> None:
    """From 12:00 for two hours, dev-000000's compressor draws ``idle_amps`` and its coil warms
    by 0.25 K/min up to +15 K."""
    for path in sorted(landing.rglob("*.parquet")):
        if "T12" not in path.name and "T13" not in path.name:
            continue
        df = pd.read_parquet(path)
        mine = df["device_id"] == "dev-000000"
        minutes = (pd.to_datetime(df.loc[mine, "ts"], utc=True) - LOST).dt.total_seconds() / 60
        df.loc[mine, "temperature_evaporator"] += np.minimum(minutes * 0.25, 15.0)
        df.loc[mine, "current_compressor"] = idle_amps
        df.to_parquet(path, index=False)


@pytest.mark.parametrize("cadence", [300, 60])
def test_a_stopped_compressor_is_one_standalone_cooling_loss(refrig_home, monkeypatch, cadence):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.definitions import defs
    from refrig_assets.defs.ingestion.assets import device_registry
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", str(cadence))
    s = get_settings()
    config = SimulationConfig(
        devices=2, hours=HOURS, start=START, seed=7, faults=False, cadence_seconds=cadence
    )
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    _lose_cooling(s.landing_dir, idle_amps=0.0)
    job = defs.resolve_job_def("hourly_pipeline")
    keys = [(START + pd.Timedelta(hours=h)).strftime("%Y-%m-%d-%H:00") for h in range(HOURS)]
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [device_registry], instance=instance, resources=defs.resources
        ).success
        for key in keys:
            job.execute_in_process(
                instance=instance,
                partition_key=key,
                asset_selection=[dg.AssetKey(a) for a in PREP],
                raise_on_error=True,
            )
    store = ParquetStore(s.data_dir)
    found = []
    for key in keys:
        diagnosis = HourDiagnosis(s, key)
        features = store.read("device_features", key)
        found.append(diagnosis(features[diagnosis.columns(list(features.columns))]))
        diagnosis.finish()
    windows = pd.concat(found, ignore_index=True)
    stopped = windows[windows["standalone"] & windows["cause"].eq("total_cooling_loss")]
    # Only the lost device, only in the two hours, and in every window from the first on.
    assert set(stopped["device_id"]) == {"dev-000000"}
    starts = pd.to_datetime(stopped["window_start"], utc=True)
    assert starts.min() >= LOST and starts.max() < LOST + pd.Timedelta(hours=2)
    lost = windows[
        windows["device_id"].eq("dev-000000")
        & (pd.to_datetime(windows["window_start"], utc=True) >= starts.min())
        & (pd.to_datetime(windows["window_start"], utc=True) < LOST + pd.Timedelta(hours=2))
    ]
    assert lost["cause"].eq("total_cooling_loss").all()
    # By an hour after the stop began (the coil +15 K): the device's longest off-cycle running
    # into its longest defrost stop (50 minutes here), half as long again.
    assert starts.min() <= LOST + pd.Timedelta(hours=1)
