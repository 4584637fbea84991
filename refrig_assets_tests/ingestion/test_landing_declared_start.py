"""A history older than the contract's earliest plausible time is kept when the partitions are
declared to start before it (``REFRIG_PARTITION_START``), and quarantined as
``implausible_timestamp`` as before when they are not."""

from datetime import UTC, datetime

from support.quality_helpers import (
    CONTRACT,
    HOUR,
    arrived_in_hour,
    good_rows,
    quarantine_rows,
    run_hour,
)

from refrig_assets.core.partition_range import ENV_START
from refrig_assets.ingestion.landing.readers import plausible_timestamps

OLD_HOUR = datetime(2013, 6, 1, tzinfo=UTC)
OLD_KEY = "2013-06-01-00:00"


def _old_history(tmp_path, clock_reset: bool = False):
    """Three readings of 2013-06-01 00:00-00:02 in one landing file delivered in 2026's first
    hour (a file without any plausible reading belongs to the hour it arrived in)."""
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = good_rows(3)
    rows["ts"] = rows["ts"] - (HOUR - OLD_HOUR)
    if clock_reset:  # the last reading stamped by a clock reset to 2000
        rows.loc[2, "ts"] = datetime(2000, 1, 1, tzinfo=UTC)
    rows.to_parquet(landing / "history_2013.parquet")
    arrived_in_hour(landing / "history_2013.parquet")
    return landing


def test_a_reading_inside_the_declared_partitions_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_START, "2013-01-01-00:00")
    clean, result = run_hour(_old_history(tmp_path), key=OLD_KEY, start=OLD_HOUR)
    assert len(clean) == 3
    assert quarantine_rows(result) == []


def test_without_a_declared_start_an_older_reading_is_quarantined(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_START, raising=False)
    clean, result = run_hour(_old_history(tmp_path))
    assert len(clean) == 0
    assert [r[3] for r in quarantine_rows(result)] == ["implausible_timestamp"] * 3


def test_a_file_scanned_before_the_start_was_declared_is_scanned_again(tmp_path, monkeypatch):
    landing = _old_history(tmp_path)
    index = tmp_path / "index.json"
    monkeypatch.delenv(ENV_START, raising=False)
    _, before = run_hour(landing, index_path=index)
    assert [r[3] for r in quarantine_rows(before)] == ["implausible_timestamp"] * 3
    monkeypatch.setenv(ENV_START, "2013-01-01-00:00")
    clean, result = run_hour(landing, key=OLD_KEY, start=OLD_HOUR, index_path=index)
    assert len(clean) == 3
    assert quarantine_rows(result) == []


def test_a_declared_start_after_the_contracts_earliest_changes_nothing(monkeypatch):
    monkeypatch.delenv(ENV_START, raising=False)
    contract_value = plausible_timestamps(CONTRACT)
    monkeypatch.setenv(ENV_START, "2030-01-01-00:00")
    assert plausible_timestamps(CONTRACT) == contract_value
    monkeypatch.setenv(ENV_START, "2013-01-01-00:00")
    assert plausible_timestamps(CONTRACT) == ("2013-01-01T00:00:00+00:00", contract_value[1])


def test_a_reading_before_the_declared_start_is_quarantined_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_START, "2013-01-01-00:00")
    clean, result = run_hour(_old_history(tmp_path, clock_reset=True), key=OLD_KEY, start=OLD_HOUR)
    assert len(clean) == 2
    assert [r[3] for r in quarantine_rows(result)] == ["implausible_timestamp"]
    message = result.quarantine["message"].iloc[0]
    assert "not before 2013-01-01T00:00:00+00:00" in message and ENV_START in message
