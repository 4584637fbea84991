"""Readings → features over a range of hours in one pass gives exactly what one run per hour
gives: the same typed readings, clean rows, quarantine rows and reasons, stuck-run tails and
feature windows, every hour recorded as its own partition with the same metadata and check
results, with a bad row, duplicated readings, readings delivered in a later hour's file and an
empty hour inside the range. The same landing files (same mtimes) run in two homes."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from refrig_assets.cli.runner import prepare_hours
from refrig_assets.core.partition_range import hour_keys
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.shared.event_log import EVENT_BATCH_SIZE, batched
from refrig_assets.defs.shared.ranges import RANGE_MODE
from refrig_assets.features.ranged import hour_groups, write_feature_range
from refrig_assets.features.windows import ORDER_ERROR

START = datetime(2026, 1, 1, tzinfo=UTC)
PREP = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]
DATASETS = [*PREP, "stuck_sensor_tails"]
HOURS = 6


def landing_zone(source, monkeypatch):
    """Three devices, six hours at 5 minutes; hour 2 has a gateway CSV with an untypable row
    and readings that repeat hour 2's, hour 3's file also carries readings of hour 1 (late),
    hour 4 has no file (an outage)."""
    from refrig_assets.simulator import SimulationConfig, simulate_fleet

    monkeypatch.setenv("REFRIG_HOME", str(source))
    monkeypatch.setenv("REFRIG_CADENCE_SECONDS", "300")
    s = get_settings()
    config = SimulationConfig(devices=3, hours=HOURS, start=START, seed=5, cadence_seconds=300)
    simulate_fleet(config, s.landing_dir, s.registry_path, s.labels_path)
    day = s.landing_dir / "2026-01-01"
    two = pd.read_parquet(day / "readings_20260101T02.parquet")
    gateway = two.head(6).astype(str)
    gateway.loc[gateway.index[1], "ts"] = "not a time"
    gateway.to_csv(day / "gateway_b_20260101T02.csv", index=False)
    one = pd.read_parquet(day / "readings_20260101T01.parquet").tail(2)
    three = day / "readings_20260101T03.parquet"
    pd.concat([pd.read_parquet(three), one], ignore_index=True).to_parquet(three)
    (day / "readings_20260101T04.parquet").unlink()


def prepare(source, home, monkeypatch, per_run: int):
    """Readings → features of the six hours as ``refrig pipeline run`` runs them."""
    from refrig_assets.definitions import defs

    shutil.copytree(source, home)
    (home / "dagster").mkdir(exist_ok=True)
    monkeypatch.setenv("REFRIG_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    keys = hour_keys(START, HOURS)
    with dg.instance_for_test() as plain:
        if per_run > 1:
            monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        instance = batched(plain) if per_run > 1 else plain
        defs.resolve_job_def("refresh_device_registry").execute_in_process(instance=instance)
        failures = prepare_hours(defs, instance, keys, per_run, print)
        metadata, checks = recorded(instance, home)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    assert failures == []
    store = ParquetStore(get_settings().data_dir)
    frames = {d: store.read_many(d, keys) for d in DATASETS}
    return frames, metadata, checks


def recorded(instance, home):
    """Each hour's materialization metadata (asset, hour) -> {key: value}, and every hourly
    check evaluation (asset, check, hour, passed, metadata; the home's path left out)."""
    materialized = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    )
    metadata = {}
    for r in materialized:
        m = r.event_log_entry.get_dagster_event().event_specific_data.materialization
        if m.partition:
            metadata[(m.asset_key.to_user_string(), m.partition)] = {
                k: v.value.replace(str(home), "HOME") if isinstance(v.value, str) else v.value
                for k, v in m.metadata.items()
            }
    evaluated = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    checks = sorted(
        (
            e.asset_key.to_user_string(),
            e.check_name,
            e.partition,
            e.passed,
            # a ranged step compares every hour's schema with the materialization before the
            # range (defs/shared/schema_checks.py), one run per hour with the hour before
            str({k: v.value for k, v in e.metadata.items() if k != "previous_fingerprint"}).replace(
                str(home), "HOME"
            ),
        )
        for e in (r.event_log_entry.get_dagster_event().event_specific_data for r in evaluated)
        if e.partition
    )
    return metadata, checks


def test_features_of_a_range_in_one_pass_equal_one_run_per_hour(tmp_path, monkeypatch):
    landing_zone(tmp_path / "source", monkeypatch)

    per_hour, per_hour_meta, per_hour_checks = prepare(
        tmp_path / "source", tmp_path / "a", monkeypatch, 1
    )
    ranged, ranged_meta, ranged_checks = prepare(
        tmp_path / "source", tmp_path / "b", monkeypatch, HOURS
    )

    for dataset in DATASETS:
        pd.testing.assert_frame_equal(ranged[dataset], per_hour[dataset], obj=dataset)
    assert ranged_checks == per_hour_checks
    assert set(ranged_meta) == set(per_hour_meta)
    modes = {}
    for (asset, hour), meta in ranged_meta.items():
        if RANGE_MODE in meta:
            modes[asset, hour] = meta.pop(RANGE_MODE)
        expected = per_hour_meta[asset, hour]
        assert meta.keys() == expected.keys(), (asset, hour)
        for k, v in meta.items():
            if isinstance(v, float):
                assert v == pytest.approx(expected[k]), (asset, hour, k)
            else:
                assert v == expected[k], (asset, hour, k)
    hours = hour_keys(START, HOURS)
    checked_at_once = f"hours in order; contract checks over {HOURS} hours at once"
    # hour 2's repeated readings fail its sensor_readings check (a warning): so do the hours
    # together, and each hour is checked alone
    checked_alone = (
        "hours in order; contract checks hour by hour: the check of the hours together failed"
    )
    assert modes == {
        **{("sensor_readings", k): checked_alone for k in hours},
        **{("device_features", k): f"one pass over {HOURS} hours" for k in hours},
        **{("clean_readings", k): checked_at_once for k in hours},
        **{("quarantined_readings", k): checked_at_once for k in hours},
    }
    quarantine = per_hour["quarantined_readings"]
    assert quarantine["rule"].nunique() >= 2  # the untypable row and the duplicated readings
    features = per_hour["device_features"]
    assert not features.empty
    assert features[features["window_start"].dt.hour == 4].empty  # the outage hour


def test_hours_are_grouped_to_fit_the_memory_budget_in_order():
    rows = {"h0": 5, "h1": 5, "h2": 20, "h3": 1, "h4": 0}
    assert hour_groups(rows, 10) == [["h0", "h1"], ["h2"], ["h3", "h4"]]
    assert hour_groups({}, 10) == []


def clean_file(path, devices: list[str], hour: int = 0):
    """A clean_readings file of the given devices' rows (5 minutes apart), every contract column
    filled with a value of its type."""
    from refrig_assets.core.contracts import load_contract

    ts = pd.date_range(f"2026-01-01 {hour:02d}:00", periods=len(devices), freq="5min", tz="UTC")
    rows = pd.DataFrame({"device_id": devices, "ts": ts})
    for c in load_contract("clean_readings").columns:
        if c.name not in rows:
            rows[c.name] = {"float": 1.0, "int": 0, "bool": False, "string": "x"}.get(c.type)
    rows.to_parquet(path)
    return rows


def test_readings_out_of_order_are_computed_hour_by_hour_as_the_hourly_step_does(tmp_path):
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.engines.embedded import write_features

    clean = tmp_path / "clean.parquet"
    clean_file(clean, ["b", "a", "b", "a"])
    key = "2026-01-01-00:00"

    [hour] = write_feature_range(
        {key: clean}, ParquetStore(tmp_path / "range"), load_contract("device_features"), 0.0
    )
    expected = write_features(clean, ParquetStore(tmp_path / "hourly"), key)

    assert hour.mode == f"hour by hour: {ORDER_ERROR}"
    pd.testing.assert_frame_equal(pd.read_parquet(hour.path), pd.read_parquet(expected))
    assert len(pd.read_parquet(hour.path)) > 0


def test_hours_whose_clean_files_differ_in_types_are_computed_hour_by_hour(tmp_path):
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.engines.embedded import write_features

    first, second = tmp_path / "h0.parquet", tmp_path / "h1.parquet"
    clean_file(first, ["a", "a", "b"])
    rows = clean_file(second, ["a", "b", "b"], hour=1)
    floats = [c.name for c in load_contract("clean_readings").columns if c.type == "float"]
    rows.astype({floats[0]: "float32"}).to_parquet(second)  # another writer's float type
    sources = {"2026-01-01-00:00": first, "2026-01-01-01:00": second}

    hours = list(
        write_feature_range(
            sources, ParquetStore(tmp_path / "range"), load_contract("device_features"), 0.0
        )
    )

    assert [h.mode for h in hours] == [
        "hour by hour: the hours' clean readings differ in columns or types"
    ] * 2
    for hour in hours:
        expected = write_features(sources[hour.key], ParquetStore(tmp_path / "hourly"), hour.key)
        pd.testing.assert_frame_equal(pd.read_parquet(hour.path), pd.read_parquet(expected))


def checks_of_hours(tmp_path, hours):
    """range_contract_checks of ``hours`` ((clean file, quarantine rows)) and each hour's
    hour_contract_checks alone."""
    from refrig_assets.core.duck import connect
    from refrig_assets.defs.quality.assets import hour_contract_checks, range_contract_checks

    with connect() as con:
        together = range_contract_checks(con, hours)
        alone = [hour_contract_checks(con, path, q) for path, q in hours]
    return together, alone


def quarantined(source_file: str, rows: list[int]):
    from refrig_assets.quality.rules import quarantine_frame

    return quarantine_frame(
        [
            {
                "source_file": source_file,
                "row": r,
                "column": "ts",
                "rule": "unparsable_value",
                "value": "x",
                "message": "not a time",
                "device_id": "a",
                "ts": None,
            }
            for r in rows
        ]
    )


def test_contract_checks_of_a_range_equal_each_hour_checked_alone(tmp_path):
    first, second = tmp_path / "h0.parquet", tmp_path / "h1.parquet"
    clean_file(first, ["a", "a", "b"])
    clean_file(second, ["a", "b", "b"], hour=1)
    hours = [(first, quarantined("f0.csv", [3])), (second, quarantined("f1.csv", [1, 2]))]

    together, alone = checks_of_hours(tmp_path, hours)

    assert [checks for checks, _ in together] == alone
    assert all(c.passed for checks in alone for c in checks)
    assert {mode for _, mode in together} == {
        "hours in order; contract checks over 2 hours at once"
    }


def test_a_key_repeated_in_two_hours_fails_neither_hour_when_each_is_checked_alone(tmp_path):
    """Each hour's clean key and the quarantine key (file, row, rule) are unique within the
    hour: the same ones in two hours fail the hours together, so each is checked alone."""
    first, second = tmp_path / "h0.parquet", tmp_path / "h1.parquet"
    clean_file(first, ["a", "b"])
    clean_file(second, ["a", "b"])  # the same (device_id, ts) as the first hour
    hours = [(first, quarantined("f.csv", [1])), (second, quarantined("f.csv", [1]))]

    together, alone = checks_of_hours(tmp_path, hours)

    assert [checks for checks, _ in together] == alone
    assert all(c.passed for checks in alone for c in checks)
    assert {mode for _, mode in together} == {
        "hours in order; contract checks hour by hour: the check of the hours together failed"
    }


def test_a_failing_hour_of_a_range_fails_alone_with_its_own_findings(tmp_path):
    from refrig_assets.core.contracts import load_contract

    first, second = tmp_path / "h0.parquet", tmp_path / "h1.parquet"
    clean_file(first, ["a", "b"])
    rows = clean_file(second, ["a", "b"], hour=1)
    required = next(c.name for c in load_contract("clean_readings").columns if not c.nullable)
    rows.loc[1, required] = None
    rows.to_parquet(second)
    hours = [(first, quarantined("f0.csv", [])), (second, quarantined("f1.csv", [4]))]

    together, alone = checks_of_hours(tmp_path, hours)

    assert [checks for checks, _ in together] == alone
    assert alone[0][0].passed and not alone[1][0].passed
    assert alone[1][0].metadata["failures"].value == 1


def test_a_range_body_records_the_hours_written_before_one_that_raises_then_fails():
    from refrig_assets.defs.shared.ranges import written_in_groups

    def write(key: str) -> str:
        if key == "h2":
            raise OSError("landing zone gone")
        return key

    given: list[str] = []
    hours = written_in_groups(
        ["h0", "h1", "h2", "h3"],
        write,
        lambda hour: 1,
        lambda group: ((hour, []) for hour in group),
    )
    with pytest.raises(OSError, match="landing zone gone"):
        for key, _ in hours:
            given.append(key)

    assert given == ["h0", "h1"]


def test_a_range_body_gives_each_group_of_hours_once_its_rows_fill_the_memory_budget():
    from refrig_assets.defs.shared import ranges
    from refrig_assets.engines.memory import load_memory_budget

    budget = load_memory_budget()
    one_shard = budget.memory_budget_mb * 2**20 // budget.reading_bytes  # readings
    rows = {"h0": one_shard - 10, "h1": 1000, "h2": 10, "h3": 10}
    groups: list[list[str]] = []

    def results(group):
        groups.append(list(group))
        return ((hour, []) for hour in group)

    given = [k for k, _ in ranges.written_in_groups(list(rows), str, rows.__getitem__, results)]

    assert given == list(rows)
    assert groups == [["h0", "h1"], ["h2", "h3"]]
