"""Reads of the alert store that find no alert (most hours of a history: no streaming alert to
reconcile, no recent alert to suppress against) give the same typed empty frame as the typing of
rows does, every time, whatever a caller did with the previous one; rows found later are read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from refrig_assets.alerts.store import AlertStore
from refrig_assets_tests.alerts.test_alert_store import make_alerts

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _store(tmp_path) -> AlertStore:
    return AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}", clock=lambda: T0)


def test_an_empty_read_is_typed_as_the_rows_would_be(tmp_path):
    store = _store(tmp_path)
    everything = [c.name for c in store.alerts.columns]
    recent = store.recent_alerts(since=T0)
    overlapping = store.overlapping(T0, T0 + timedelta(hours=1), source="streaming")
    assert overlapping.empty and recent.empty
    pd.testing.assert_frame_equal(overlapping, store._typed([], everything))
    expected = store._typed([], list(recent.columns)).sort_values(
        ["device_id", "alert_created_at"], ignore_index=True
    )
    pd.testing.assert_frame_equal(recent, expected)
    assert str(overlapping["window_start"].dtype) == "datetime64[ns, UTC]"
    assert overlapping["suppressed"].dtype == bool


def test_an_empty_read_is_not_changed_by_what_a_caller_did_with_the_last_one(tmp_path):
    store = _store(tmp_path)
    first = store.overlapping(T0, T0 + timedelta(hours=1))
    first["extra"] = 1
    first.loc[0, "alert_id"] = "written by a caller"
    again = store.overlapping(T0, T0 + timedelta(hours=1))
    assert again.empty
    assert "extra" not in again
    assert again is not first


def test_rows_stored_after_an_empty_read_are_read(tmp_path):
    store = _store(tmp_path)
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert store.overlapping(*window).empty
    alerts = make_alerts(2, window_start=T0, window_end=T0 + timedelta(minutes=15))
    store.upsert(alerts)
    found = store.overlapping(*window)
    assert sorted(found["alert_id"]) == sorted(alerts["alert_id"])
    assert str(found["window_start"].dtype) == "datetime64[ns, UTC]"
