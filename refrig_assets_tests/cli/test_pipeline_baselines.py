"""``refrig pipeline run --baseline-first-hours H`` trains every detector on per-device
baselines: each device its own first H hours of clean windows, so a device that starts
reporting later gets a later period; ``--normal-periods FILE`` takes the periods a file marks
normal."""

from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.cli.runner import training_op_config

pytestmark = pytest.mark.fault_injection

START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = pd.Timestamp(START)


def test_each_option_goes_into_the_training_config():
    keys = ["2026-01-01-00:00", "2026-01-01-01:00"]
    assert training_op_config(keys) == {
        "start_partition": keys[0],
        "end_partition": keys[-1],
    }
    assert training_op_config(keys, 0.1, "/data/normal.csv") == {
        "start_partition": keys[0],
        "end_partition": keys[-1],
        "baseline_first_hours": 0.1,
        "normal_periods_file": "/data/normal.csv",
    }


def test_a_device_that_starts_later_gets_its_own_first_hours(refrig_home):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(devices=2, hours=3, start=START, seed=3, fault_fraction=0.0)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    late = sorted(pd.read_csv(s.registry_path)["device_id"])[1]
    # The second device is commissioned an hour after the first: no readings before then.
    for path in s.landing_dir.rglob("*.parquet"):
        readings = pd.read_parquet(path)
        early = (readings["device_id"] == late) & (
            pd.to_datetime(readings["ts"], utc=True) < T0 + pd.Timedelta(hours=1)
        )
        if early.any():
            readings[~early].to_parquet(path, index=False)

    result = CliRunner().invoke(
        app,
        ["pipeline", "run", "--start", "2026-01-01T00:00", "--hours", "3", "--train-hours", "3"]
        + ["--baseline-first-hours", "1"],
    )
    assert result.exit_code == 0, result.output

    ledger = pd.read_parquet(s.data_dir / "device_baselines.parquet").set_index("device_id")
    first = next(d for d in ledger.index if d != late)
    assert pd.Timestamp(ledger.loc[first, "start"]) == T0
    assert pd.Timestamp(ledger.loc[first, "end"]) == T0 + pd.Timedelta(hours=1)
    assert pd.Timestamp(ledger.loc[late, "start"]) == T0 + pd.Timedelta(hours=1)
    assert pd.Timestamp(ledger.loc[late, "end"]) == T0 + pd.Timedelta(hours=2)
    assert set(ledger["source"]) == {"first_1h"}


def test_a_missing_normal_periods_file_is_refused_before_running(refrig_home, tmp_path):
    result = CliRunner().invoke(
        app, ["pipeline", "run", "--hours", "1", "--normal-periods", str(tmp_path / "none.csv")]
    )
    assert result.exit_code == 1
    assert "no such file" in result.output
