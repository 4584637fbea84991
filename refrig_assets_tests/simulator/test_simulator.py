"""Specification of the fleet simulator (``refrig_assets.simulator``).

A healthy fleet looks like refrigeration and stays clear of every streaming rule; each labelled
fault is visible in the readings where the label says; output follows the data contracts and
is reproducible from the seed; ``simulate_fleet`` lands one file per hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.simulator import (
    ALL_SENSORS,
    COHORT_NAMES,
    FAULT_TYPES,
    LABEL_COLUMNS,
    FleetSimulator,
    SimulationConfig,
    simulate_fleet,
)

READINGS = load_contract("sensor_readings")
REGISTRY = load_contract("device_registry")
RUNNING_ABOVE = READINGS.column("current_compressor").extra["running_above"]
CURRENT_THRESHOLD = REGISTRY.column("current_threshold").default
PRESSURE_DROP = REGISTRY.column("pressure_drop_fraction").default
EVAPORATOR_RISE = REGISTRY.column("evaporator_rise_per_minute").default
VIBRATION_MULTIPLIER = REGISTRY.column("vibration_multiplier").default
MINUTE = pd.Timedelta(minutes=1)

HEALTHY = SimulationConfig(devices=200, hours=6, faults=False, seed=7)
FAULTY = SimulationConfig(devices=300, hours=8, fault_fraction=0.4, sensor_fault_fraction=0.1)


def all_hours(sim: FleetSimulator) -> pd.DataFrame:
    """Every hour of a simulation in one frame, sorted by device then time."""
    frame = pd.concat([df for _, df in sim.hours()], ignore_index=True)
    return frame.sort_values(["device_id", "ts"], kind="stable", ignore_index=True)


def as_matrix(frame: pd.DataFrame, column: str, devices: int) -> np.ndarray:
    """A column of a complete, sorted frame as (devices, readings)."""
    return frame[column].to_numpy(dtype=float).reshape(devices, -1)


@pytest.fixture(scope="module")
def healthy() -> pd.DataFrame:
    return all_hours(FleetSimulator(HEALTHY))


@pytest.fixture(scope="module")
def faulty() -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = FleetSimulator(FAULTY)
    return all_hours(sim), sim.labels()


def device_readings(frame: pd.DataFrame, device_id: str) -> pd.DataFrame:
    return frame[frame["device_id"] == device_id].set_index("ts")


# ------------------------------------------------------------------------------- config


def test_config_reads_naive_start_as_utc_and_rejects_bad_values():
    assert SimulationConfig(start=datetime(2026, 3, 1, 5)).start == datetime(
        2026, 3, 1, 5, tzinfo=UTC
    )
    assert SimulationConfig(devices=1000).n_sites == 40
    with pytest.raises(ValueError):
        SimulationConfig(start=datetime(2026, 3, 1, 5, 30, tzinfo=UTC))
    with pytest.raises(ValueError):
        SimulationConfig(cadence_seconds=7)
    with pytest.raises(ValueError):
        SimulationConfig(fault_fraction=0.8, sensor_fault_fraction=0.3)


# ------------------------------------------------------------------------------- determinism


def test_same_config_gives_identical_frames():
    config = SimulationConfig(devices=50, hours=3, fault_fraction=0.3, seed=3)
    a, b = FleetSimulator(config), FleetSimulator(config)
    for i in range(config.hours):
        left, right = a.hour(i), b.hour(i)
        pd.testing.assert_frame_equal(left, right)
        assert pd.util.hash_pandas_object(left).equals(pd.util.hash_pandas_object(right))
    pd.testing.assert_frame_equal(a.labels(), b.labels())
    pd.testing.assert_frame_equal(a.registry(), b.registry())


def test_different_seed_gives_different_fleet():
    a = FleetSimulator(SimulationConfig(devices=50, hours=1, seed=1)).hour(0)
    b = FleetSimulator(SimulationConfig(devices=50, hours=1, seed=2)).hour(0)
    assert not a["temperature_evaporator"].equals(b["temperature_evaporator"])


def test_hour_alone_equals_the_sequential_hour():
    config = SimulationConfig(devices=40, hours=4, fault_fraction=0.5, seed=5)
    sequential = [df for _, df in FleetSimulator(config).hours()]
    pd.testing.assert_frame_equal(FleetSimulator(config).hour(3), sequential[3])
    backwards = FleetSimulator(config)
    for i in (2, 1, 3, 0):
        pd.testing.assert_frame_equal(backwards.hour(i), sequential[i])
    with pytest.raises(IndexError):
        backwards.hour(4)


def test_hours_yields_hour_starts_in_order():
    config = SimulationConfig(devices=5, hours=3, start=datetime(2026, 2, 1, 22, tzinfo=UTC))
    for i, (start, df) in enumerate(FleetSimulator(config).hours()):
        assert start == config.start + timedelta(hours=i)
        assert df["ts"].min() == start
        assert df["ts"].max() == start + timedelta(minutes=59)


def test_cadence_sets_readings_per_hour():
    config = SimulationConfig(devices=20, hours=2, cadence_seconds=300, fault_fraction=0.5)
    df = FleetSimulator(config).hour(1)
    per_device = df.groupby("device_id")["ts"]
    assert (per_device.size() <= 12).all() and per_device.size().max() == 12
    assert (per_device.diff().dropna() >= pd.Timedelta(minutes=5)).all()
    assert READINGS.validate(df).empty


# ------------------------------------------------------------------------------- contracts


def test_readings_follow_the_contract(healthy):
    assert list(healthy.columns) == READINGS.column_names
    for col in READINGS.columns:
        assert str(healthy[col.name].dtype) == col.pandas_dtype, col.name
    assert READINGS.validate(healthy).empty
    assert len(healthy) == HEALTHY.devices * HEALTHY.hours * 60
    assert healthy["device_id"].str.fullmatch(r"dev-\d{6}").all()


def test_healthy_values_stay_inside_contract_ranges(healthy):
    for name in READINGS.sensor_columns:
        lo, hi = READINGS.column(name).range
        assert healthy[name].notna().all(), name
        assert healthy[name].between(lo, hi).all(), name


def test_registry_follows_the_contract():
    sim = FleetSimulator(HEALTHY)
    registry = sim.registry()
    assert list(registry.columns) == REGISTRY.column_names
    assert REGISTRY.validate(registry).empty
    assert registry["registered"].all()
    assert set(registry["cohort"]) == set(COHORT_NAMES)
    assert registry["site_id"].nunique() == HEALTHY.n_sites
    for col in REGISTRY.columns:
        if col.default is not None:
            assert (registry[col.name] == col.default).all(), col.name
    assert set(registry["device_id"]) == set(sim.hour(0)["device_id"])


# ------------------------------------------------------------------------------- healthy physics


def test_healthy_fleet_never_trips_a_streaming_rule(healthy):
    n = HEALTHY.devices
    current = as_matrix(healthy, "current_compressor", n)
    assert current.max() < CURRENT_THRESHOLD

    rise = np.diff(as_matrix(healthy, "temperature_evaporator", n), axis=1) > EVAPORATOR_RISE
    assert not (rise[:, :-2] & rise[:, 1:-1] & rise[:, 2:]).any()

    vibration = as_matrix(healthy, "vibration_compressor", n)
    assert (vibration < VIBRATION_MULTIPLIER * vibration.mean(axis=1, keepdims=True)).all()

    # Low side never drops by the rule's fraction within 5 minutes unless the compressor switched.
    low = as_matrix(healthy, "pressure_low_side", n)
    running = current > RUNNING_ABOVE
    for lag in range(1, 6):
        steady = np.ones_like(running[:, lag:])
        for j in range(lag):
            steady &= (
                running[:, j : j + steady.shape[1]] == running[:, j + 1 : j + 1 + steady.shape[1]]
            )
        drop = 1.0 - low[:, lag:] / low[:, :-lag]
        assert drop[steady].max() < PRESSURE_DROP


def test_healthy_fleet_cycles_like_refrigeration(healthy):
    n = HEALTHY.devices
    running = as_matrix(healthy, "current_compressor", n) > RUNNING_ABOVE
    duty = running.mean(axis=1)
    assert 0.3 < np.median(duty) < 0.7
    assert ((duty > 0.2) & (duty < 0.85)).all()
    starts_per_hour = (running[:, 1:] & ~running[:, :-1]).sum(axis=1) / HEALTHY.hours
    assert 2.0 <= np.median(starts_per_hour) <= 6.0  # cycles of 10-30 minutes

    # Low-side pressure swings 15-35 % between idle and running: normal, rules must cope.
    low = as_matrix(healthy, "pressure_low_side", n)
    swing = 1.0 - np.nanmean(np.where(running, low, np.nan), 1) / np.nanmean(
        np.where(~running, low, np.nan), 1
    )
    assert 0.12 < swing.min() and swing.max() < 0.35

    # Doors open a few times per hour; defrost heats some evaporators above 0 degC.
    door = healthy["door_open"].to_numpy(dtype=bool).reshape(n, -1)
    assert 0.01 < door.mean() < 0.15
    assert (as_matrix(healthy, "temperature_evaporator", n).max(axis=1) > 0).mean() > 0.5


# ------------------------------------------------------------------------------- labels


def test_labels_cover_every_fault_type_with_sane_times(faulty):
    _, labels = faulty
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert str(labels["onset"].dtype) == "datetime64[ns, UTC]"
    # An 8-hour fleet is too short to show a missed defrost (see simulator/events.py).
    assert set(labels["fault_type"]) == set(FAULT_TYPES) - {"defrost_failure"}
    assert (labels["category"] == labels["fault_type"].map(FAULT_TYPES)).all()
    assert labels["device_id"].is_unique

    start, end = pd.Timestamp(FAULTY.start), pd.Timestamp(FAULTY.end)
    assert (labels["onset"] >= start + (end - start) / 3).all()
    assert (labels["onset"] <= end - 30 * MINUTE).all()
    assert (labels["end"] > labels["onset"]).all()
    assert (labels["end"] <= end).all()
    gradual = labels["category"] == "gradual"
    assert (labels.loc[gradual, "end"] == end).all()
    acute = labels[labels["category"] == "acute"]
    duration = acute["end"] - acute["onset"]
    assert (duration <= 60 * MINUTE).all()
    assert ((duration >= 10 * MINUTE) | (acute["end"] == end)).all()
    sensor = labels["category"] == "sensor"
    assert labels.loc[sensor, "sensor"].isin([*READINGS.sensor_columns, ALL_SENSORS]).all()
    assert labels.loc[~sensor, "sensor"].isna().all()


def test_fault_mix_follows_the_fractions():
    config = SimulationConfig(devices=600, hours=3, fault_fraction=0.06, sensor_fault_fraction=0.02)
    counts = FleetSimulator(config).labels()["fault_type"].value_counts()
    machine = [k for k, v in FAULT_TYPES.items() if v in ("gradual", "acute")]
    assert counts[machine].sum() == 36 and set(counts[machine]) == {6}
    # Operational faults: 3 % of the devices, round-robin over what 3 hours can show.
    assert counts[["door_left_open", "short_cycling"]].tolist() == [9, 9]
    assert counts[["sensor_dropout", "stuck_sensor"]].sum() == 12


def test_fault_free_fleet_has_no_labels():
    labels = FleetSimulator(SimulationConfig(devices=100, hours=2, faults=False)).labels()
    assert labels.empty and list(labels.columns) == list(LABEL_COLUMNS)


# ------------------------------------------------------------------------------- faults


def faults_of(faulty, fault_type):
    frame, labels = faulty
    rows = labels[labels["fault_type"] == fault_type]
    assert len(rows) > 0
    for row in rows.itertuples():
        yield row, device_readings(frame, row.device_id)


def test_compressor_overload_exceeds_current_threshold_at_onset(faulty):
    for row, d in faults_of(faulty, "compressor_overload"):
        during = d.loc[row.onset : row.end - MINUTE, "current_compressor"]
        assert during.iloc[0] > CURRENT_THRESHOLD + 5
        assert (during > CURRENT_THRESHOLD).all()
        assert d.loc[: row.onset - MINUTE, "current_compressor"].max() < CURRENT_THRESHOLD


def test_rapid_pressure_loss_drops_low_side_within_three_minutes(faulty):
    for row, d in faults_of(faulty, "rapid_pressure_loss"):
        before = d.loc[row.onset - MINUTE, "pressure_low_side"]
        low = d.loc[row.onset : row.end - MINUTE, "pressure_low_side"]
        assert low.iloc[:3].min() < (1 - 0.4) * before
        assert (low.iloc[3:] < (1 - 0.4) * before).all()  # and stays low


def test_total_cooling_loss_stops_compressor_and_warms_evaporator_fast(faulty):
    for row, d in faults_of(faulty, "total_cooling_loss"):
        during = d.loc[row.onset : row.end - MINUTE]
        assert (during["current_compressor"] < RUNNING_ABOVE).all()
        evaporator = d.loc[row.onset - MINUTE : row.onset + 3 * MINUTE, "temperature_evaporator"]
        assert (evaporator.diff().dropna() >= 2.5).all() and len(evaporator) == 5


def gradual_faults(faulty, fault_type, min_hours=2.0):
    """Faults of one gradual type with at least ``min_hours`` of progression, with readings
    before onset and during the last hour."""
    found = 0
    for row, d in faults_of(faulty, fault_type):
        if row.end - row.onset < pd.Timedelta(hours=min_hours):
            continue
        found += 1
        yield d.loc[: row.onset - MINUTE], d.loc[row.end - pd.Timedelta(hours=1) :]
    assert found > 0


def running(d: pd.DataFrame) -> pd.DataFrame:
    return d[d["current_compressor"] > RUNNING_ABOVE]


def test_refrigerant_leak_lowers_low_side_and_lengthens_duty(faulty):
    duty_before, duty_late = [], []
    for before, late in gradual_faults(faulty, "refrigerant_leak"):
        assert late["pressure_low_side"].mean() < 0.9 * before["pressure_low_side"].mean()
        assert (
            running(late)["pressure_low_side"].median()
            < running(before)["pressure_low_side"].median()
        )
        duty_before.append((before["current_compressor"] > RUNNING_ABOVE).mean())
        duty_late.append((late["current_compressor"] > RUNNING_ABOVE).mean())
    # Compressors run (almost) continuously, except through a defrost.
    assert np.median(duty_late) > np.median(duty_before) + 0.2


def test_condenser_fouling_raises_condenser_pressure_and_current(faulty):
    for before, late in gradual_faults(faulty, "condenser_fouling"):
        cols = READINGS.sensor_columns
        b, a = running(before)[cols].median(), running(late)[cols].median()
        assert a["temperature_condenser"] > b["temperature_condenser"] + 5
        assert a["pressure_high_side"] > 1.1 * b["pressure_high_side"]
        assert a["current_compressor"] > b["current_compressor"]


def test_bearing_wear_multiplies_running_vibration(faulty):
    for before, late in gradual_faults(faulty, "bearing_wear"):
        ratio = (
            running(late)["vibration_compressor"].median()
            / running(before)["vibration_compressor"].median()
        )
        assert 2.0 < ratio < 5.5  # on its way to 3.5-5x at full severity


def test_sensor_dropout_blanks_exactly_the_labelled_period(faulty):
    frame, labels = faulty
    for row, d in faults_of(faulty, "sensor_dropout"):
        inside = (d.index >= row.onset) & (d.index < row.end)
        if row.sensor == ALL_SENSORS:
            expected = pd.date_range(
                pd.Timestamp(FAULTY.start), periods=FAULTY.total_steps, freq="min"
            )
            missing = expected.difference(d.index)
            assert missing.equals(expected[(expected >= row.onset) & (expected < row.end)])
            assert d[READINGS.sensor_columns].notna().all().all()
        else:
            assert d.loc[inside, row.sensor].isna().all()
            assert d.loc[~inside, READINGS.sensor_columns].notna().all().all()
    # Nothing else in the fleet is missing.
    dropped = labels[labels["fault_type"] == "sensor_dropout"]
    lost = ((dropped["end"] - dropped["onset"]) / MINUTE)[dropped["sensor"] == ALL_SENSORS]
    assert len(frame) == FAULTY.devices * FAULTY.total_steps - lost.sum()


def test_stuck_sensor_repeats_one_value(faulty):
    for row, d in faults_of(faulty, "stuck_sensor"):
        inside = (d.index >= row.onset) & (d.index < row.end)
        assert d.loc[inside, row.sensor].nunique() == 1
        assert d.loc[~inside, row.sensor].diff().ne(0).iloc[1:].all()


def test_devices_without_labels_stay_healthy(faulty):
    frame, labels = faulty
    clean = frame[~frame["device_id"].isin(labels["device_id"])]
    assert clean["current_compressor"].max() < CURRENT_THRESHOLD
    assert clean[READINGS.sensor_columns].notna().all().all()


# ------------------------------------------------------------------------------- files


def test_simulate_fleet_lands_one_readable_file_per_hour(tmp_path):
    config = SimulationConfig(
        devices=60, hours=3, start=datetime(2026, 1, 1, 22, tzinfo=UTC), sensor_fault_fraction=0.5
    )
    landing = tmp_path / "landing"
    summary = simulate_fleet(
        config, landing, tmp_path / "ref" / "registry.csv", tmp_path / "ref" / "labels.parquet"
    )
    names = sorted(str(p.relative_to(landing)) for p in landing.rglob("*") if p.is_file())
    assert names == [
        "2026-01-01/readings_20260101T22.parquet",
        "2026-01-01/readings_20260101T23.parquet",
        "2026-01-02/readings_20260102T00.parquet",
    ]
    assert summary["files"] == [str(landing / name) for name in names]
    assert summary["devices"] == 60 and summary["hours"] == 3

    sim = FleetSimulator(config)
    frames = [pd.read_parquet(path) for path in summary["files"]]
    for (_, expected), got in zip(sim.hours(), frames, strict=True):
        pd.testing.assert_frame_equal(got, expected)

    labels = pd.read_parquet(tmp_path / "ref" / "labels.parquet")
    pd.testing.assert_frame_equal(labels, sim.labels())
    rows_lost = labels[labels["sensor"] == ALL_SENSORS]
    dropped = int(((rows_lost["end"] - rows_lost["onset"]) / MINUTE).sum())
    assert dropped > 0
    assert summary["rows"] == sum(len(f) for f in frames) == 60 * 3 * 60 - dropped
    assert summary["dropped_rows"] == dropped
    assert (
        summary["faults"]
        == labels["fault_type"].value_counts().reindex(list(FAULT_TYPES), fill_value=0).to_dict()
    )

    registry = pd.read_csv(tmp_path / "ref" / "registry.csv")
    assert list(registry.columns) == REGISTRY.column_names and len(registry) == 60


def test_simulate_fleet_writes_csv_with_utc_timestamps(tmp_path):
    config = SimulationConfig(devices=10, hours=1, faults=False)
    summary = simulate_fleet(
        config, tmp_path / "landing", tmp_path / "reg.parquet", tmp_path / "labels.parquet", "csv"
    )
    [path] = summary["files"]
    assert path.endswith("2026-01-01/readings_20260101T00.csv")
    raw = pd.read_csv(path)
    assert list(raw.columns) == READINGS.column_names
    assert raw["ts"].iloc[0] == "2026-01-01T00:00:00Z"
    assert len(raw) == summary["rows"] == 600
    expected = FleetSimulator(config).hour(0)
    parsed = pd.to_datetime(raw["ts"], utc=True).astype("datetime64[ns, UTC]")
    pd.testing.assert_series_equal(parsed, expected["ts"])
    np.testing.assert_allclose(raw["pressure_low_side"], expected["pressure_low_side"])
    assert pd.read_parquet(tmp_path / "reg.parquet")["registered"].all()
    assert not list(tmp_path.rglob(".*.tmp"))
    with pytest.raises(ValueError):
        simulate_fleet(config, tmp_path, tmp_path / "r.csv", tmp_path / "l.parquet", "json")
