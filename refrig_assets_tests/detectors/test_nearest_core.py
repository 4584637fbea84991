"""The DBSCAN cohort detector's nearest-core-point search gives exactly the answers of
scikit-learn's KDTree (the search it replaced): same distances to the last bit, same points, so
the same scores."""

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KDTree

from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors import dbscan_cohort
from refrig_assets.detectors.base import build_detector
from refrig_assets.detectors.dbscan_cohort import NearestCore
from tools.benchmarks.scoring import START, synthetic_features


class KDTreeNearest:
    """The reference: scikit-learn's KDTree, as the detector searched before."""

    def __init__(self, points: np.ndarray):
        self.points = points
        self.tree = KDTree(points)

    def query(self, x: np.ndarray):
        dist, idx = self.tree.query(x, k=1)
        return dist[:, 0], idx[:, 0], x - self.points[idx[:, 0]]


def clustered(rng, n: int, dims: int, groups: int = 4) -> np.ndarray:
    centres = rng.normal(0, 5, (groups, dims))
    return centres[rng.integers(0, groups, n)] + rng.normal(
        0, rng.uniform(0.1, 1.5, dims), (n, dims)
    )


@pytest.mark.parametrize("dims", [1, 3, 7, 8, 13])
def test_same_nearest_point_and_bit_identical_distance_as_scikit_learn(dims):
    rng = np.random.default_rng(dims)
    points = clustered(rng, 3_000, dims)
    # Queries near the points, between groups and far outside them.
    queries = np.vstack([clustered(rng, 20_000, dims), rng.normal(0, 40, (2_000, dims))])
    dist, idx, diff = NearestCore(points).query(queries)
    ref_dist, ref_idx, ref_diff = KDTreeNearest(points).query(queries)
    assert np.array_equal(idx, ref_idx)
    assert np.array_equal(dist, ref_dist)
    assert np.array_equal(diff, ref_diff)


def test_duplicate_points_give_the_same_distance_and_difference():
    rng = np.random.default_rng(0)
    points = np.repeat(rng.normal(0, 1, (500, 7)), 3, axis=0)  # every point three times
    queries = np.vstack([points[:200], rng.normal(0, 1, (5_000, 7))])
    dist, _, diff = NearestCore(points).query(queries)
    ref_dist, _, ref_diff = KDTreeNearest(points).query(queries)
    assert np.array_equal(dist, ref_dist)
    assert np.array_equal(diff, ref_diff)
    assert (dist[:200] == 0).all()


def test_queries_split_across_threads_answer_as_one_search(monkeypatch):
    rng = np.random.default_rng(1)
    points, queries = clustered(rng, 2_000, 7), clustered(rng, 9_000, 7)
    whole = NearestCore(points).query(queries)
    monkeypatch.setattr(dbscan_cohort, "MIN_POINTS_PER_THREAD", 1_000)
    split = NearestCore(points).query(queries)
    for a, b in zip(whole, split, strict=True):
        assert np.array_equal(a, b)


def test_the_detector_trains_and_scores_exactly_as_with_scikit_learn_trees(monkeypatch):
    frame = synthetic_features(devices=400, hours=6, seed=7)
    cut = pd.Timestamp(START) + pd.Timedelta(hours=3)
    drift = (frame["device_id"] == "dev-000005") & (frame["window_start"] >= cut)
    frame.loc[drift, "pressure_low_side_running_mean"] *= 0.65
    train = frame[frame["window_start"] < cut]
    # Devices the model never saw are judged against the nearest core point of any group.
    unseen = frame.assign(device_id=frame["device_id"].str.replace("dev-", "new-"))
    config = load_model_config("dbscan_cohort")
    new = build_detector(config).fit(train)
    new_scores, new_unseen = new.score(frame), new.score(unseen)
    monkeypatch.setattr(dbscan_cohort, "NearestCore", KDTreeNearest)
    old = build_detector(config).fit(train)
    pd.testing.assert_frame_equal(new_scores, old.score(frame), check_exact=True)
    pd.testing.assert_frame_equal(new_unseen, old.score(unseen), check_exact=True)
    pd.testing.assert_series_equal(new.device_distance, old.device_distance, check_exact=True)
    assert new.group_distance == old.group_distance
    assert new_scores.loc[new_scores["anomaly_flag"], "device_id"].eq("dev-000005").all()
    assert new_scores["anomaly_flag"].any()  # the drifting device, and only it
