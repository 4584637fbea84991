"""The landing index is a cache of what the landing files hold: a torn or damaged index falls
back to its backup, then to a rescan, and never stops ingestion."""

from datetime import UTC, datetime

import pytest

from refrig_assets.ingestion.landing.index import LandingIndex

pytestmark = pytest.mark.fault_injection


def _save_hour(path, key: str) -> None:
    index = LandingIndex(path)
    index.record_hour(key, {"a.csv": "fingerprint"}, at=datetime(2026, 1, 1, tzinfo=UTC))
    index.save()


def test_a_torn_index_falls_back_to_the_index_before_the_last_save(tmp_path):
    path = tmp_path / "landing_index.json"
    _save_hour(path, "2026-01-01-00:00")
    _save_hour(path, "2026-01-01-01:00")
    path.write_text(path.read_text()[:20])  # a crash or a full disk tore the last save

    index = LandingIndex(path)
    assert index.hour_files("2026-01-01-00:00") == {"a.csv": "fingerprint"}
    assert index.hour_files("2026-01-01-01:00") is None  # lost with the torn save: re-read


def test_an_index_damaged_beyond_its_backup_starts_empty_and_can_be_saved_again(tmp_path):
    path = tmp_path / "landing_index.json"
    path.write_text("{not json")
    index = LandingIndex(path)
    assert index.entries == {} and index.hours == {}
    _save_hour(path, "2026-01-01-00:00")
    assert LandingIndex(path).hour_files("2026-01-01-00:00") == {"a.csv": "fingerprint"}
