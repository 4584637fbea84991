"""Contracts are the single source of truth, and they reject rows that break them."""

import duckdb
import pandas as pd
import pytest

from refrig_assets.core.contract_sql import repeated_keys, sql_violations
from refrig_assets.core.contracts import (
    ContractError,
    all_contracts,
    load_contract,
    quality_flag_names,
)

DATASETS = {
    "sensor_readings",
    "clean_readings",
    "device_features",
    "device_registry",
    "model_scores",
    "device_alerts",
    "quarantined_readings",
}


def test_every_dataset_has_a_contract_that_loads_into_pandera():
    contracts = all_contracts()
    assert DATASETS <= set(contracts)
    for contract in contracts.values():
        schema = contract.pandera_schema()
        assert list(schema.columns) == contract.column_names
        assert contract.freshness_sla_minutes > 0


def test_sensor_columns_come_from_the_contract_roles():
    readings = load_contract("sensor_readings")
    assert readings.sensor_columns[:2] == ["temperature_evaporator", "temperature_condenser"]
    assert "door_open" not in readings.sensor_columns
    assert readings.column("pressure_low_side").unit == "kPa"


def test_feature_columns_are_generated_per_sensor_and_statistic():
    features = load_contract("device_features").column_names
    for sensor in load_contract("sensor_readings").sensor_columns:
        for stat in ("mean", "std", "min", "max", "last", "slope"):
            assert f"{sensor}_{stat}" in features
        assert f"{sensor}_running_mean" in features


def test_clean_readings_inherit_the_reading_columns_and_add_flags():
    clean = load_contract("clean_readings")
    assert (
        clean.column_names[: len(load_contract("sensor_readings").columns)]
        == load_contract("sensor_readings").column_names
    )
    assert quality_flag_names()[0] == "SENSOR_DROPOUT"


def _readings(**overrides):
    row = {
        "device_id": "dev-1",
        "ts": pd.Timestamp("2026-01-01T00:00Z"),
        "temperature_evaporator": -20.0,
        "temperature_condenser": 35.0,
        "pressure_low_side": 250.0,
        "pressure_high_side": 1500.0,
        "current_compressor": 9.0,
        "vibration_compressor": 2.5,
        "ambient_temperature": 21.0,
        "door_open": False,
    }
    row.update(overrides)
    df = pd.DataFrame([row])
    df["door_open"] = df["door_open"].astype("boolean")
    return df


def test_a_conforming_row_passes():
    assert load_contract("sensor_readings").validate(_readings()).empty


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("pressure_low_side", -5.0, "in_range"),
        ("temperature_evaporator", 400.0, "in_range"),
        ("device_id", None, "not_nullable"),
    ],
)
def test_a_row_breaking_the_contract_is_reported_with_its_column(column, value, check):
    failures = load_contract("sensor_readings").validate(_readings(**{column: value}))
    assert column in set(failures["column"])
    assert failures["check"].astype(str).str.contains(check).any()


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("pressure_low_side", -5.0, "in_range"),
        ("temperature_evaporator", 400.0, "in_range"),
        ("device_id", None, "not_nullable"),
    ],
)
def test_the_sql_check_reports_the_same_breaks_with_a_count_and_an_example(column, value, check):
    con = duckdb.connect()
    rows = pd.concat([_readings(), _readings(**{column: value}), _readings(**{column: value})])
    rows["ts"] = rows["ts"] + pd.to_timedelta(range(3), unit="min")
    con.register("readings", rows)
    failures = sql_violations(con, "readings", load_contract("sensor_readings"))
    row = failures.set_index("column").loc[column]
    assert row["check"].startswith(check)
    assert row["failures"] == 2
    assert row["example"] == (None if value is None else str(value))


def test_the_sql_check_passes_a_conforming_relation_and_finds_a_repeated_key():
    con = duckdb.connect()
    con.register("readings", _readings())
    assert sql_violations(con, "readings", load_contract("sensor_readings")).empty
    con.register("twice", pd.concat([_readings(), _readings()]))
    failures = sql_violations(con, "twice", load_contract("sensor_readings"))
    assert failures[["check", "failures"]].values.tolist() == [["unique_key", 1]]


def test_a_malformed_contract_file_is_refused(tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "dataset: broken\ncolumns:\n  - {name: x, type: complex}\n"
    )
    with pytest.raises(ContractError, match="unknown type"):
        load_contract("broken", tmp_path)


def test_the_schema_fingerprint_changes_only_with_columns():
    a = load_contract("model_scores")
    assert a.schema_fingerprint == load_contract("model_scores").schema_fingerprint
    assert a.schema_fingerprint != load_contract("device_alerts").schema_fingerprint


@pytest.mark.parametrize(
    ("keys", "repeated"),
    [
        (["a", "b", "c", "d"], 0),  # sorted, unique: one ordered pass
        (["a", "b", "b", "c"], 1),  # sorted, a repeat next to itself
        (["c", "a", "d", "a"], 1),  # out of order, the repeat far apart
        (["d", "c", "b", "a"], 0),  # out of order, unique
        (["a", None, "b", None], 1),  # NULL keys repeat like any value
    ],
)
def test_repeated_keys_are_counted_whatever_the_row_order(keys, repeated):
    con = duckdb.connect()
    con.register("rows", pd.DataFrame({"device_id": keys, "n": range(len(keys))}))
    assert repeated_keys(con, "rows", ["device_id"]) == repeated


@pytest.mark.parametrize(
    "rows",
    [
        [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("d", 1), ("d", 2), ("e", 1)],
        [("a", 1), ("a", 2), ("b", 1), ("b", 1), ("c", 1), ("d", 1), ("d", 2), ("e", 1)],
        [("a", 1), ("a", 2), ("b", 2), ("b", 1), ("c", 1), ("d", 1), ("d", 2), ("d", 2)],
        [("a", 2), ("a", 1), ("b", 1), ("c", 1), ("c", 3), ("c", 2), ("d", 1), ("e", 1)],
        [("a", 1), ("a", 2), ("a", 1), ("b", 1), ("c", 1), ("c", 2), ("c", 1), ("e", 1)],
    ],
    ids=["sorted", "repeat-next-to-itself", "repeat-at-the-end", "unsorted-unique", "far-apart"],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_repeated_keys_of_a_file_sorted_by_device_are_counted_in_device_ranges(
    rows, threads, tmp_path
):
    """A file sorted by device id in several row groups is checked in device ranges side by
    side: the count is the same as the whole file's, repeats next to each other or not."""
    from refrig_assets.core.device_ranges import device_cuts

    frame = pd.DataFrame(rows, columns=["device_id", "ts"])
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, index=False, row_group_size=2)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"CREATE VIEW keyed AS SELECT * FROM read_parquet('{path}')")
    assert bool(device_cuts(path, threads, nulls=True)) == (threads > 1)  # really in ranges
    repeated = int(frame.duplicated(keep=False).groupby([frame.device_id, frame.ts]).any().sum())
    assert repeated_keys(con, "keyed", ["device_id", "ts"]) == repeated
