"""The autoencoder's scoring (reconstruction in batches, errors written over the inputs)
gives the scores of the whole-array reconstruction it replaced: same raw scores and
contributions, same calibrated scores, flags and contributors."""

import numpy as np
import pandas as pd
import pytest
import torch

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors import autoencoder
from refrig_assets.detectors.autoencoder import FLEET, AutoencoderDetector, deterministic_torch
from refrig_assets.detectors.base import build_detector
from tools.benchmarks.scoring import START, synthetic_features

TRAIN_HOURS = 3


def reference_raw_scores(detector: AutoencoderDetector, frame: pd.DataFrame):
    """The raw scores and contributions as the detector computed them before: each cohort's
    rows reconstructed in one pass, errors in a new array."""
    r = detector.residuals.residuals(frame, detector.fitting)
    x, mask = np.nan_to_num(r, nan=0.0), np.isfinite(r)
    cohorts = frame["cohort"].to_numpy()
    errors = np.zeros_like(x)
    with deterministic_torch(int(detector.config.hyperparameter("random_state"))):
        for cohort in pd.unique(cohorts):
            rows = cohorts == cohort
            name = cohort if cohort in detector.networks else FLEET
            with torch.no_grad():
                recon = detector.networks[name](torch.from_numpy(x[rows])).numpy()
            errors[rows] = (x[rows] - recon) / detector.error_scale[name]
    errors = np.where(mask, errors, 0.0)
    observed = np.maximum(mask.sum(axis=1), 1)
    return np.sqrt((errors**2).sum(axis=1) / observed), errors


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    """60 devices in three cohorts over five hours; a few values missing, one device's cohort
    unknown to the trained model (scored by the fleet network)."""
    frame = synthetic_features(devices=60, hours=TRAIN_HOURS + 2, seed=7)
    rng = np.random.default_rng(7)
    column = "pressure_high_side_running_mean"
    frame.loc[rng.random(len(frame)) < 0.05, column] = np.nan
    return frame


@pytest.fixture(scope="module")
def trained(fleet) -> AutoencoderDetector:
    train = fleet[fleet["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=TRAIN_HOURS)]
    detector = build_detector(load_model_config("autoencoder"))
    assert isinstance(detector, AutoencoderDetector)
    return detector.fit(train)


def scored_rows(detector: AutoencoderDetector, fleet: pd.DataFrame) -> pd.DataFrame:
    frame = detector.prepare(fleet).reset_index(drop=True)
    frame.loc[frame["device_id"] == "dev-000005", "cohort"] = "cohort_new"
    return frame


@pytest.mark.parametrize("batch_rows", [1, 97, 1_000_000])
def test_batched_reconstruction_gives_the_whole_array_raw_scores(
    trained, fleet, batch_rows, monkeypatch
):
    monkeypatch.setattr(autoencoder, "INFERENCE_BATCH_ROWS", batch_rows)
    frame = scored_rows(trained, fleet)
    assert len(pd.unique(frame["cohort"])) == 4 and "cohort_new" not in trained.networks
    raw, errors, _ = trained.raw_scores(frame)
    ref_raw, ref_errors = reference_raw_scores(trained, frame)
    np.testing.assert_allclose(raw, ref_raw, rtol=1e-12, atol=0)
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-12, atol=1e-15)
    assert (errors[~np.isfinite(trained.residuals.residuals(frame))] == 0).all()


def test_one_cohort_is_scored_as_in_a_mixed_frame(trained, fleet):
    frame = scored_rows(trained, fleet)
    alone = frame[frame["cohort"] == "cohort_b"].reset_index(drop=True)
    raw, errors, _ = trained.raw_scores(alone)
    ref_raw, ref_errors = reference_raw_scores(trained, alone)
    np.testing.assert_allclose(raw, ref_raw, rtol=1e-12, atol=0)
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-12, atol=1e-15)


def test_scores_flags_and_contributors_match_the_whole_array_path(trained, fleet, monkeypatch):
    since = pd.Timestamp(START) + pd.Timedelta(hours=TRAIN_HOURS)
    monkeypatch.setattr(autoencoder, "INFERENCE_BATCH_ROWS", 50)
    batched = trained.score(fleet, since=since)
    batched_raw_scores = AutoencoderDetector.raw_scores
    monkeypatch.setattr(
        AutoencoderDetector,
        "raw_scores",
        lambda self, frame: (
            *reference_raw_scores(self, frame),
            batched_raw_scores(self, frame)[2],
        ),
    )
    whole = trained.score(fleet, since=since)
    assert len(batched) == len(whole) > 0
    np.testing.assert_allclose(batched["anomaly_score"], whole["anomaly_score"], rtol=1e-12)
    for column in ["device_id", "window_start", "anomaly_flag", "top_contributors"]:
        assert batched[column].tolist() == whole[column].tolist()
    assert batched["contributor_detail"].tolist() == whole["contributor_detail"].tolist()
