"""PCA reconstruction and devices without a baseline of their own (too few training windows:
they are centred on their cohort and measured in the spread between its devices).

Inside one device a shared load moves the evaporator and the suction pressure together; between
devices the differences run elsewhere: a condenser installed somewhere warmer runs its head
pressure and compressor current up with it. A healthy new device therefore sits where devices
differ from one another, a direction the devices' own movements never take: it must be judged
by how devices differ, not by how one device moves, while a new device with a leak still flags.
"""

import copy

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import Detector, build_detector

MODEL = "pca_reconstruction"
START = pd.Timestamp("2026-01-01T00:00Z")
WINDOW = pd.Timedelta(minutes=15)
TRAIN_HOURS, HOURS = 2, 6
DEVICES, NEW = 60, 8
LEAKING = f"dev-{DEVICES + NEW:03d}"
# Each feature: (level, loading on the device's load, loading on its installation, noise);
# log-scale features in logs.
PHYSICS = {
    "temperature_evaporator_running_mean": (-20.0, 1.5, 0.0, 0.15),
    "pressure_low_side_running_mean": (np.log(150.0), 0.08, 0.0, 0.008),
    "temperature_condenser_running_mean": (40.0, 0.2, 2.0, 0.2),
    "pressure_high_side_running_mean": (np.log(1200.0), 0.006, 0.06, 0.006),
    "current_compressor_running_mean": (np.log(8.0), 0.005, 0.04, 0.005),
    "vibration_compressor_running_mean": (np.log(3.0), 0.0, 0.0, 0.02),
}
LOGGED = {c for c in PHYSICS if not c.startswith("temperature")}


def device_windows(d: int, first_hour: int, leak: bool = False) -> pd.DataFrame:
    """Device ``d``'s windows from ``first_hour`` to ``HOURS``: its installation drawn once
    (the same device in every call), its load wandering; ``leak``: suction pressure 0.25 lower
    in logs (a fifth below)."""
    rng = np.random.default_rng([d, 1])
    installation = rng.normal()
    n = (HOURS - first_hour) * 4
    load = np.zeros(n)
    for i in range(1, n):
        load[i] = 0.5 * load[i - 1] + 0.87 * rng.normal()
    starts = START + pd.Timedelta(hours=first_hour) + WINDOW * np.arange(n)
    frame = pd.DataFrame(
        {
            "device_id": f"dev-{d:03d}",
            "cohort": "walk_in",
            "window_start": starts,
            "window_end": starts + WINDOW,
            "sensor_completeness": 1.0,
            "quality_mask": 0,
            "duty_cycle": np.clip(0.55 + 0.02 * rng.normal(size=n), 0, 1),
            "ambient_temperature_mean": 20 + 0.1 * rng.normal(size=n),
        }
    )
    for column, (level, by_load, by_installation, noise) in PHYSICS.items():
        value = level + by_installation * installation + by_load * load + noise * rng.normal(size=n)
        if leak and column == "pressure_low_side_running_mean":
            value = value - 0.25
        frame[column] = np.exp(value) if column in LOGGED else value
    return frame


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    """``DEVICES`` devices from the start, ``NEW`` healthy ones installed after training and
    one more with a leak."""
    frames = [device_windows(d, 0) for d in range(DEVICES)]
    frames += [device_windows(d, TRAIN_HOURS) for d in range(DEVICES, DEVICES + NEW)]
    frames.append(device_windows(DEVICES + NEW, TRAIN_HOURS, leak=True))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def trained(fleet) -> Detector:
    train = fleet[fleet["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    return build_detector(load_model_config(MODEL)).fit(train)


def test_healthy_devices_without_a_baseline_raise_no_flag(fleet, trained):
    scores = trained.score(fleet, since=START + pd.Timedelta(hours=TRAIN_HOURS))
    new = scores["device_id"].str[4:].astype(int).between(DEVICES, DEVICES + NEW - 1)
    assert new.sum() == NEW * (HOURS - TRAIN_HOURS) * 4
    assert not scores.loc[new, "anomaly_flag"].any(), scores[new].nlargest(5, "anomaly_score")
    assert not scores.loc[scores["device_id"] < f"dev-{DEVICES:03d}", "anomaly_flag"].any()


def test_a_device_without_a_baseline_that_leaks_is_flagged(fleet, trained):
    scores = trained.score(fleet, since=START + pd.Timedelta(hours=TRAIN_HOURS))
    leaking = scores[scores["device_id"] == LEAKING]
    assert leaking["anomaly_flag"].mean() >= 0.5
    flagged = leaking.loc[leaking["anomaly_flag"], "top_contributors"]
    assert flagged.str.startswith("pressure_low_side").mean() >= 0.5


def test_a_model_saved_before_the_new_device_subspaces_scores_every_row_by_one(fleet, trained):
    saved_before = copy.deepcopy(trained)
    del saved_before.new_subspaces
    raw, shares, _ = saved_before.raw_scores(fleet)
    space = saved_before.subspaces["walk_in"]
    expected_raw, expected_shares = space.evaluate(saved_before._inputs(fleet))
    np.testing.assert_array_equal(raw, expected_raw)
    np.testing.assert_array_equal(shares, expected_shares)
    # Devices with a baseline of their own score the same either way.
    known = trained.residuals.baseline.known(fleet)
    assert known.sum() == DEVICES * HOURS * 4
    np.testing.assert_array_equal(trained.raw_scores(fleet)[0][known], raw[known])
    assert not np.array_equal(trained.raw_scores(fleet)[0][~known], raw[~known])


def test_rows_of_devices_without_a_baseline_are_their_as_new_residuals(fleet, trained):
    # What the new-device subspaces were fitted on is what such a device's rows are scored as.
    residuals = trained.residuals
    new = ~residuals.baseline.known(fleet)
    assert new.sum() == (NEW + 1) * (HOURS - TRAIN_HOURS) * 4
    np.testing.assert_array_equal(
        residuals.residuals(fleet)[new], residuals.residuals(fleet, as_new=True)[new]
    )
