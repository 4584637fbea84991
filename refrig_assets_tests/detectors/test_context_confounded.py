"""A few devices at one site: their offsets can line up with their ambients by chance.

Five devices of a cohort stand in rooms a degree or two apart, and what sets them apart
(installation, load) happens to follow those rooms: the between-device slope is large. Within
each device the ambient moved during training and the features did not follow it: the within
slope is precise and near zero. The two disagree far beyond their variances, so the coupling
must not take the between slope; when the site then warms beyond training, no healthy device
may be flagged for the adjustment the confounded slope would have made.
"""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.detectors.context import ContextCoupling

START = pd.Timestamp("2026-01-01T00:00Z")
WINDOW = pd.Timedelta(minutes=1)
TRAIN_HOURS, HOURS = 4, 12
ROOMS = np.array([16.3, 17.5, 17.7, 18.0, 18.4])  # each device's usual ambient, one site
# Suction pressure (logs) falls across the rooms by chance: -4 % per °C between devices.
OFFSET = -0.04 * (ROOMS - ROOMS.mean())


def site(hours: np.ndarray) -> np.ndarray:
    """The site's ambient: cools 1.5 °C over training, then warms 2.5 °C above it."""
    return np.where(hours < TRAIN_HOURS, -1.5 * hours / TRAIN_HOURS, -1.5 + 4.0 * (hours - 4) / 8)


def fleet() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = HOURS * 60
    starts = START + WINDOW * np.arange(n)
    hours = np.arange(n) / 60
    rows = []
    for d, (room, offset) in enumerate(zip(ROOMS, OFFSET, strict=True)):
        frame = pd.DataFrame(
            {
                "device_id": f"dev-{d:03d}",
                "cohort": "reach_in_cooler",
                "window_start": starts,
                "window_end": starts + WINDOW,
                "sensor_completeness": 1.0,
                "quality_mask": 0,
                "duty_cycle": np.clip(0.55 + 0.02 * rng.normal(size=n), 0, 1),
                "ambient_temperature_mean": room + site(hours) + 0.02 * rng.normal(size=n),
                "temperature_evaporator_running_mean": -20 + 0.2 * rng.normal(size=n),
                "temperature_condenser_running_mean": 30 + 0.2 * rng.normal(size=n),
                "pressure_low_side_running_mean": np.exp(
                    np.log(290.0) + offset + 0.005 * rng.normal(size=n)
                ),
                "pressure_high_side_running_mean": np.exp(
                    np.log(1200) + 0.005 * rng.normal(size=n)
                ),
                "current_compressor_running_mean": np.exp(np.log(8.0) + 0.005 * rng.normal(size=n)),
                "vibration_compressor_running_mean": np.exp(np.log(3) + 0.02 * rng.normal(size=n)),
            }
        )
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def fitted(
    device_context: np.ndarray,
    device_median: np.ndarray,
    moved: np.ndarray,
    follows: float,
    noise: float,
) -> float:
    """The cohort's slope of one feature on one context: devices at ``device_context`` with
    medians ``device_median``, each window's context ``moved`` from its device's (rows in device
    order), the feature following it with slope ``follows`` plus ``noise``."""
    rng = np.random.default_rng(7)
    devices, windows = len(device_context), len(moved) // len(device_context)
    deviation = follows * moved + noise * rng.normal(size=moved.shape)
    cohorts = np.full(devices * windows, "c", dtype=object)
    coupling = ContextCoupling().fit(
        deviation,
        moved,
        cohorts,
        device_median,
        device_context,
        cohorts[:devices],
        np.repeat(device_context, windows, axis=0) + moved,
    )
    return float(coupling.slopes["c"][0, 0])


def test_a_between_slope_the_within_slope_contradicts_is_not_trusted():
    """Within: the ambient moved 1.5 °C and the feature did not follow (slope 0, precise);
    between: five offsets that line up with the rooms (slope -0.04)."""
    rng = np.random.default_rng(2)
    medians = OFFSET[:, None] + 0.001 * rng.normal(size=(len(ROOMS), 1))
    moved = np.tile(np.linspace(0.75, -0.75, 240), len(ROOMS))[:, None]
    assert fitted(ROOMS[:, None], medians, moved, follows=0.0, noise=0.005) == pytest.approx(
        0.0, abs=0.002
    )


def test_estimates_that_agree_are_still_combined_by_their_information():
    """Forty devices 5 °C apart and a rough within slope: both near 1, between dominates."""
    rng = np.random.default_rng(4)
    rooms = 20 + 5 * rng.normal(size=(40, 1))
    medians = rooms + 0.5 * rng.normal(size=(40, 1))
    moved = 0.3 * rng.normal(size=(40 * 8, 1))
    assert fitted(rooms, medians, moved, follows=1.0, noise=0.5) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("model_id", ["statistical_baseline", "pca_reconstruction"])
def test_a_site_warming_beyond_training_flags_no_device_of_a_confounded_cohort(model_id):
    frame = fleet()
    train = frame[frame["window_start"] < START + pd.Timedelta(hours=TRAIN_HOURS)]
    detector = build_detector(load_model_config(model_id)).fit(train)
    scores = detector.score(frame, since=START + pd.Timedelta(hours=TRAIN_HOURS))
    assert len(scores) > 0
    assert not scores["anomaly_flag"].any(), scores[scores["anomaly_flag"]].head()
