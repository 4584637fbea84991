"""The ``refrig`` resource: handles created on first use, scoring libraries warmed in the
background while ingestion works."""

import subprocess
import sys

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
