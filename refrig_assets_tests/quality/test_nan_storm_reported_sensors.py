"""A NaN storm is judged on the sensors the hour's readings report: a fleet without some of the
contract's sensors is not a broken export, named in REFRIG_SENSORS or not."""

import numpy as np
import pandas as pd
import pytest
from support.quality_helpers import CONTRACT, good_rows, quarantine_rows, run_hour

from refrig_assets.ingestion.landing.readers import landing_rules
from refrig_assets.quality.nan_storm import storm_files

RULE = {"max_missing_share": 0.8, "min_rows": 10}


def temperature_and_door(device: str, n: int = 12) -> pd.DataFrame:
    """A temperature-and-door device: its files hold only those measurements."""
    return good_rows(n, device=device)[["device_id", "ts", "temperature_evaporator", "door_open"]]


def test_a_temperature_and_door_fleet_is_clean_without_naming_its_sensors(tmp_path, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    landing = tmp_path / "landing"
    landing.mkdir()
    temperature_and_door("dev-1").to_parquet(landing / "a.parquet")
    temperature_and_door("dev-2").to_csv(landing / "b.csv", index=False)

    clean, result = run_hour(landing)

    assert len(clean) == 24
    assert result.nan_storm_files == {}
    assert "nan_storm" not in {row[3] for row in quarantine_rows(result)}


def test_a_file_missing_what_the_other_files_report_is_still_a_storm(tmp_path, monkeypatch):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    landing = tmp_path / "landing"
    landing.mkdir()
    temperature_and_door("dev-1").to_parquet(landing / "a.parquet")
    broken = temperature_and_door("dev-2")
    broken["temperature_evaporator"] = np.nan
    broken.to_parquet(landing / "broken.parquet")

    clean, result = run_hour(landing)

    assert clean["device_id"].unique().tolist() == ["dev-1"]
    assert result.nan_storm_files == {"broken.parquet": 1.0}


@pytest.mark.parametrize(
    ("counts", "storms"),
    [
        # b reports nothing of what a reports: 2 of 2 reported sensors missing in b
        ({"a": (10, [0, 0, 10]), "b": (10, [10, 10, 10])}, {"b": 1.0}),
        # nobody reports the third sensor: judged on the first two only
        ({"a": (10, [0, 9, 10]), "b": (10, [1, 0, 10])}, {}),
        # no sensor reported at all: every sensor counts
        ({"a": (10, [10, 10, 10])}, {"a": 1.0}),
        # too few rows to judge
        ({"a": (9, [0, 0, 0]), "b": (9, [9, 9, 9])}, {}),
    ],
)
def test_storm_files_count_the_sensors_some_file_reports(counts, storms):
    assert storm_files(counts, ["s1", "s2", "s3"], RULE) == storms


def test_the_judgement_reads_the_contracts_rule():
    assert set(landing_rules(CONTRACT)["nan_storm"]) == set(RULE)
