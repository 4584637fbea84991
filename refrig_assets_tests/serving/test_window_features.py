"""The in-memory feature windows of a small request equal the feature SQL's on the same clean
rows: same windows, same flags, masks, counts and completeness, floats within the tolerance of
the feature engines' parity tests; the service uses them up to ``features.in_memory_max_rows``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import ColumnSpec, Contract, load_contract
from refrig_assets.core.duck import connect
from refrig_assets.features.windows import feature_sql
from refrig_assets.ingestion.landing.readers import FileLayout, file_select_sql
from refrig_assets.quality.rules import quality_rules
from refrig_assets.serving.inputs import (
    _column_types,
    readings_features_many,
    small_batch_features,
)
from refrig_assets.serving.small_batch import clean_rows
from refrig_assets.serving.window_features import window_features, window_frame
from refrig_assets.simulator import FleetSimulator, SimulationConfig

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
RECEIVED = START + timedelta(hours=1, minutes=2)
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}  # the Spark/DuckDB feature parity tolerance
READINGS = load_contract("sensor_readings")
BASE = {
    "temperature_evaporator": -20.0,
    "temperature_condenser": 40.0,
    "pressure_low_side": 200.0,
    "pressure_high_side": 1500.0,
    "current_compressor": 8.0,
    "vibration_compressor": 3.0,
    "ambient_temperature": 20.0,
}


def random_request(seed: int) -> pd.DataFrame:
    """A few devices' readings of one hour with gaps, missing values, values outside the
    physical range, compressor runs and stops, defrosts and unknown door states."""
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(int(rng.integers(1, 5))):
        minutes = np.sort(rng.choice(60, size=int(rng.integers(1, 61)), replace=False))
        frame = pd.DataFrame(
            {"device_id": f"dev-{d}", "ts": [START + timedelta(minutes=int(m)) for m in minutes]}
        )
        for name, value in BASE.items():
            frame[name] = np.round(value + rng.normal(0, 1, len(frame)), 3)
        stopped = rng.random(len(frame)) < rng.uniform(0, 0.8)
        frame.loc[stopped, "current_compressor"] = rng.uniform(0, 1.5, int(stopped.sum()))
        warm = stopped & (rng.random(len(frame)) < 0.5)
        frame.loc[warm, "temperature_evaporator"] = rng.uniform(4, 12, int(warm.sum()))
        frame["door_open"] = pd.array(rng.random(len(frame)) < 0.2, dtype="boolean")
        for name in [*BASE, "door_open"]:
            gone = rng.random(len(frame)) < rng.uniform(0, 0.4)
            frame.loc[gone, name] = None
        wild = rng.random(len(frame)) < 0.05
        frame.loc[wild, "pressure_high_side"] = 9999.0
        frame.loc[rng.random(len(frame)) < 0.05, "current_compressor"] = 500.0
        frames.append(frame)
    return pd.concat(frames).sample(frac=1.0, random_state=seed)  # any row order


def clean_of(frame: pd.DataFrame, registered: list[str]) -> pa.Table:
    """The request's clean rows as the service computes them (typing SQL, in-memory rules)."""
    con = connect()
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    table = table.append_column("_row", pa.array(np.arange(table.num_rows), pa.int64()))
    con.register("rows", table)
    layout = FileLayout(
        Path("request"),
        "request",
        "parquet",
        _column_types(con, table.schema, "rows"),
        "rows",
    )
    typed = con.execute(file_select_sql(layout, READINGS, RECEIVED, late=False)).to_arrow_table()
    ids = pa.table({"device_id": pa.array(registered, pa.string())})
    clean = clean_rows(typed, READINGS, ids, quality_rules())
    assert clean is not None, "the request should be one the in-memory rules cover"
    return clean


def sql_windows(clean: pa.Table, features: Contract) -> pd.DataFrame:
    con = connect()
    con.register("clean", clean)
    return (
        con.execute(feature_sql("clean", cadence_seconds=60, features=features))
        .to_arrow_table()
        .to_pandas()
    )


def memory_windows(clean: pa.Table, features: Contract, schema: pa.Schema) -> pd.DataFrame:
    columns = window_features(clean, cadence_seconds=60, features=features)
    return pa.table(columns).cast(schema).to_pandas()


def assert_same_frame(clean: pa.Table, features: Contract, schema: pa.Schema) -> None:
    """The frame built straight from the numpy windows is exactly the cast Arrow table's
    ``to_pandas`` with the bounds in UTC: same values, dtypes and time units."""
    expected = memory_windows(clean, features, schema)
    for column in ("window_start", "window_end"):
        expected[column] = expected[column].dt.tz_convert("UTC")
    found = window_frame(clean, schema, cadence_seconds=60, features=features)
    assert found is not None
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
    assert found.dtypes.to_dict() == expected.dtypes.to_dict()


def assert_same_windows(clean: pa.Table, features: Contract) -> pd.DataFrame:
    expected = sql_windows(clean, features)
    schema = pa.Table.from_pandas(expected, preserve_index=False).schema
    found = memory_windows(clean, features, schema)
    assert len(found) == len(expected) > 0
    pd.testing.assert_frame_equal(found, expected, **TOLERANCE)
    assert_same_frame(clean, features, schema)
    return found


def every_kind(features: Contract) -> Contract:
    """The device_features contract plus a derived column of every kind on every state, so
    each definition is checked whatever the shipped contract uses."""
    template = features.column("compressor_starts_per_hour")
    extra: list[ColumnSpec] = []
    for state in ("running", "idle", "defrost", "door_open"):
        for kind in ("starts", "starts_per_hour", "minutes", "mean_run_minutes"):
            extra.append(
                dataclasses.replace(
                    template,
                    name=f"x_{state}_{kind}",
                    type="int" if kind == "starts" else "float",
                    extra={"derived": {"kind": kind, "state": state}},
                )
            )
        extra.append(
            dataclasses.replace(
                template,
                name=f"x_{state}_longest",
                extra={"derived": {"kind": "longest_streak_minutes", "state": state}},
            )
        )
    extra.append(
        dataclasses.replace(
            template,
            name="x_running_difference",
            extra={
                "derived": {
                    "kind": "difference",
                    "sensor": "temperature_condenser",
                    "minus": "temperature_evaporator",
                    "condition": "running",
                }
            },
        )
    )
    return dataclasses.replace(features, columns=(*features.columns, *extra))


FEATURES = load_contract("device_features")


@pytest.mark.parametrize("seed", range(40))
def test_random_requests_give_the_feature_sql_windows(seed):
    frame = random_request(seed)
    clean = clean_of(frame, ["dev-0", "dev-2"])  # the others are unregistered
    assert_same_windows(clean, every_kind(FEATURES))


@pytest.mark.parametrize(
    "settle",
    [
        {"after_start_seconds": 0, "after_defrost_seconds": 0},
        {"after_start_seconds": 900, "after_defrost_seconds": 0},
        {"after_start_seconds": 0, "after_defrost_seconds": 1200},
        {"after_start_seconds": 960, "after_defrost_seconds": 1800},
        {"after_start_seconds": 120, "after_defrost_seconds": 2400},  # the start: < window
    ],
)
def test_the_running_settle_times_leave_out_the_same_readings(settle):
    contract = dataclasses.replace(
        FEATURES, settings={**FEATURES.settings, "running_settle": settle}
    )
    for seed in (7, 8, 9):
        assert_same_windows(clean_of(random_request(seed), ["dev-0"]), every_kind(contract))


def test_a_simulated_fleet_hour_gives_the_feature_sql_windows():
    config = SimulationConfig(devices=8, hours=1, start=START, seed=11)
    [(_, readings)] = list(FleetSimulator(config).hours())
    devices = sorted(readings["device_id"].unique())
    found = assert_same_windows(clean_of(readings, devices), every_kind(FEATURES))
    assert len(found) == 8 * 4


def test_lone_readings_and_a_device_whose_states_are_never_known():
    lone = pd.DataFrame({"device_id": ["dev-a"], "ts": [START + timedelta(minutes=7)]})
    for name, value in BASE.items():
        lone[name] = value
    lone["door_open"] = pd.array([None], dtype="boolean")
    unknown = random_request(3)
    unknown = unknown[unknown["device_id"] == "dev-0"].assign(device_id="dev-b")
    unknown["current_compressor"] = np.nan
    unknown["door_open"] = pd.array([None] * len(unknown), dtype="boolean")
    found = assert_same_windows(
        clean_of(pd.concat([lone, unknown]), ["dev-a", "dev-b"]), every_kind(FEATURES)
    )
    assert found.loc[found["device_id"] == "dev-a", "reading_count"].tolist() == [1]


def test_a_fleet_without_optional_sensors_gives_the_feature_sql_windows(monkeypatch):
    monkeypatch.setenv(
        "REFRIG_SENSORS",
        ",".join(c for c in BASE if c not in ("ambient_temperature", "current_compressor")),
    )
    frame = random_request(5).drop(columns=["ambient_temperature", "current_compressor"])
    frame = frame.drop(columns=["door_open"])
    assert_same_windows(clean_of(frame, ["dev-0"]), every_kind(FEATURES))


def test_an_unknown_definition_is_refused_like_the_feature_sql():
    odd = dataclasses.replace(
        FEATURES.column("compressor_starts_per_hour"),
        name="odd",
        extra={"derived": {"kind": "sideways", "state": "running"}},
    )
    features = dataclasses.replace(FEATURES, columns=(*FEATURES.columns, odd))
    clean = clean_of(random_request(1), ["dev-0"])
    with pytest.raises(ValueError, match="sideways"):
        window_features(clean, cadence_seconds=60, features=features)
    with pytest.raises(ValueError, match="sideways"):
        feature_sql("clean", cadence_seconds=60, features=features)


@pytest.mark.parametrize("seed", range(6))
def test_the_request_path_gives_the_same_windows_below_and_above_the_threshold(seed):
    tables = []
    for i in range(2):  # two requests of different devices, scored together
        frame = random_request(seed + 100 * i)
        frame["device_id"] = frame["device_id"] + f"-{i}"
        tables.append(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False))
    ids = pa.table({"device_id": pa.array(["dev-0-0", "dev-1-1"], pa.string())})
    by_sql = small_batch_features(connect(), tables, ids, RECEIVED, cadence_seconds=60)
    in_memory = small_batch_features(
        connect(), tables, ids, RECEIVED, cadence_seconds=60, in_memory_max_rows=10**6
    )
    assert by_sql is not None and in_memory is not None
    for mine, theirs in zip(in_memory, by_sql, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, **TOLERANCE)
    many = readings_features_many(
        connect(), tables, ids, RECEIVED, cadence_seconds=60, in_memory_max_rows=10**6
    )
    for mine, theirs in zip(many, by_sql, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, **TOLERANCE)


def test_the_request_frame_has_the_feature_sql_types_without_arrow():
    """The service's schema (DuckDB's types of the feature SQL: bigint counts that may be NULL,
    microsecond UTC bounds) gives the frame the Arrow path gives, on windows with and without
    a NULL count; a type the direct form does not build is left to the Arrow path."""
    con = connect()
    con.register("clean", clean_of(random_request(2), ["dev-0"]))
    schema = (
        con.execute(f"SELECT * FROM ({feature_sql('clean', cadence_seconds=60)}) LIMIT 0")
        .to_arrow_table()
        .schema
    )
    assert schema.field("defrost_count").type == pa.int64()
    unknown = random_request(3)
    unknown = unknown[unknown["device_id"] == "dev-0"].assign(device_id="dev-z")
    unknown["current_compressor"] = np.nan  # no state known: NULL counts
    both = pd.concat([random_request(2), unknown])
    for frame in (random_request(2), unknown, both):
        clean = clean_of(frame, ["dev-0"])
        assert_same_frame(clean, FEATURES, schema)
    nulls = window_frame(clean_of(unknown, ["dev-0"]), schema, cadence_seconds=60)
    assert nulls is not None and nulls["defrost_count"].isna().any()
    odd = schema.set(schema.get_field_index("duty_cycle"), pa.field("duty_cycle", pa.float32()))
    assert window_frame(clean_of(random_request(2), ["dev-0"]), odd, cadence_seconds=60) is None
