"""A service diagnoses a request's windows as arrays, without the incidents step's frames; each
window must get exactly the cause, kind, confidence and evidence the batch step gives it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from support.cause_world import COHORT, HEALTHY, START, history

from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.baselines import BaselineLookup, build_baselines
from refrig_assets.incidents.causes import diagnose_partition
from refrig_assets.incidents.signatures import load_signatures
from refrig_assets.quality.rules import quality_flag_names
from refrig_assets.serving.causes import CauseDiagnosis

DAY = 24


@pytest.fixture
def store(tmp_path) -> ParquetStore:
    """A day of healthy history, hour by hour, and the registry of its devices."""
    store = ParquetStore(tmp_path / "data")
    frame = history(windows=DAY * 4).drop(columns=["cohort"])
    for hour in range(DAY):
        start = START + pd.Timedelta(hours=hour)
        part = frame[frame["window_start"].between(start, start + pd.Timedelta(minutes=45))]
        store.write("device_features", start.strftime("%Y-%m-%dT%H"), part)
    devices = sorted(frame["device_id"].unique())
    store.write("device_registry", None, pd.DataFrame({"device_id": devices, "cohort": COHORT}))
    return store


def request(seed: int) -> pd.DataFrame:
    """The next two hours' windows of known and unknown devices, with values far from normal,
    sensor-fault flags and defrosts here and there so that many signatures match."""
    rng = np.random.default_rng(seed)
    rows = []
    for device in ("dev-1", "dev-2", "dev-5", "dev-new"):
        for q in range(8):
            row = {f: c + rng.normal(0, 3 * x + 1e-3) for f, (c, x) in HEALTHY.items()}
            for f in rng.choice(sorted(HEALTHY), size=3, replace=False):
                row[f] *= rng.choice([0.2, 0.6, 1.5, 3.0])
            row["defrost_minutes"] = float(rng.choice([0.0, 0.0, 0.0, 8.0]))
            row["quality_mask"] = int(rng.integers(0, 1 << len(quality_flag_names())))
            row["quality_mask"] *= int(rng.random() < 0.2)
            row["window_start"] = START + pd.Timedelta(hours=DAY, minutes=15 * q)
            row["window_end"] = row["window_start"] + pd.Timedelta(minutes=15)
            rows.append({"device_id": device, **row})
    frame = pd.DataFrame(rows)
    frame.loc[rng.random(len(frame)) < 0.1, "duty_cycle"] = np.nan
    return frame


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_window_gets_the_diagnosis_of_the_incidents_step(store, tmp_path, seed):
    features = request(seed)
    found = CauseDiagnosis(store.root).probable_causes(features)
    # The batch step keeps what it derives: it diagnoses in a copy of the data folder.
    shutil.copytree(store.root, tmp_path / "batch")
    batch = ParquetStore(tmp_path / "batch")
    expected = {}
    hours = features["window_start"].dt.floor("h")
    for hour in hours.unique():
        part = features[hours == hour]
        out = diagnose_partition(batch, hour.strftime("%Y-%m-%d-%H:00"), part)
        for row in out.to_dict("records"):
            expected[(row["device_id"], row["window_start"])] = {
                "cause": row["cause"],
                "kind": row["cause_kind"],
                "confidence": row["confidence"],
                "evidence": json.loads(row["evidence"]),
            }
    assert len({c["cause"] for c in expected.values()}) > 2
    assert found == expected


def test_a_few_rows_are_aligned_to_the_baselines_as_many_rows_are():
    table = load_signatures()
    baselines = build_baselines(history(), table)
    devices = np.array([f"dev-{i % 9}" for i in range(300)], dtype=object)
    cohorts = np.where(np.arange(300) % 4 == 0, "unknown", COHORT).astype(object)
    many = BaselineLookup(baselines, devices, cohorts)
    few = BaselineLookup(baselines, devices[:5], cohorts[:5])
    for feature in table.baseline_features():
        for own in (True, False):
            for a, b in zip(few.get(feature, own=own), many.get(feature, own=own), strict=True):
                np.testing.assert_array_equal(a, b[:5])
