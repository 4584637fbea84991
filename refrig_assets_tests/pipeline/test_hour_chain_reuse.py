"""What the hours of a backfill run share in alerts → incidents → status gives what each hour
alone gives: the device status from score hours read once for the overlapping trend hours,
incidents diagnosed with one cause store and signature table for all the hours (a reused
baseline file read and indexed once), and the build's per-group figures."""

import shutil

import numpy as np
import pandas as pd
import pytest

from refrig_assets.alerts.device_status import TrendSettings
from refrig_assets.alerts.hourly import status_in_shards
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.device_shards import DeviceRange
from refrig_assets.incidents.aggregate import per_group
from refrig_assets.incidents.causes import HourDiagnosis
from refrig_assets.incidents.causes_store import BASELINES, CauseStore, stem_of
from refrig_assets.incidents.hourly import run_hour
from refrig_assets.incidents.repository import IncidentStore
from refrig_assets.incidents.signatures import load_signatures
from refrig_assets.scoring.runs import score_runs
from refrig_assets_tests.scoring.test_hourly_shards import (
    FAULTY,
    HOURS,
    SCORED_AT,
    hour_start,
    key_of,
    world,  # noqa: F401 - the fixture
)

SCORED = range(2, HOURS)  # the hours scored, alerted on and diagnosed here


@pytest.fixture(scope="module")
def scored(world, tmp_path_factory):  # noqa: F811 - the fixture
    """The world's store with the detectors' scores of hours 2..7 and a baseline file stored
    at hour 3 (as a fleet with enough history keeps one), reused by the hours after it."""
    root, registry, detectors = world
    where = tmp_path_factory.mktemp("chain")
    shutil.copytree(root / "data", where / "data")
    store = ParquetStore(where / "data")
    for h in SCORED:
        for model_id, detector in detectors.items():
            pieces = score_runs(store, registry, detector, "1", [key_of(h)], SCORED_AT)
            scores = pd.concat([s for _, s in pieces], ignore_index=True)
            store.write(f"{model_id}_scores", key_of(h), scores)
    fresh = CauseStore.open(store)
    baselines = fresh.baselines(key_of(3), load_signatures())
    store.write(BASELINES, stem_of(hour_start(3)), baselines)
    return where, registry


def test_status_of_consecutive_hours_reading_each_score_hour_once_equals_each_hour_alone(scored):
    where, registry = scored
    store = ParquetStore(where / "data")
    settings = TrendSettings.from_contract()
    opened = pd.Series({FAULTY[0]: 2})
    read: dict[str, pd.DataFrame] = {}
    for h in SCORED:
        hours = [hour_start(h - 1), hour_start(h)]
        end = hour_start(h) + pd.Timedelta(hours=1)
        alone = status_in_shards(store, hours, registry, opened, end, settings)
        kept = status_in_shards(store, hours, registry, opened, end, settings, None, read)
        pd.testing.assert_frame_equal(kept, alone)
        assert set(read) == {key_of(h - 1), key_of(h)}  # only the trend's hours are kept
    assert alone["latest_anomaly_score"].notna().all()
    # Device shards read every hour: nothing is kept.
    shards = [DeviceRange(None, "dev-000015"), DeviceRange("dev-000015", None)]
    kept = status_in_shards(store, hours, registry, opened, end, settings, shards, read={})
    pd.testing.assert_frame_equal(kept, alone)


def test_a_kept_cause_store_reads_and_indexes_a_reused_baseline_file_once(scored):
    where, _ = scored
    table = load_signatures()
    kept = CauseStore.open(ParquetStore(where / "data"))
    first = kept.baselines(key_of(4), table)
    again = kept.baselines(key_of(5), table)
    assert again is first  # the same file (hour 3's), read once
    pd.testing.assert_frame_equal(first, CauseStore.open(where).baselines(key_of(5), table))
    assert kept.indexed(first) is kept.indexed(again)
    before = kept.baselines(key_of(2), table)  # built from history, not the file after it
    assert before is not first
    assert kept.indexed(before) is not kept.indexed(first)
    # A baseline file written again (deleted derived data rebuilt) is read again.
    stem = stem_of(hour_start(3))
    center = next(c for c in first.columns if c.startswith("center:"))
    kept.store.write(BASELINES, stem, first.assign(**{center: first[center] + 1.0}))
    try:
        changed = kept.baselines(key_of(5), table)
        assert changed is not first
        pd.testing.assert_series_equal(changed[center], first[center] + 1.0)
    finally:
        kept.store.write(BASELINES, stem, first)


def incidents_of_the_hours(where, shared: bool) -> dict:
    """Alerts-free incident hours 2..7 (diagnoses, sensor tickets, site events) in a copy of
    the store, with a cause store and signature table per hour or one for all."""
    store = ParquetStore(where / "data")
    incidents = IncidentStore(AlertStore(f"sqlite:///{where / 'alerts.db'}"))
    causes, table = CauseStore.open(store), load_signatures()
    out = {}
    try:
        for h in SCORED:
            key, start = key_of(h), hour_start(h)
            diagnose = (
                HourDiagnosis(store, key, store=causes, table=table)
                if shared
                else HourDiagnosis(store, key)
            )
            result = run_hour(store, incidents, key, start, start + pd.Timedelta(hours=1), diagnose)
            out[("incidents", h)] = result.incidents
            out[("diagnosed", h)] = result.windows_diagnosed
            out[("state", h)] = pd.read_parquet(
                store.root / "cause_state" / f"{stem_of(start)}.parquet"
            )
        out["stored"] = incidents.list(limit=None)[0].drop(
            columns=["first_seen_at", "updated_at"], errors="ignore"
        )
    finally:
        incidents.close()
    return out


def test_incidents_with_one_cause_store_and_table_for_the_hours_equal_each_hour_alone(
    scored, tmp_path
):
    where, _ = scored
    shutil.copytree(where / "data", tmp_path / "alone" / "data")
    shutil.copytree(where / "data", tmp_path / "shared" / "data")
    alone = incidents_of_the_hours(tmp_path / "alone", shared=False)
    shared = incidents_of_the_hours(tmp_path / "shared", shared=True)
    assert set(shared) == set(alone)
    for key, expected in alone.items():
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(shared[key], expected, obj=str(key))
        else:
            assert shared[key] == expected, key
    assert all(alone[("diagnosed", h)] > 0 for h in SCORED)
    assert len(alone["stored"]) > 0


def test_per_group_figures_equal_pandas_named_aggregation():
    t = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "g": ["b", "a", "a", "b", "c", "a"],
            "text": [None, "x", "y", "z", None, None],
            "start": [t + pd.Timedelta(minutes=m) for m in (5, 0, 15, 1, 30, 10)],
            "score": [np.nan, 0.2, 0.9, 0.4, np.nan, 0.1],
            "count": [1, 2, 3, 4, 5, 6],
            "flag": [False, True, False, False, False, False],
            "alert": ["a1", None, "a3", None, None, "a6"],
        }
    )
    named = {
        "text": ("text", "first"),
        "first_start": ("start", "min"),
        "last_start": ("start", "max"),
        "score": ("score", "max"),
        "count": ("count", "max"),
        "flag": ("flag", "any"),
        "score_first": ("score", "first"),
        "alerts": ("alert", "count"),
    }
    for frame_ in (frame, frame.iloc[:0], frame[frame["g"].eq("c")]):
        by = frame_.groupby("g", sort=True)
        pd.testing.assert_frame_equal(per_group(by, **named), by.agg(**named))
