"""One-minute windows (1 Hz fleets): in a minute the compressor either ran or did not, so the
duty cycle is 0 or 1 in most windows and its median absolute deviation is 0. A spread taken
from the MAD alone made every other value sit at the clip as if it were a fault, the
calibration's tail started at the clip and no score could pass 0.22; the detectors then flagged
nothing at all. The spread now never falls below half the mean absolute deviation's."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.detectors.normalise import CLIP, robust_scale
from tools.benchmarks.scoring import START, synthetic_features

FAULTY = ["dev-000004", "dev-000017"]
FAULT_FROM = pd.Timestamp(START) + pd.Timedelta(hours=4)
SHIFTED = "pressure_low_side_running_mean"


@pytest.fixture(scope="module")
def minute_windows() -> pd.DataFrame:
    frame = synthetic_features(devices=30, hours=6, seed=5, window_minutes=1)
    rng = np.random.default_rng(5)
    running = rng.random(len(frame)) < 0.55
    frame["duty_cycle"] = running.astype(float)
    conditioned = [c for c in frame.columns if "_running_" in c]
    frame.loc[~running, conditioned] = np.nan  # no running readings in an idle minute
    fault = frame["device_id"].isin(FAULTY) & (frame["window_start"] >= FAULT_FROM)
    frame.loc[fault, SHIFTED] *= 0.65
    return frame


def test_a_mostly_repeated_value_still_has_a_spread():
    values = np.r_[np.zeros(60), np.ones(20), -np.ones(20)][:, None]  # MAD 0
    assert robust_scale(values)[0] == pytest.approx(0.5 * 0.4 * np.sqrt(np.pi / 2))


@pytest.mark.parametrize("model_id", ["statistical_baseline", "pca_reconstruction"])
def test_one_minute_windows_flag_a_suction_pressure_loss_and_healthy_minutes_rarely(
    model_id, minute_windows
):
    train = minute_windows[
        minute_windows["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=3)
    ]
    detector = build_detector(load_model_config(model_id)).fit(train)
    assert detector.calibrator.threshold < CLIP  # the training tail is not the clip
    scores = detector.score(minute_windows)
    late = scores[scores["window_start"] >= FAULT_FROM + pd.Timedelta(minutes=30)]
    faulty = late[late["device_id"].isin(FAULTY)]
    assert set(faulty.loc[faulty["anomaly_flag"], "device_id"]) == set(FAULTY)
    # Calibrated: healthy windows flag about as rarely as the threshold says (0.8: far below
    # one in a thousand), not in every idle minute.
    assert scores.loc[~scores["device_id"].isin(FAULTY), "anomaly_flag"].mean() <= 0.001
