"""A history whose quiet hours (no alert, no incident open, no sensor-health or site signal)
skip the incident build gives exactly what building every hour gives: the same Parquet
partitions, alert database (alerts, incidents, evidence, audits, outbox), check results and
defrost state and baselines, with quiet hours between the faults. The same landing files are
run in two homes, once with the quiet-hour path and once with the build forced every hour,
for a fleet with every sensor and one with temperature and door only."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from refrig_assets.core.partition_range import hour_keys
from refrig_assets.core.settings import get_settings
from refrig_assets.incidents import hourly
from refrig_assets_tests.pipeline.test_backfill_ranges import assert_same, backfill

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 28
FAULT_HOURS = (12, 13)


# The fault: the door left open and the cabinet warm, and where the fleet measures them the
# compressor drawing twice its current and shaking four times as hard.
FAULT = {"temperature_evaporator": (25.0, 1.0), "current_compressor": (0.0, 2.0)}
FAULT |= {"vibration_compressor": (0.0, 4.0)}


@pytest.mark.parametrize(
    "sensors", [None, ("temperature_evaporator", "door_open")], ids=["every sensor", "temp+door"]
)
def test_quiet_hours_skip_the_build_with_the_same_results(tmp_path, monkeypatch, sensors):
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    source = tmp_path / "source"
    monkeypatch.setenv("REFRIG_HOME", str(source))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "300")
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    s = get_settings()
    # A clean fleet, then one device's cooling lost for two hours (its compressor overloaded):
    # quiet hours before the fault, the hours its incident is open, and quiet hours again once
    # it has closed.
    config = SimulationConfig(
        devices=2,
        hours=HOURS,
        start=START,
        seed=7,
        cadence_seconds=300,
        faults=False,
        operational_fault_fraction=0.0,
        power_loss_sites=0,
        sensors=sensors,
    )
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    for hour in FAULT_HOURS:
        path = s.landing_dir / "2026-01-01" / f"readings_20260101T{hour:02d}.parquet"
        readings = pd.read_parquet(path)
        lost = readings["device_id"].eq(readings["device_id"].min())
        for column, (add, times) in FAULT.items():
            if column in readings:
                readings.loc[lost, column] = readings.loc[lost, column] * times + add
        readings.loc[lost, "door_open"] = True
        readings.to_parquet(path, index=False)
    keys = hour_keys(START, HOURS)

    decided = hourly.quiet_hour
    quiet: list[bool] = []

    def watched(*args, **kwargs):
        never = decided(*args, **kwargs)
        quiet.append(never is not None)
        return never

    monkeypatch.setattr(hourly, "quiet_hour", watched)
    skipping, _ = backfill(source, tmp_path / "a", monkeypatch, keys, 14, 10)
    monkeypatch.setattr(hourly, "quiet_hour", lambda *args, **kwargs: None)
    building, _ = backfill(source, tmp_path / "b", monkeypatch, keys, 14, 10)

    assert_same(building, skipping)
    assert len(quiet) == len(keys)
    # Quiet hours between hours that build: a quiet hour before one that is not, and after one.
    pattern = "".join(".#"[not q] for q in quiet)  # . quiet, # built
    assert any(a and not b for a, b in zip(quiet, quiet[1:], strict=False)), pattern
    assert any(not a and b for a, b in zip(quiet, quiet[1:], strict=False)), pattern
    assert len(building["db incidents"]) > 0
