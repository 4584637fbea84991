"""The hourly detectors' scoring arithmetic as rewritten for speed is the arithmetic it
replaced: PCA's statistics in place and its cohorts found by code, the conditional Gaussian's
blocks found by code, and scoring on one BLAS thread, all bit for bit."""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.detectors.normalise import _blocks
from refrig_assets.detectors.pca_reconstruction import FLEET, PrincipalSubspace
from tools.benchmarks.scoring import synthetic_features

HOURLY = ["isolation_forest", "statistical_baseline", "pca_reconstruction"]


def _evaluate_as_written(space: PrincipalSubspace, x: np.ndarray):
    """PrincipalSubspace.evaluate as first written (a fresh array per operation)."""
    centred = x - space.mean
    scores = centred @ space.components
    t2 = (scores**2 / space.eigenvalues).sum(axis=1)
    errors = centred - scores @ space.components.T
    q = (errors**2).sum(axis=1) if space.q_limit > 0 else np.zeros(len(x))
    raw = t2 / space.t2_limit
    whitened = (scores / space.eigenvalues) @ space.components.T
    part = centred * whitened / space.t2_limit
    if space.q_limit > 0:
        raw = raw + q / space.q_limit
        part = part + errors**2 / space.q_limit
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(raw[:, None] > 0, np.abs(part) / raw[:, None] * 100.0, 0.0)
    return raw, np.sign(centred) * share


@pytest.mark.parametrize("features", [1, 2, 6])
def test_pca_evaluate_is_the_arithmetic_as_written(features):
    rng = np.random.default_rng(features)
    train = rng.normal(size=(500, features)) @ rng.normal(size=(features, features))
    space = PrincipalSubspace.fit(train, 0.8, 0.99, 6.0)
    rows = rng.normal(scale=2.0, size=(300, features))
    rows[0] = space.mean  # a row on the mean: raw 0, shares 0
    rows[1, 0] = np.nan
    raw, shares = space.evaluate(rows)
    want_raw, want_shares = _evaluate_as_written(space, rows)
    np.testing.assert_array_equal(raw, want_raw)
    np.testing.assert_array_equal(shares, want_shares)


def test_blocks_by_code_are_the_blocks_by_name():
    rng = np.random.default_rng(3)
    groups = rng.choice(np.array(["a", "b", "unknown", np.nan], dtype=object), size=2000)
    pattern = rng.integers(0, 5, size=2000)
    found = [(g, key, rows.tolist()) for g, key, rows in _blocks(groups, pattern)]
    want = []
    for g in pd.unique(groups):
        members = np.flatnonzero(groups == g)
        for key in sorted(set(pattern[members].tolist())):
            want.append((g, key, members[pattern[members] == key].tolist()))
    assert found == want


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return synthetic_features(devices=80, hours=5, seed=9)


@pytest.mark.parametrize("model_id", HOURLY)
def test_scores_on_one_blas_thread_equal_those_on_every_thread(model_id, windows):
    detector = build_detector(load_model_config(model_id)).fit(windows)
    frame = detector.prepare(windows)
    raw, contrib, _ = detector.raw_scores(frame)
    unlimited = type(detector).raw_scores.__wrapped__  # type: ignore[attr-defined]
    with threadpool_limits(limits=2, user_api="blas"):
        raw_all, contrib_all, _ = unlimited(detector, frame)
    np.testing.assert_array_equal(raw, raw_all)
    np.testing.assert_array_equal(contrib, contrib_all)


def test_pca_cohorts_by_code_score_as_cohorts_by_name(windows):
    detector = build_detector(load_model_config("pca_reconstruction")).fit(windows)
    frame = detector.prepare(windows)
    raw, shares, _ = detector.raw_scores(frame)
    x = detector._inputs(frame)
    cohorts = frame["cohort"].to_numpy()
    want_raw, want_shares = np.zeros(len(x)), np.zeros_like(x)
    for cohort in pd.unique(cohorts):
        rows = cohorts == cohort
        space = detector.subspaces.get(cohort, detector.subspaces[FLEET])
        want_raw[rows], want_shares[rows] = _evaluate_as_written(space, x[rows])
    np.testing.assert_array_equal(raw, want_raw)
    np.testing.assert_array_equal(shares, want_shares)
