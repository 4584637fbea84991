"""The isolation forest scored from its arrays gives scikit-learn's own scores bit for bit,
and a detector saved with scikit-learn's estimator (the artifacts registered before) loads
into those arrays and scores exactly as that estimator does."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors import forest_arrays
from refrig_assets.detectors.base import Detector, build_detector
from refrig_assets.detectors.forest_arrays import ForestArrays
from tools.benchmarks.scoring import synthetic_features


@pytest.mark.parametrize("max_features", [1.0, 0.5])
@pytest.mark.parametrize("max_samples", [7, 256])
def test_forest_arrays_score_like_score_samples(monkeypatch, max_features, max_samples):
    rng = np.random.default_rng(11)
    forest = IsolationForest(
        n_estimators=30,
        max_samples=max_samples,
        max_features=max_features,
        random_state=2,
        n_jobs=1,
    ).fit(rng.normal(size=(3000, 5)))
    rows = rng.normal(scale=2.0, size=(4000, 5))
    rows[::13, 1] = np.nan  # missing values follow each split's missing side
    rows[::17, 3] = np.inf
    rows[::19, 0] = -np.inf
    # a value on a split threshold (float32 rounding of the float64 threshold decides)
    tree = forest.estimators_[0].tree_
    rows[5, 0] = tree.threshold[0]
    monkeypatch.setattr(forest_arrays, "_BLOCK_ROWS", 600)
    monkeypatch.setattr(forest_arrays, "_cores", lambda: 2)
    scores = ForestArrays.from_forest(forest).anomaly_scores(rows)
    assert np.array_equal(scores, -forest.score_samples(rows))


def test_a_forest_of_one_split_stump_scores_like_score_samples():
    rng = np.random.default_rng(1)
    forest = IsolationForest(n_estimators=4, max_samples=2, random_state=0).fit(
        rng.normal(size=(50, 3))
    )
    rows = rng.normal(size=(100, 3))
    scores = ForestArrays.from_forest(forest).anomaly_scores(rows)
    assert np.array_equal(scores, -forest.score_samples(rows))


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return synthetic_features(devices=60, hours=4, seed=5)


def _fit_keeping_estimator(windows: pd.DataFrame) -> tuple[Detector, IsolationForest]:
    fitted: list[IsolationForest] = []
    taken = ForestArrays.from_forest

    def keep(forest: IsolationForest) -> ForestArrays:
        fitted.append(forest)
        return taken(forest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ForestArrays, "from_forest", staticmethod(keep))
        detector = build_detector(load_model_config("isolation_forest")).fit(windows)
    return detector, fitted[0]


def test_a_saved_detector_holds_no_scikit_learn_object(windows):
    detector, _ = _fit_keeping_estimator(windows)
    assert isinstance(detector.forest, ForestArrays)
    assert b"sklearn" not in pickle.dumps(detector)


def test_an_artifact_with_the_estimator_loads_and_scores_as_the_estimator(windows, tmp_path):
    detector, estimator = _fit_keeping_estimator(windows)
    # The artifact as saved before: scikit-learn's fitted estimator in the detector's state.
    detector.__dict__["forest"] = estimator
    joblib.dump(detector, tmp_path / "detector.joblib")
    assert b"sklearn" in (tmp_path / "detector.joblib").read_bytes()
    loaded = Detector.load(tmp_path)
    assert isinstance(loaded.forest, ForestArrays)
    frame = loaded.prepare(windows)
    raw, inputs, _ = loaded.raw_scores(frame)
    assert np.array_equal(raw, -estimator.score_samples(inputs))
    fresh, _ = _fit_keeping_estimator(windows)
    pd.testing.assert_frame_equal(loaded.score(windows), fresh.score(windows))
