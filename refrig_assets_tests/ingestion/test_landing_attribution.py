"""A file rejected as a whole belongs to the hour it names (its name, when it carries an hour,
else its modification time), whichever hour is materialized first, and is reported there."""

import os
from datetime import timedelta

import dagster as dg
import pytest
from support.landing_world import H0, H1, LandingWorld
from support.quality_helpers import HOUR, good_rows, quarantine_rows, run_hour

from refrig_assets.quality.report import quality_report

pytestmark = pytest.mark.fault_injection

K1 = "2026-01-01-01:00"


def run_both_hours(landing, first=K1):
    """Hours 00 and 01 of ``landing``, ``first`` materialized first."""
    order = [(first == K1), (first != K1)]
    results = {}
    for is_h1 in order:
        key, start = (K1, HOUR + timedelta(hours=1)) if is_h1 else ("2026-01-01-00:00", HOUR)
        results[key] = run_hour(landing, key=key, start=start)[1]
    return results["2026-01-01-00:00"], results[K1]


def test_a_rejected_file_is_reported_in_the_hour_its_name_carries(tmp_path):
    for first in ("2026-01-01-00:00", K1):
        landing = tmp_path / first.replace(":", "") / "landing"
        landing.mkdir(parents=True)
        good_rows(3).to_parquet(landing / "readings_20260101T00.parquet")
        good_rows(3, start_minute=60).drop(columns=["device_id"]).to_parquet(
            landing / "readings_20260101T01.parquet"
        )
        h0, h1 = run_both_hours(landing, first)
        assert quarantine_rows(h0) == [], first
        assert quarantine_rows(h1) == [
            ["readings_20260101T01.parquet", -1, "device_id", "missing_column", None]
        ]
        assert [r.source_file for r in h1.rejected_files] == ["readings_20260101T01.parquet"]


def test_a_rejected_file_without_an_hour_in_its_name_goes_to_its_modification_hour(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good_rows(3).to_parquet(landing / "a.parquet")
    broken = landing / "broken.csv"
    broken.write_text("device_id;ts\ndev-1;2026-01-01T00:00:00Z\n")
    arrived = (HOUR + timedelta(hours=1, minutes=10)).timestamp()
    os.utime(broken, (arrived, arrived))
    h0, h1 = run_both_hours(landing, first="2026-01-01-00:00")
    assert quarantine_rows(h0) == []
    assert quarantine_rows(h1) == [["broken.csv", -1, None, "wrong_delimiter", None]]


def test_a_file_without_any_usable_timestamp_has_its_rows_in_the_hour_it_names(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(3, start_minute=60).astype({"ts": object})
    df["ts"] = "yesterday"
    df.to_csv(landing / "readings_2026-01-01T01.csv", index=False)
    h0, h1 = run_both_hours(landing, first="2026-01-01-00:00")
    assert h0.rows_read == 0
    assert [r[3] for r in quarantine_rows(h1)] == ["unparsable_value"] * 3
    assert h1.rows_read == h1.rows_quarantined == 3


def test_the_quality_report_of_the_hour_a_rejected_file_names_lists_it(refrig_home):
    world = LandingWorld()
    good_rows(3).to_parquet(world.landing / "readings_20260101T00.parquet")
    (world.landing / "readings_20260101T01.csv").write_text("device_id,ts\n")
    with dg.instance_for_test() as instance:
        world.run_hour(instance, H0)
        world.run_hour(instance, H1)
    h0, h1 = quality_report(world.store, H0), quality_report(world.store, H1)
    assert h0["quarantined_by_file"] == [] and h0["rejected_files"] == []
    assert h1["rejected_files"] == ["readings_20260101T01.csv"]
    assert h1["quarantined_by_file"] == [
        {"source_file": "readings_20260101T01.csv", "rule": "missing_column", "entries": 1}
    ]
