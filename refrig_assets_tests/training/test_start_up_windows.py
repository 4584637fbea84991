"""A device's start-up never trains a model.

The data of a fleet begins when its devices (or their loggers) are switched on: the first
window holds a condenser still near room temperature and a first run from rest. Trained on a
night, those windows also sit at the warm end of the night's falling ambient, so they bend the
slope the detectors learn within devices towards nothing; by the afternoon the warmer room then
looks like a fault on the condensing side of every healthy device. Without its start-up, each
device trains on its normal, and the afternoon flags nothing.
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.defs.training.assets import running_before
from refrig_assets.detectors.base import build_detector
from refrig_assets.training.baselines import start_up_ends, start_ups_left_out, without_start_up

START = pd.Timestamp("2026-01-01T00:00Z")
WINDOW = pd.Timedelta(minutes=15)
TRAIN_HOURS, HOURS = 4, 12
SITES = np.array([15.0, 17.0, 19.0, 21.0, 23.0, 25.0])  # each site's night-time ambient
# Each feature: (level, slope per °C of ambient, noise, start-up offset); logs for the logged.
PHYSICS = {
    "temperature_evaporator_running_mean": (-20.0, 0.0, 0.3, 0.5),
    "temperature_condenser_running_mean": (10.0, 1.0, 0.5, -1.7),
    "pressure_low_side_running_mean": (np.log(150.0), 0.0, 0.01, 0.0),
    "pressure_high_side_running_mean": (np.log(900.0), 0.025, 0.012, -0.06),
    "current_compressor_running_mean": (np.log(5.0), 0.012, 0.006, -0.02),
    "vibration_compressor_running_mean": (np.log(3.0), 0.0, 0.02, 0.0),
}
LOGGED = {c for c in PHYSICS if not c.startswith("temperature")}


def fleet(devices: int = 36) -> pd.DataFrame:
    """Feature windows of healthy devices at six sites: the night's ambient falls 1 °C over the
    training hours, then the day warms it by 7 °C; each device's first window is its start-up."""
    rng = np.random.default_rng(3)
    n = HOURS * 4
    starts = START + WINDOW * np.arange(n)
    hours = np.arange(n) / 4
    day = np.where(
        hours < TRAIN_HOURS, -hours / TRAIN_HOURS, -1 + 8 * (hours - TRAIN_HOURS) / HOURS
    )
    first = (np.arange(n) == 0).astype(float)
    rows = []
    for d in range(devices):
        ambient = SITES[d % len(SITES)] + day + 0.05 * rng.normal(size=n)
        frame = pd.DataFrame(
            {
                "device_id": f"dev-{d:03d}",
                "cohort": "display_case",
                "window_start": starts,
                "window_end": starts + WINDOW,
                "sensor_completeness": 1.0,
                "quality_mask": 0,
                "duty_cycle": np.clip(0.5 + 0.03 * rng.normal(size=n), 0, 1),
                "ambient_temperature_mean": ambient,
            }
        )
        for k, (column, (level, slope, noise, start_up)) in enumerate(PHYSICS.items()):
            offset = 3 * noise * np.random.default_rng([d, k]).normal()
            value = level + offset + slope * ambient + noise * rng.normal(size=n)
            value = value + start_up * first
            frame[column] = np.exp(value) if column in LOGGED else value
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def afternoon_flags(model_id: str, train: pd.DataFrame, frame: pd.DataFrame) -> int:
    detector = build_detector(load_model_config(model_id)).fit(train)
    scores = detector.score(frame, since=START + pd.Timedelta(hours=TRAIN_HOURS))
    assert len(scores) > 0
    return int(scores["anomaly_flag"].sum())


@pytest.mark.parametrize("model_id", ["statistical_baseline", "pca_reconstruction"])
def test_a_warm_afternoon_flags_no_device_trained_without_its_start_up(model_id):
    frame = fleet()
    night = frame[frame["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    minutes = float(load_model_config(model_id).setting("training.start_up_minutes"))
    train = without_start_up(night, start_up_ends(night, minutes))
    assert len(train) == len(night) - frame["device_id"].nunique()  # one window each
    assert afternoon_flags(model_id, train, frame) == 0


def test_trained_with_the_start_ups_the_afternoon_flags_healthy_devices():
    """The failure the start-up rule prevents: the same night with its start-ups in it."""
    frame = fleet()
    night = frame[frame["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    assert afternoon_flags("pca_reconstruction", night, frame) > 0


def windows(device: str, first: int, last: int) -> pd.DataFrame:
    """15-minute windows of one device from window ``first`` to ``last`` (exclusive)."""
    starts = [START + WINDOW * i for i in range(first, last)]
    return pd.DataFrame({"device_id": device, "window_start": starts})


def test_only_the_start_up_minutes_of_each_device_are_left_out():
    features = pd.concat(
        [windows("a", 0, 8), windows("b", 4, 8), windows("c", 0, 8)], ignore_index=True
    )
    ends = start_up_ends(features, 30, running_before={"c"})
    kept = without_start_up(features, ends)
    assert kept.groupby("device_id")["window_start"].min().to_dict() == {
        "a": START + 2 * WINDOW,  # its first two windows: 30 minutes
        "b": START + 6 * WINDOW,  # its own start, an hour after a's
        "c": START,  # recorded before: no start-up here
    }
    assert without_start_up(features, start_up_ends(features, 0)).equals(features)


def test_a_device_keeps_its_start_up_rather_than_lose_its_own_baseline():
    """Four windows of an hour's training: without the first, three are fewer than the four a
    baseline of its own needs, so it keeps them all; a longer history loses its start-up."""
    features = pd.concat([windows("short", 0, 4), windows("long", 0, 8)], ignore_index=True)
    kept = without_start_up(features, start_up_ends(features, 15), min_windows=4)
    assert kept.groupby("device_id").size().to_dict() == {"long": 7, "short": 4}


def test_devices_already_reporting_when_training_starts_later_ran_before():
    features = pd.concat([windows("a", 0, 8), windows("b", 4, 8)], ignore_index=True)
    store = SimpleNamespace(partitions=lambda _: ["2025-12-31T23", "2026-01-01T00"])
    refrig = SimpleNamespace(store=store)
    # Earlier hours stored: a reported in the first training hour, b joined later.
    assert running_before(refrig, ["2026-01-01T00"], features) == {"a"}
    # Training from the first stored hour: every device's history begins in it.
    assert running_before(refrig, ["2025-12-31T23"], features) == set()


def test_the_start_ups_left_out_are_those_of_devices_that_lost_windows():
    features = pd.concat([windows("short", 0, 4), windows("long", 0, 8)], ignore_index=True)
    ends = start_up_ends(features, 15)
    kept = without_start_up(features, ends, min_windows=4)
    assert start_ups_left_out(features, kept, ends).to_dict() == {"long": START + WINDOW}


def test_a_start_up_left_out_of_training_is_scored_but_never_flagged():
    """The model never learnt a device's first minutes: an odd start-up is scored as odd, but
    not paged; the same oddity later in the device's life is."""
    frame = fleet()
    night = frame[frame["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    ends = start_up_ends(night, 30)  # each device's first two windows
    detector = build_detector(load_model_config("statistical_baseline")).fit(
        without_start_up(night, ends)
    )
    odd = frame.copy()
    hot = odd["window_start"].isin(
        [START, START + WINDOW, START + 20 * WINDOW, START + 21 * WINDOW]
    )
    odd.loc[hot & (odd["device_id"] == "dev-000"), "temperature_condenser_running_mean"] += 25.0

    def flagged(scores: pd.DataFrame) -> list:
        mine = scores[(scores["device_id"] == "dev-000") & scores["anomaly_flag"]]
        return sorted(pd.to_datetime(mine["window_start"], utc=True))

    assert START + WINDOW in flagged(detector.score(odd))  # the failure without the rule
    detector.set_start_ups(ends)
    scores = detector.score(odd)
    assert flagged(scores) == [START + 21 * WINDOW]
    start_up = (scores["device_id"] == "dev-000") & (scores["window_start"] == START + WINDOW)
    assert scores.loc[start_up, "anomaly_score"].item() >= detector.config.flag_threshold
