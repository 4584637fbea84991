"""The hours of a ranged scoring step scored in one pass per run of hours give, hour by hour,
the pieces scoring each hour alone gives (same rows, scores, flags, contributors, confidence),
for every hourly detector: with faults that last across hour edges (persistence looks back
over the edge), a device silent for an hour, an hour without features inside the range and a
memory budget that fits only part of the range at once."""

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.scoring.range_scores import RangeScores
from refrig_assets.defs.scoring.range_scores import hour_start as start_of
from refrig_assets.engines.memory import load_memory_budget
from refrig_assets.scoring.runs import HOUR_KEY, score_runs
from refrig_assets.training.fit import train_detector
from tools.benchmarks.scoring import START, synthetic_features

DEVICES = 12
HOURS = 12  # six hours of training, then six scored as one range
TRAIN = 6
HOURLY_MODELS = ["statistical_baseline", "isolation_forest", "pca_reconstruction"]
SCORED_AT = datetime(2026, 1, 2, tzinfo=UTC)
FAULTY = ["dev-000002", "dev-000007"]
SILENT = "dev-000004"
EMPTY_HOUR = 9  # the gateway sent nothing: no feature partition
SCORED = list(range(TRAIN, HOURS))


def key_of(hour: int) -> str:
    """The partition key of the hour ``hour`` hours after START."""
    return (pd.Timestamp(START) + pd.Timedelta(hours=hour)).strftime(HOUR_KEY)


def hour_at(hour: int) -> pd.Timestamp:
    return start_of(key_of(hour))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Twelve feature hours of 12 devices (one hour missing, one device silent for an hour),
    faults from the middle of hour 7 to the middle of hour 10, trained hourly detectors."""
    store = ParquetStore(tmp_path_factory.mktemp("range-scores") / "data")
    features = synthetic_features(DEVICES, HOURS, seed=5)
    ts = features["window_start"]
    faulty = (
        (ts >= hour_at(7) + pd.Timedelta(minutes=30))
        & (ts < hour_at(10) + pd.Timedelta(minutes=30))
        & features["device_id"].isin(FAULTY)
    )
    for col in [c for c in features if c.startswith(("temperature_evaporator", "current_"))]:
        features.loc[faulty, col] *= 2.0
    silent = (ts.dt.floor("h") == hour_at(8)) & features["device_id"].eq(SILENT)
    features = features[~silent].reset_index(drop=True)
    ids = sorted(features["device_id"].unique())
    cohorts = features.groupby("device_id")["cohort"].first().reindex(ids).to_numpy()
    registry = pd.DataFrame({"device_id": ids, "site_id": "S1", "cohort": cohorts})
    store.write("device_registry", None, registry)
    for h in range(HOURS):
        if h != EMPTY_HOUR:
            part = features[features["window_start"].dt.floor("h") == hour_at(h)]
            store.write("device_features", key_of(h), part.drop(columns="cohort"))
    train = features[features["window_start"] < hour_at(TRAIN)]
    detectors = {
        m: train_detector(load_model_config(m), train, "6 hours", "test")[0] for m in HOURLY_MODELS
    }
    return store, registry, detectors


def alone(store, registry, detector, key) -> list:
    return list(score_runs(store, registry, detector, "1", [key], SCORED_AT))


def assert_same_pieces(ranged: list, expected: list) -> None:
    assert len(ranged) == len(expected)
    for (starts, scores), (want_starts, want_scores) in zip(ranged, expected, strict=True):
        pd.testing.assert_frame_equal(
            starts.reset_index(drop=True), want_starts.reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(
            scores.drop(columns="scored_at").reset_index(drop=True),
            want_scores.drop(columns="scored_at").reset_index(drop=True),
        )


@pytest.mark.parametrize("model_id", HOURLY_MODELS)
def test_a_range_scored_in_one_pass_gives_each_hour_what_scoring_it_alone_gives(world, model_id):
    store, registry, detectors = world
    keys = [key_of(h) for h in SCORED]
    ranged = RangeScores(store, registry, detectors[model_id], "1", keys)
    flagged = 0
    for h, key in zip(SCORED, keys, strict=True):
        pieces = ranged.pieces(key)
        assert pieces is not None, key
        expected = alone(store, registry, detectors[model_id], key)
        assert_same_pieces(pieces, expected)
        flagged += sum(int(s["anomaly_flag"].sum()) for _, s in expected)
        if h == EMPTY_HOUR:
            assert sum(len(s) for _, s in pieces) == 0
    assert flagged > 0  # the faults are scored, across hour edges


def test_a_budget_smaller_than_the_range_scores_it_in_several_runs(world):
    store, registry, detectors = world
    detector = detectors["isolation_forest"]
    keys = [key_of(h) for h in SCORED]
    one_hour = int(store.read("device_features", keys[0])["reading_count"].sum())
    budget = load_memory_budget()
    # Room for two hours' readings at a time.
    small = replace(budget, memory_budget_mb=256, reading_bytes=256 * 2**20 // (2 * one_hour))
    ranged = RangeScores(store, registry, detector, "1", keys, budget=small)
    runs = []
    for key in keys:
        before = set(ranged._ready)
        pieces = ranged.pieces(key)
        if key not in before:
            runs.append(key)
        assert_same_pieces(pieces, alone(store, registry, detector, key))
    assert 2 <= len(runs) < len(keys)


def test_an_hour_outside_the_range_is_left_to_the_one_hour_path(world):
    store, registry, detectors = world
    ranged = RangeScores(store, registry, detectors["isolation_forest"], "1", [key_of(7)])
    assert ranged.pieces(key_of(8)) is None
