"""The in-memory typing of a small request gives exactly the landing reader's typing SQL rows,
and every request it does not type exactly (other time forms, text numbers, broken text limits,
implausible times, missing keys, column problems) is left to the SQL, which names the same
violations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.serving import inputs
from refrig_assets.serving import typed_rows as typed_rows_module
from refrig_assets.serving.inputs import (
    RequestRejected,
    readings_features_many,
    table_from_records,
)
from refrig_assets.serving.typed_rows import remember_schema, typed_rows

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
RECEIVED = START + timedelta(hours=1, minutes=2, microseconds=123457)
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


def iso(moment: datetime, rng: np.random.Generator) -> str:
    """A reading time as a gateway may write it: Z, an offset, no zone, fractions."""
    form = int(rng.integers(0, 5))
    if form == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1:
        return moment.replace(tzinfo=None).isoformat()
    if form == 2:
        shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
        return shifted.isoformat()
    if form == 3:
        return (moment + timedelta(microseconds=int(rng.integers(0, 10**6)))).isoformat()
    return moment.astimezone(timezone(timedelta(hours=-3))).isoformat()


def records(seed: int, device: str = "dev-0") -> list[dict]:
    """One device's hour of JSON readings with missing values, int-valued floats, NaN, bools
    and several time forms."""
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.choice(60, size=int(rng.integers(2, 61)), replace=False))
    rows = []
    whole = rng.random() < 0.3  # a column of integers only (JSON 8, not 8.0)
    for m in minutes:
        row: dict = {"device_id": device, "ts": iso(START + timedelta(minutes=int(m)), rng)}
        for name, value in BASE.items():
            v = value + rng.normal(0, 1)
            row[name] = round(v) if whole and name == "vibration_compressor" else round(v, 3)
            if rng.random() < 0.1:
                row[name] = None
        if rng.random() < 0.05:
            row["pressure_low_side"] = float("nan")
        row["door_open"] = bool(rng.random() < 0.2) if rng.random() < 0.9 else None
        rows.append(row)
    return rows


def sql_typed(tables: list[pa.Table], rels: list[str]) -> pa.Table | None:
    return inputs._typed_by_sql(connect(), tables, rels, READINGS, RECEIVED)


def memory_typed(tables: list[pa.Table], rels: list[str]) -> pa.Table | None:
    known = [inputs._COLUMN_TYPES.get(t.schema.append(inputs._ROW)) for t in tables]
    return typed_rows(connect(), tables, rels, known, READINGS, RECEIVED)


def held_to_sql(tables: list[pa.Table]) -> pa.Table | None:
    """The in-memory rows, asserted equal to the SQL's when it gives any."""
    rels = ["request"] if len(tables) == 1 else [f"request-{i}" for i in range(len(tables))]
    expected = sql_typed(tables, rels)  # also learns the column types and the typed schema
    if expected is not None:
        remember_schema(READINGS, expected.schema)
    found = memory_typed(tables, rels)
    if found is not None:
        assert expected is not None
        assert found.schema == expected.schema
        assert found.equals(expected), (found.to_pandas(), expected.to_pandas())
    return found


@pytest.mark.parametrize("seed", range(30))
def test_gateway_requests_are_typed_exactly_as_the_typing_sql_types_them(seed):
    tables = [
        table_from_records(records(seed + 1000 * i, f"dev-{i}"), "sensor_readings")
        for i in range(1 + seed % 3)
    ]
    assert held_to_sql(tables) is not None


def test_parquet_bodies_with_native_types_are_typed_exactly():
    frame = pd.DataFrame(records(7))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    # nanoseconds (pandas' own unit) are left to the SQL; microseconds are typed here
    assert held_to_sql([pa.Table.from_pandas(frame, preserve_index=False)]) is None
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    frame["door_open"] = frame["door_open"].map({True: 1, False: 0, None: None}).astype("Int64")
    frame["temperature_condenser"] = frame["temperature_condenser"].astype("float32")
    assert held_to_sql([pa.Table.from_pandas(frame, preserve_index=False)]) is not None


BREAKS = {
    "text time with spaces": lambda r: r[0].update(ts=" " + r[0]["ts"]),
    "time with a newline": lambda r: r[0].update(ts=r[0]["ts"] + "\n"),
    "no such day": lambda r: r[0].update(ts="2026-02-30T10:00:00Z"),
    "date only": lambda r: r[0].update(ts="2026-03-02"),
    "nanoseconds": lambda r: r[0].update(ts="2026-03-02T10:00:00.123456789Z"),
    "compact offset": lambda r: r[0].update(ts="2026-03-02T10:00:00+0100"),
    "implausibly early": lambda r: r[0].update(ts="2019-03-02T10:00:00Z"),
    "far future": lambda r: r[0].update(ts="2026-03-05T10:00:00Z"),
    "no time": lambda r: r[0].update(ts=None),
    "no device": lambda r: r[0].update(device_id=None),
    "device id with a space": lambda r: r[0].update(device_id="dev 0"),
    "device id too long": lambda r: r[0].update(device_id="d" * 65),
    "device id not ascii": lambda r: r[0].update(device_id="dév-0"),
    "number as text": lambda r: r[0].update(temperature_condenser="41.5"),
    "unparsable number": lambda r: r[0].update(temperature_condenser="warm"),
    "door as 2": lambda r: [x.update(door_open=2 if i == 0 else 1) for i, x in enumerate(r)],
    "door as text": lambda r: r[0].update(door_open="yes"),
    "float as bool": lambda r: [x.update(ambient_temperature=True) for x in r],
    "no ts column": lambda r: [x.pop("ts") for x in r],
    "extra column": lambda r: r[0].update(firmware="1.2"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_what_the_typing_sql_judges_is_left_to_it_and_answered_the_same(case):
    rows = records(3)
    BREAKS[case](rows)
    request = table_from_records(json.loads(json.dumps(rows)), "sensor_readings")
    held_to_sql([request])
    ids = pa.table({"device_id": pa.array(["dev-0"], pa.string())})

    def answer(max_rows: int):
        [found] = readings_features_many(
            connect(), [request], ids, RECEIVED, cadence_seconds=60, in_memory_max_rows=max_rows
        )
        if isinstance(found, RequestRejected):
            return [v.as_dict() for v in found.violations]
        return found

    by_sql, in_memory = answer(0), answer(10**6)
    if isinstance(by_sql, list):
        assert in_memory == by_sql
    else:
        pd.testing.assert_frame_equal(in_memory, by_sql, rtol=1e-9, atol=1e-9)


def test_broken_rows_are_never_typed_in_memory():
    for case in ("no such day", "implausibly early", "device id too long", "unparsable number"):
        rows = records(5)
        BREAKS[case](rows)
        assert held_to_sql([table_from_records(rows, "sensor_readings")]) is None, case


def test_a_request_path_with_in_memory_typing_gives_the_sql_typings_windows(monkeypatch):
    tables = [table_from_records(records(11 + i, f"dev-{i}"), "sensor_readings") for i in range(3)]
    ids = pa.table({"device_id": pa.array(["dev-0", "dev-1"], pa.string())})  # dev-2 unknown
    held_to_sql(tables)
    fast = readings_features_many(
        connect(), tables, ids, RECEIVED, cadence_seconds=60, in_memory_max_rows=10**6
    )
    monkeypatch.setattr(inputs, "typed_rows", lambda *a: None)
    slow = readings_features_many(
        connect(), tables, ids, RECEIVED, cadence_seconds=60, in_memory_max_rows=10**6
    )
    for mine, theirs in zip(fast, slow, strict=True):
        assert isinstance(mine, pd.DataFrame) and len(mine) > 0
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


def test_registered_ids_are_judged_once_by_the_typing_sqls_own_predicate():
    valid = ["reg-primed-0", "reg-primed.1:a", "R9_primed", "reg primed 2"]
    broken = ["d" * 65, "dév-primed", "-reg-primed", "reg primed 2"]
    registered = pa.table({"device_id": pa.array(valid + broken + [None], pa.string())})
    [device_id] = [c for c in READINGS.columns if c.name == "device_id"]
    con = connect()
    alone = {v: typed_rows_module._within_limits(connect(), device_id, [v]) for v in valid + broken}
    typed_rows_module.remember_registered_text(con, READINGS, registered)
    for value, within in alone.items():
        if within:  # remembered: judged without a connection
            assert typed_rows_module._within_limits(None, device_id, [value])
        else:  # never remembered: asked again, and refused again
            assert not typed_rows_module._within_limits(connect(), device_id, [value])
    assert sorted(v for v, ok in alone.items() if ok) == [
        "R9_primed",
        "reg-primed-0",
        "reg-primed.1:a",
    ]


def test_a_registered_device_with_a_broken_id_is_still_left_to_the_sql():
    rows = records(9, device="dev primed")  # a space: outside the contract's pattern
    request = table_from_records(rows, "sensor_readings")
    typed_rows_module.remember_registered_text(
        connect(), READINGS, pa.table({"device_id": pa.array(["dev primed"], pa.string())})
    )
    assert held_to_sql([request]) is None


@pytest.mark.parametrize("seed", range(6))
def test_requests_of_one_schema_typed_together_give_the_sql_rows(seed):
    tables = [
        table_from_records(records(seed, f"dev-{i}"), "sensor_readings") for i in range(2 + seed)
    ]
    assert all(t.schema == tables[0].schema for t in tables)  # typed as one table
    found = held_to_sql(tables)
    assert found is not None
    assert found.column("source_file").to_pylist() == [
        f"request-{i}" for i, t in enumerate(tables) for _ in range(t.num_rows)
    ]


def test_one_broken_request_of_a_shared_schema_leaves_all_to_the_sql():
    tables = [table_from_records(records(4, f"dev-{i}"), "sensor_readings") for i in range(3)]
    broken = records(4, "dev 3")  # the same schema, an id outside the contract's pattern
    tables.append(table_from_records(broken, "sensor_readings"))
    assert tables[-1].schema == tables[0].schema
    assert held_to_sql(tables) is None


TIME_TEXTS = [
    "2026-03-02T10:00:00Z",
    "2026-03-02T10:00:00",
    "2026-03-02T10:00:00.5+05:30",
    "2026-03-02T10:00:00.123456-03:00",
    "2026-03-02T23:59:59.000001+23:59",
    "2024-02-29T00:00:00-00:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59.9Z",
    "2026-02-30T10:00:00Z",  # no such day
    "2025-02-29T10:00:00Z",  # not a leap year
    "2026-03-02T10:00:00\n",
    "2026-03-02T10:00:00Z\n",
    " 2026-03-02T10:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T10:00:60Z",
    "2026-03-02T10:00:00.1234567Z",
    "2026-03-02T10:00:00+0100",
    "2026-03-02T10:00:00+24:00",
    "2026-03-02 10:00:00Z",
    "２０２６-03-02T10:00:00Z",  # digits that are not ASCII
    "2026-03-02T10:00:00z",
]


@pytest.mark.parametrize("text", TIME_TEXTS)
def test_reading_times_typed_by_arrow_are_the_loops_or_left_to_it(text):
    rng = np.random.default_rng(len(text))
    good = [iso(START + timedelta(minutes=int(m)), rng) for m in rng.integers(0, 600, 20)]
    for values in ([text], [*good, text], good):
        chunks = [pa.array(values[:3], pa.string()), pa.array(values[3:], pa.string())]
        column = pa.chunked_array(chunks)
        by_loop = typed_rows_module._micros_of_text(column)
        by_arrow = typed_rows_module._micros_of_text_arrow(column)
        if by_arrow is not None:
            assert by_loop is not None, values
            np.testing.assert_array_equal(by_arrow, by_loop)
        elif values is good:
            raise AssertionError("the gateway forms are typed by Arrow")
