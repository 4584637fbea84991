"""The per-device kit pass of ingestion reads only the columns with a null in the hour's file
(its footer says which) and may run on the ingesting connection: each device's measurements
are the ones a grouped pass over every column finds, whatever the columns' nulls."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect
from refrig_assets.core.fleet_sensors import _reported_by, measurement_columns
from refrig_assets.core.reported_measurements import columns_with_nulls

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]


def hour_file(path, seed: int, complete: set[str], absent: set[str] = frozenset()):
    """A typed hour of 40 devices, 5 rows each, in small row groups: measurements of
    ``complete`` never null, those of ``absent`` left out of the file, the others null at
    random (some devices never report some of them, others now and then)."""
    rng = random.Random(seed)
    devices = [f"dev-{i:03d}" for i in range(40)]
    columns: dict[str, pa.Array] = {}
    rows = [d for d in devices for _ in range(5)]
    columns["device_id"] = pa.array(rows, pa.string())
    for name in EVERY:
        if name in absent:
            continue
        kind = pa.bool_() if name == "door_open" else pa.float64()
        lacks = {d for d in devices if name not in complete and rng.random() < 0.2}
        values = []
        for d in rows:
            missing = d in lacks or (name not in complete and rng.random() < 0.1)
            values.append(None if missing else (True if kind == pa.bool_() else rng.random()))
        columns[name] = pa.array(values, kind)
    pq.write_table(pa.table(columns), path, row_group_size=37)
    return path


def every_column_pass(path, lacking: set[str], named: list[str]) -> dict[str, set[str]]:
    """The grouped pass over every measurement column of the file, as it read before."""
    table = pq.read_table(path).to_pandas()
    present = [n for n in EVERY if n in table.columns]
    out = {}
    for device, rows in table.groupby("device_id"):
        has = {n for n in present if rows[n].notna().any()}
        if (
            lacking - set(present)
            or any(n in lacking and n not in has for n in present)
            or device in named
        ):
            out[device] = has
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "complete, absent",
    [
        (set(), set()),
        ({"door_open", "temperature_evaporator"}, set()),
        (set(EVERY), set()),
        ({"door_open"}, {"vibration_compressor"}),
    ],
)
def test_the_pass_over_the_holed_columns_finds_what_every_column_gives(
    tmp_path, seed, complete, absent
):
    path = hour_file(tmp_path / "h.parquet", seed, complete, absent)
    holed = columns_with_nulls(path, EVERY)
    assert not set(holed) & complete  # the footer proves those columns complete
    fleet = set(EVERY)
    named = ["dev-003", "dev-017", "dev-999"]
    for lacking, names in [(fleet, []), (fleet, named), (set(), named), (fleet - absent, named)]:
        expected = every_column_pass(path, lacking, names)
        assert _reported_by(path, EVERY, lacking, names, holed) == expected
        with connect() as con:  # on a cursor of the caller's connection: the same
            assert _reported_by(path, EVERY, lacking, names, holed, con) == expected


def test_a_fleet_of_many_kits_is_passed_within_the_memory_budget(tmp_path):
    """The devices already named in the record (a cohort of 30K devices without pressure
    transmitters) are matched by a join: a membership test of 30K literal ids ran out of a
    256 MB limit on an hour of 200 readings."""
    path = hour_file(tmp_path / "h.parquet", 1, set())
    named = [f"dev-{i:06d}" for i in range(30_000)] + ["dev-003", "dev-017"]
    with connect() as con:
        con.execute("SET memory_limit = '256MB'")
        got = _reported_by(path, EVERY, set(EVERY), named, columns_with_nulls(path, EVERY), con)
    assert got == every_column_pass(path, set(EVERY), named)
    assert {"dev-003", "dev-017"} <= set(got)
