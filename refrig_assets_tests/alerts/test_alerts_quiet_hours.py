"""An hour's alerts look up the earlier alerts (the dedup) only when a window is flagged: a quiet
hour (most hours of a history) never queries the alert store for them, and a flagged hour gets
the same alerts as with the earlier alerts given up front, whatever the device shards."""

from __future__ import annotations

import pandas as pd

from refrig_assets.alerts.hourly import alerts_in_shards
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import DeviceRange

KEY = "2026-01-01-05:00"
START = pd.Timestamp("2026-01-01T05:00", tz="UTC")
END = START + pd.Timedelta(hours=1)
DEVICES = ["d1", "d2", "d3", "d4"]
REGISTRY = pd.DataFrame({"device_id": DEVICES, "site_id": "S1", "cohort": "c1"})


def scores(flagged: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Four 15-minute windows of every device; ``flagged``: (device, window) -> score."""
    rows = []
    for device in DEVICES:
        for w in range(4):
            begin = START + pd.Timedelta(minutes=15 * w)
            score = flagged.get((device, w), 0.1)
            rows.append(
                {
                    "device_id": device,
                    "window_start": begin,
                    "window_end": begin + pd.Timedelta(minutes=15),
                    "model_id": "statistical_baseline",
                    "model_version": "1",
                    "granularity": "device",
                    "anomaly_score": score,
                    "anomaly_flag": (device, w) in flagged,
                    "top_contributors": "temperature_evaporator_mean",
                    "contributor_detail": "temperature_evaporator_mean 5.0σ above baseline",
                    "confidence": 0.9,
                    "scored_at": END,
                }
            )
    return pd.DataFrame(rows)


def earlier_alert() -> pd.DataFrame:
    """An alert of d2 of the hour before with the same contributor (its repeat is suppressed)."""
    return pd.DataFrame(
        {
            "device_id": ["d2"],
            "top_contributors": ["temperature_evaporator_mean"],
            "window_start": [START - pd.Timedelta(minutes=15)],
            "alert_created_at": [START],
            "suppressed": [False],
            "source": ["batch"],
        }
    )


class Earlier:
    """The earlier alerts, counting how often they are asked for."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return earlier_alert()


SHARDS = [None, [DeviceRange(None, "d2"), DeviceRange("d2", "d4"), DeviceRange("d4", None)]]


def test_a_quiet_hour_does_not_ask_for_the_earlier_alerts(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("statistical_baseline_scores", KEY, scores({}))
    for shards in SHARDS:
        earlier = Earlier()
        hour = alerts_in_shards(store, KEY, START, END, REGISTRY, earlier, "run", shards)
        given = alerts_in_shards(store, KEY, START, END, REGISTRY, earlier_alert(), "run", shards)
        assert earlier.calls == 0
        assert hour.alerts.empty
        pd.testing.assert_frame_equal(hour.alerts, given.alerts)
        assert hour.models_present == given.models_present == ["statistical_baseline"]


def test_a_flagged_hour_asks_once_and_alerts_as_with_the_earlier_alerts_given(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("statistical_baseline_scores", KEY, scores({("d2", 0): 0.9, ("d4", 2): 0.95}))
    for shards in SHARDS:
        earlier = Earlier()
        hour = alerts_in_shards(store, KEY, START, END, REGISTRY, earlier, "run", shards)
        given = alerts_in_shards(store, KEY, START, END, REGISTRY, earlier_alert(), "run", shards)
        assert earlier.calls == 1
        assert sorted(hour.alerts["device_id"]) == ["d2", "d4"]
        assert hour.alerts.set_index("device_id")["suppressed"].to_dict() == {
            "d2": True,
            "d4": False,
        }
        pd.testing.assert_frame_equal(hour.alerts, given.alerts)
