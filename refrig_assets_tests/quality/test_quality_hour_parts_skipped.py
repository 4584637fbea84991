"""The quality step leaves out the parts of an hour's queries that cannot find anything: the
row quarantine's read-error and missing-key parts when the file's footer shows every row
keyed and without a read error (and its NaN-storm part without a storm), and the runs of the
sensors without a repeated value. Each hour, cleaned both ways (with and without the parts),
gives the same clean rows, stuck-run tails, quarantine and counts, in 1 and 2 shards.

The hours: a simulated fleet with sensor faults (stuck runs), a device stuck across the hours,
a delivery received twice (copies), a file whose sensors are all missing (a NaN storm), and a
CSV with a row without a device and an unparsable value (the parts must then run)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from support.quality_helpers import CONTRACT, arrived_in_hour, good_rows
from test_quality_shards import rows, summary

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality import rules
from refrig_assets.quality.shards import clean_hour_in_shards
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.simulator.writer import readings_path, write_frame

START = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = [f"2026-01-01-{h:02d}:00" for h in range(4)]
TAILS = "stuck_sensor_tails"
SENSORS = CONTRACT.sensor_columns


@pytest.fixture(scope="module")
def hours(tmp_path_factory) -> tuple[ParquetStore, pa.Table]:
    """Four hours of typed readings and the registered devices."""
    root = tmp_path_factory.mktemp("parts")
    landing = root / "landing"
    config = SimulationConfig(devices=12, hours=4, seed=11, sensor_fault_fraction=0.4)
    sim = FleetSimulator(config)
    for h in range(4):
        frame = sim.hour(h)
        if h == 1:  # delivered twice: copies to quarantine
            frame = pd.concat([frame, frame[frame["device_id"] == frame["device_id"].iloc[0]]])
        write_frame(frame, readings_path(landing, config.start + timedelta(hours=h), "parquet"))
    stuck = good_rows(n=170, device="zz-stuck", start_minute=0)  # stuck from 00:05 to 02:49
    stuck.loc[5:, "temperature_evaporator"] = 4.25
    for h in range(3):
        part = stuck[(stuck["ts"] >= START + timedelta(hours=h))]
        part[part["ts"] < START + timedelta(hours=h + 1)].to_parquet(
            landing / f"stuck-{h}.parquet", index=False
        )
    storm = good_rows(n=20, device="zz-storm", start_minute=0)
    storm["ts"] += timedelta(hours=3)
    for s in SENSORS:
        storm[s] = np.nan
    storm.to_parquet(landing / "storm-3.parquet", index=False)
    broken = good_rows(n=3, device="dev-000001", start_minute=10).astype({"device_id": object})
    broken["ts"] = (broken["ts"] + timedelta(hours=2)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    broken = broken.astype(str)
    broken.loc[0, "device_id"] = ""
    broken.loc[1, "temperature_evaporator"] = "not-a-number"
    bad = landing / "broken.csv"
    broken.to_csv(bad, index=False)
    arrived_in_hour(bad, hour=START + timedelta(hours=2))
    store = ParquetStore(root / "data")
    index = LandingIndex(root / "index.json")
    for h, key in enumerate(KEYS):
        con = connect()
        try:
            start = START + timedelta(hours=h)
            hour = hour_readings(
                con, landing, start, start + timedelta(hours=1), key, CONTRACT, index
            )
            store.write_from_duckdb("sensor_readings", key, con, hour.sql)
        finally:
            con.close()
    registered = pa.table({"device_id": pa.array(sim.registry()["device_id"], pa.string())})
    return store, registered


def clean_hours(hours, out: ParquetStore, shards: int):
    """The four hours cleaned in order (each continuing the tails of the one before)."""
    source, registered = hours
    results = []
    for i, key in enumerate(KEYS):
        con = connect()
        try:
            _, result = clean_hour_in_shards(
                con,
                out,
                key,
                source.path("sensor_readings", key),
                CONTRACT,
                registered,
                previous_tails=out.path(TAILS, KEYS[i - 1]) if i else None,
                shards=shards,
                tails_dataset=TAILS,
            )
        finally:
            con.close()
        results.append(result)
    return results


@pytest.mark.parametrize("shards", [1, 2])
def test_the_parts_left_out_change_nothing(hours, tmp_path, monkeypatch, shards):
    keyed, repeating = [], []
    all_keyed, with_repeats = rules._all_keyed, rules._repeating

    def seen_keyed(path):
        keyed.append(all_keyed(path))
        return keyed[-1]

    def seen_repeating(con, sensors):
        repeating.append(len(with_repeats(con, sensors)) < len(sensors))
        return with_repeats(con, sensors)

    monkeypatch.setattr(rules, "_all_keyed", seen_keyed)
    monkeypatch.setattr(rules, "_repeating", seen_repeating)
    new = ParquetStore(tmp_path / "new")
    left_out = clean_hours(hours, new, shards)
    # every part run: the query as it was before any was left out
    monkeypatch.setattr(rules, "_all_keyed", lambda path: False)
    monkeypatch.setattr(rules, "_repeating", lambda con, sensors: sensors)
    old = ParquetStore(tmp_path / "old")
    every = clean_hours(hours, old, shards)

    # the hours exercise both ways: keyed hours, the hour with a broken CSV, sensors left out
    assert keyed == [True, True, False, True] and any(repeating)
    flags = [r.flag_counts for r in every]
    assert flags[0]["STUCK_SENSOR"] > 0 and flags[1]["DUPLICATE"] > 0
    assert every[3].nan_storm_files and every[2].rejected_files + every[2].notices == []
    rules_seen = set().union(*(set(r.quarantine["rule"]) for r in every))
    assert {"duplicate_reading", "nan_storm", "missing_value", "unparsable_value"} <= rules_seen
    for key, a, b in zip(KEYS, left_out, every, strict=True):
        assert rows(new.path("clean_readings", key)).equals(rows(old.path("clean_readings", key)))
        assert rows(new.path(TAILS, key)).equals(rows(old.path(TAILS, key)))
        pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
        assert summary(a) == summary(b)
