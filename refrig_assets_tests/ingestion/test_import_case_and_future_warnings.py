"""`refrig import` said nothing of two things the pipeline then does in silence: device ids
that differ only in case (`Dev-1`, `dev-1`) are two devices, one of them unregistered; readings
stamped far ahead (a wrong time format or zone, a clock set to 2099) are quarantined as
implausible_timestamp. It names both."""

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.ingestion.mapping import case_variants
from refrig_assets_tests.support.import_mappings import TEMPERATURE_MAPPING


def test_case_variants_groups_ids_equal_but_for_case():
    ids = pd.Series(["Dev-1", "dev-2", "dev-1", "DEV-1", None, "dev-2", "x"])
    assert case_variants(ids) == [["DEV-1", "Dev-1", "dev-1"]]
    assert case_variants(pd.Series(["a", "b"])) == []


def test_the_import_names_case_variants_and_readings_far_ahead(refrig_home, tmp_path):
    (tmp_path / "m.yaml").write_text(TEMPERATURE_MAPPING)
    (tmp_path / "x.csv").write_text(
        "device,ts,temp\n"
        "Dev-1,2026-01-01T00:00:00Z,-18\n"
        "dev-1,2026-01-01T00:01:00Z,-18\n"
        "dev-2,2099-01-01T00:00:00Z,-18\n"
    )
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "x.csv"), "--mapping", str(tmp_path / "m.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "device ids Dev-1, dev-1 differ only in case" in result.output
    assert "readings up to 2099-01-01 00:00 UTC are more than 24 h ahead of now" in result.output


def test_an_ordinary_import_warns_of_neither(refrig_home, tmp_path):
    (tmp_path / "m.yaml").write_text(TEMPERATURE_MAPPING)
    (tmp_path / "x.csv").write_text(
        "device,ts,temp\ndev-1,2026-01-01T00:00:00Z,-18\ndev-2,2026-01-01T00:01:00Z,-18\n"
    )
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "x.csv"), "--mapping", str(tmp_path / "m.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "differ only in case" not in result.output
    assert "ahead of now" not in result.output
