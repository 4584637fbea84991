"""A landing file the streaming rules skip is named once in the notice, with the reason the
landing rules gave."""

import logging

import pandas as pd

from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.settings import get_settings
from refrig_assets.simulator.writer import write_frame
from refrig_assets.streaming.tick import process_landed_files


def test_a_skipped_file_is_named_once_with_its_reason(refrig_home, caplog):
    s = get_settings()
    registry = pd.DataFrame({"device_id": ["d1"], "site_id": ["site-7"], "cohort": ["reach_in"]})
    write_frame(registry, s.registry_path)
    s.landing_dir.mkdir(parents=True, exist_ok=True)
    (s.landing_dir / "empty_20260101T03.csv").write_bytes(b"")
    store = AlertStore(s.alerts_db_url)
    try:
        with caplog.at_level(logging.WARNING, logger="refrig_assets.streaming.tick"):
            report = process_landed_files(s, None, store)
    finally:
        store.close()
    assert report.rejected == ["empty_20260101T03.csv"]
    (notice,) = [r.getMessage() for r in caplog.records if "skip" in r.getMessage()]
    assert notice.count("empty_20260101T03.csv") == 1, notice
    assert "empty" in notice.split("empty_20260101T03.csv", 1)[1]
