"""The hourly steps after the features (scores, alerts, device status, incidents) in device
shards: the same scores, alerts, device status, incidents and stored defrost state for 1, 2, 3
and many shards as for the whole fleet at once. Fleet-wide context (the detectors' trained
state, the dedup against earlier alerts, site-wide events, the baselines and which sensors the
hour has) is taken once per hour and given to every shard."""

import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.alerts.device_status import TrendSettings
from refrig_assets.alerts.hourly import alerts_in_shards, status_in_shards
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import DeviceRange, device_ranges, hour_shards
from refrig_assets.incidents.causes import HourDiagnosis
from refrig_assets.incidents.hourly import run_hour
from refrig_assets.incidents.repository import IncidentStore
from refrig_assets.scoring.runs import score_runs
from refrig_assets.training.fit import train_detector
from tools.benchmarks.scoring import START, synthetic_features

DEVICES = 30
HOURS = 8  # six hours of training, the hour before, the hour scored
HOURLY_MODELS = ["statistical_baseline", "isolation_forest"]
SCORED_AT = datetime(2026, 1, 2, tzinfo=UTC)
FAULTY = ["dev-000003", "dev-000011", "dev-000012", "dev-000026"]
FAULTY_IN_LAST_HOUR = ["dev-000017"]
DOOR_AJAR = ["dev-000005", "dev-000020"]
NO_CURRENT_SENSOR = [f"dev-{i:06d}" for i in range(10)]  # a cohort without the current sensor


def key_of(hour: int) -> str:
    return (pd.Timestamp(START) + pd.Timedelta(hours=hour)).strftime("%Y-%m-%d-%H:%M")


def hour_start(hour: int) -> pd.Timestamp:
    return pd.Timestamp(START).tz_convert("UTC") + pd.Timedelta(hours=hour)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with eight feature hours of 30 devices on 4 sites that cut across any device
    range, faults in the last two hours (one device's in the last hour only), trained hourly
    detectors."""
    root = tmp_path_factory.mktemp("shards")
    store = ParquetStore(root / "data")
    features = synthetic_features(DEVICES, HOURS, seed=3)
    late = features["window_start"] >= hour_start(HOURS - 2)
    last = features["window_start"] >= hour_start(HOURS - 1)
    faulty = (late & features["device_id"].isin(FAULTY)) | (
        last & features["device_id"].isin(FAULTY_IN_LAST_HOUR)
    )
    for col in ("temperature_evaporator_mean", "pressure_low_side_running_mean"):
        if col in features:
            features.loc[faulty, col] *= 1.6
    sensor_cols = [c for c in features.columns if c.startswith("current_compressor")]
    for col in sensor_cols:
        features.loc[faulty, col] *= 2.5
        features.loc[features["device_id"].isin(NO_CURRENT_SENSOR), col] = np.nan
    door = late & features["device_id"].isin(DOOR_AJAR)
    features.loc[door, "door_open_longest_minutes"] = 25.0
    features.loc[door, "door_open_fraction"] = 0.95
    ids = sorted(features["device_id"].unique())
    registry = pd.DataFrame(
        {
            "device_id": ids,
            "site_id": [f"S{i % 4}" for i in range(len(ids))],
            "cohort": features.groupby("device_id")["cohort"].first().reindex(ids).to_numpy(),
        }
    )
    store.write("device_registry", None, registry)
    for h in range(HOURS):
        part = features[features["window_start"].dt.floor("h") == hour_start(h)]
        store.write("device_features", key_of(h), part.drop(columns="cohort"))
    train = features[features["window_start"] < hour_start(HOURS - 2)]
    detectors = {}
    for model_id in HOURLY_MODELS:
        detector, _, _ = train_detector(load_model_config(model_id), train, "6 hours", "test")
        detectors[model_id] = detector
    return root, registry, detectors


def run_hourly(root, registry, detectors, shards: int | None, where):
    """Scores, alerts and incidents of the last two hours in a copy of the store, with the hour
    cut into ``shards`` device ranges (None: the whole fleet at once)."""
    shutil.copytree(root / "data", where / "data")
    store = ParquetStore(where / "data")
    incidents = IncidentStore(AlertStore(f"sqlite:///{where / 'alerts.db'}"))
    out = {"scores": {}, "alerts": [], "incidents": []}
    previous = load_contract("device_alerts").empty_frame()
    for h in (HOURS - 2, HOURS - 1):
        key, start = key_of(h), hour_start(h)
        end = start + pd.Timedelta(hours=1)
        ranges = [DeviceRange()] if shards is None else hour_shards(store, [key], shards)
        for model_id, detector in detectors.items():
            pieces = list(
                score_runs(store, registry, detector, "1", [key], SCORED_AT, shards=ranges)
            )
            assert len(pieces) == len(ranges)
            scores = pd.concat([s for _, s in pieces], ignore_index=True)
            store.write(f"{model_id}_scores", key, scores)
            out["scores"][(model_id, h)] = scores
        hour = alerts_in_shards(store, key, start, end, registry, previous, f"run-{h}", ranges)
        store.write("device_alerts", key, hour.alerts)
        assert hour.models_present == sorted(HOURLY_MODELS)
        previous = pd.concat([previous, hour.alerts], ignore_index=True)
        out["alerts"].append(hour.alerts)
        out[("status", h)] = status_in_shards(
            store,
            [hour_start(h - 1), start],
            registry,
            pd.Series({FAULTY[0]: 2}),
            end,
            TrendSettings.from_contract(),
            ranges,
        )
        result = run_hour(
            store, incidents, key, start, end, HourDiagnosis(store, key), shards=ranges
        )
        out["incidents"].append(result.incidents)
        out[("diagnosed", h)] = result.windows_diagnosed
        out[("unlinked", h)] = result.alerts_unlinked
        out[("state", h)] = pd.read_parquet(
            store.root / "cause_state" / f"{key[:10]}T{key[11:13]}.parquet"
        )
    return out


@pytest.mark.parametrize("shards", [1, 2, 3, DEVICES + 5])
def test_scores_alerts_and_incidents_are_the_same_for_any_shard_count(world, tmp_path, shards):
    root, registry, detectors = world
    whole = run_hourly(root, registry, detectors, None, tmp_path / "whole")
    sharded = run_hourly(root, registry, detectors, shards, tmp_path / "sharded")

    for key, scores in whole["scores"].items():
        pd.testing.assert_frame_equal(sharded["scores"][key], scores)
    flagged = pd.concat(whole["scores"].values())["anomaly_flag"].sum()
    assert flagged > 0
    for got, want in zip(sharded["alerts"], whole["alerts"], strict=True):
        pd.testing.assert_frame_equal(got, want)
    assert len(whole["alerts"][-1]) > 0 and whole["alerts"][-1]["suppressed"].any()
    for got, want in zip(sharded["incidents"], whole["incidents"], strict=True):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    last = whole["incidents"][-1]
    assert len(last) > 0 and last["cause"].eq("door_ajar").any()
    for h in (HOURS - 2, HOURS - 1):
        assert sharded[("diagnosed", h)] == whole[("diagnosed", h)] == DEVICES * 4
        assert sharded[("unlinked", h)] == whole[("unlinked", h)] == []
        pd.testing.assert_frame_equal(sharded[("state", h)], whole[("state", h)])
        pd.testing.assert_frame_equal(sharded[("status", h)], whole[("status", h)])
        assert len(whole[("status", h)]) == DEVICES


def test_shards_are_contiguous_device_ranges_of_about_equal_readings():
    ids = pa.array([f"d{i:02d}" for i in range(10) for _ in range(3)])
    weights = pa.array([1] * 15 + [3] * 15)  # the last five devices weigh three times more
    ranges = device_ranges(ids, weights, 2)
    assert ranges == [DeviceRange(None, "d07"), DeviceRange("d07", None)]
    every = pd.Series([f"d{i:02d}" for i in range(10)] + ["a-new-device", "zz"])
    inside = np.vstack([r.mask(every) for r in ranges])
    assert (inside.sum(axis=0) == 1).all()  # every id, known or not, in exactly one range
    assert len(device_ranges(ids, None, 50)) == 10  # at most one range per device
    assert device_ranges(ids, weights, 1) == [DeviceRange()]


def test_the_hour_cut_follows_the_memory_budget(world, tmp_path):
    from refrig_assets.engines.memory import load_memory_budget

    root, _, _ = world
    store = ParquetStore(root / "data")
    budget = load_memory_budget()
    readings = DEVICES * 4 * 15  # reading_count of the synthetic windows
    small = type(budget)(budget.path, 256, 256 * 2**20 * 3 // readings)  # three shards
    assert len(hour_shards(store, [key_of(0)], budget=small)) == 3
    assert hour_shards(store, [key_of(0)]) == [DeviceRange()]  # a small fleet: one shard
    assert hour_shards(store, ["2030-01-01-00:00"], shards=4) == [DeviceRange()]


def test_the_diagnoses_kept_of_each_shard_build_the_incidents_all_diagnoses_build(world, tmp_path):
    from refrig_assets.incidents.build import build_incidents
    from refrig_assets.incidents.causes import diagnose_partition
    from refrig_assets.incidents.hourly import used_diagnoses

    root, registry, detectors = world
    run_hourly(root, registry, detectors, None, tmp_path / "run")
    store = ParquetStore(tmp_path / "run" / "data")
    key, end = key_of(HOURS - 1), hour_start(HOURS)
    features = store.read("device_features", key)
    every = diagnose_partition(store, key, features)
    alerts = store.read("device_alerts", key)
    kept = used_diagnoses(every, set(alerts["device_id"]))
    assert 0 < len(kept) < len(every)
    alerted = every[every["device_id"].isin(alerts["device_id"])]
    assert alerted["cause"].ne("unknown").any()  # alerts take their window's probable cause
    built = [
        build_incidents(alerts, d, quality=features, devices=registry, as_of=end)
        for d in (every, kept)
    ]
    pd.testing.assert_frame_equal(built[1].incidents, built[0].incidents)
    pd.testing.assert_frame_equal(built[1].evidence, built[0].evidence)


def test_an_hour_run_again_lists_the_incidents_its_first_run_listed(world, tmp_path):
    """A rerun of an old hour (a range run again, a late file) sees incidents that began after
    the hour among the live ones it may extend; its partition still lists only the hour's."""
    root, registry, detectors = world
    first = run_hourly(root, registry, detectors, None, tmp_path / "run")
    hour = HOURS - 2
    start, end = hour_start(hour), hour_start(hour + 1)
    store = ParquetStore(tmp_path / "run" / "data")
    incidents = IncidentStore(AlertStore(f"sqlite:///{tmp_path / 'run' / 'alerts.db'}"))
    every = incidents.open_incidents(closed_since=datetime(2000, 1, 1, tzinfo=UTC))
    assert (every["first_window_start"] >= end).any()  # one began after the hour
    again = run_hour(store, incidents, key_of(hour), start, end, HourDiagnosis(store, key_of(hour)))
    # The same incidents (their rows as stored now: later hours may have updated them).
    assert sorted(again.incidents["incident_id"]) == sorted(first["incidents"][0]["incident_id"])
    after = incidents.open_incidents(closed_since=datetime(2000, 1, 1, tzinfo=UTC))
    kept = ["incident_id", "device_id", "cause", "first_window_start", "status"]
    pd.testing.assert_frame_equal(  # no incident opened again, none lost
        after[kept].sort_values("incident_id", ignore_index=True),
        every[kept].sort_values("incident_id", ignore_index=True),
    )
