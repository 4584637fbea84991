"""A training run that crashes is among the failed steps of ``refrig pipeline run`` (exit 1).

It was logged ``FAILED`` in the progress lines but left out of the failed steps: with older
versions still serving the scores succeed, so the command exited 0 (what cron, CI or
``make run`` read as a healthy run); here, with none, only the scoring steps were named.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from refrig_assets.cli import app

pytestmark = pytest.mark.fault_injection


def test_a_crashed_training_fails_the_command(refrig_home, monkeypatch):
    from refrig_assets.core.settings import get_settings
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    s = get_settings()
    config = SimulationConfig(devices=8, hours=2, seed=5)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory while fitting")

    monkeypatch.setattr("refrig_assets.defs.training.assets.train_detector", crash)
    start = f"{config.start:%Y-%m-%dT%H:%M}"
    ran = CliRunner().invoke(
        app, ["pipeline", "run", "--start", start, "--hours", "2", "--train-hours", "1"]
    )

    assert ran.exit_code == 1, ran.output
    assert "failed steps:" in ran.output and "_model" in ran.output.split("failed steps:")[1]
