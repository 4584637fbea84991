"""The ``refrig`` resource: handles created on first use, scoring libraries warmed in the
background while quality works, in runs that go on to score."""

import subprocess
import sys
from types import SimpleNamespace

import dagster as dg

from refrig_assets.defs.shared.resources import RefrigResource

PROBE = """
import sys
from refrig_assets.defs.shared import resources
resources.RefrigResource().warm_up_scoring()
resources.RefrigResource().warm_up_scoring()  # once per process
resources._warming.join()
print(sorted(m for m in ("refrig_assets.training.registry", "refrig_assets.detectors.isolation_forest",
    "refrig_assets.detectors.statistical_baseline", "torch") if m in sys.modules))
"""


def test_warming_up_imports_what_the_hourly_detectors_need_and_nothing_else(refrig_home):
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == str(
        [
            "refrig_assets.detectors.isolation_forest",
            "refrig_assets.detectors.statistical_baseline",
            "refrig_assets.training.registry",
        ]
    )


def _step_of_run(selection):
    return SimpleNamespace(run=SimpleNamespace(asset_selection=selection))


def test_only_runs_that_score_an_hour_warm_up_the_scoring_imports(refrig_home):
    refrig = RefrigResource()
    quality_only = {dg.AssetKey("clean_readings"), dg.AssetKey("quarantined_readings")}
    assert not refrig._run_scores(_step_of_run(frozenset(quality_only)))
    daily_only = quality_only | {dg.AssetKey("autoencoder_scores")}
    assert not refrig._run_scores(_step_of_run(frozenset(daily_only)))
    hourly = quality_only | {dg.AssetKey("isolation_forest_scores")}
    assert refrig._run_scores(_step_of_run(frozenset(hourly)))
    assert refrig._run_scores(_step_of_run(None))  # a whole job
