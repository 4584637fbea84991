"""`refrig maintenance add --device <typo>` was declared without a word: the operator believes
the machine is in maintenance while nothing of it is suppressed. The window is still declared (a
device may be commissioned before it first reports), with a warning naming the unknown id."""

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.storage import ParquetStore

WINDOW = ["--start", "2026-12-07T05:00", "--end", "2026-12-07T18:00", "--reason", "valve job"]


def _add(*target: str):
    result = CliRunner().invoke(app, ["maintenance", "add", *target, *WINDOW, "--by", "ana"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_device_or_site_the_registry_does_not_know_is_declared_with_a_warning(refrig_home):
    assert "warning" not in _add("--device", "pump-9")  # no registry read yet: nothing to say
    ParquetStore(refrig_home / "data").write(
        "device_registry",
        None,
        pd.DataFrame({"device_id": ["pump-1"], "site_id": ["store-1"], "cohort": ["c"]}),
    )

    typo = _add("--device", "pmup-1")
    assert "Declared maintenance window" in typo
    assert "warning: device_id 'pmup-1' is not in the device registry" in typo
    assert "warning" not in _add("--device", "pump-1")
    assert "warning: site_id 'store-2'" in _add("--site", "store-2")
    assert "warning" not in _add("--site", "store-1")
