"""The quality step in device shards gives the same partitions as in one piece.

A small simulated fleet with sensor faults, plus hand-made trouble (an unregistered device,
duplicated deliveries, a row without a device, a stuck sensor that carries across the hour,
a CSV with unparsable values), is cleaned hour after hour with 1, 2, 3 and more shards than
devices: clean rows, quarantine rows, stuck-run tails and every count must be the same.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.quality_helpers import CONTRACT, arrived_in_hour, good_rows

from refrig_assets.core.device_ranges import device_cuts
from refrig_assets.core.duck import connect
from refrig_assets.core.fleet_sensors import fleet_sensor_columns
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.memory import load_memory_budget
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.rules import _nan_storm_files_of, clean_hour, file_findings
from refrig_assets.quality.shards import clean_hour_in_shards, shard_bounds
from refrig_assets.simulator import FleetSimulator, SimulationConfig
from refrig_assets.simulator.writer import readings_path, write_frame

START = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00"]
TAILS = "stuck_sensor_tails"


@pytest.fixture(scope="module")
def hours(tmp_path_factory) -> tuple[ParquetStore, pa.Table]:
    """Two hours of typed readings (sensor_readings partitions) and the registered devices."""
    root = tmp_path_factory.mktemp("shards")
    landing = root / "landing"
    config = SimulationConfig(devices=24, hours=2, seed=7, sensor_fault_fraction=0.3)
    sim = FleetSimulator(config)
    for h in range(2):
        frame = sim.hour(h)
        if h == 0:  # delivered twice: duplicates to quarantine, a DUPLICATE flag on the kept one
            frame = pd.concat([frame, frame[frame["device_id"] == frame["device_id"].iloc[0]]])
        write_frame(frame, readings_path(landing, config.start + timedelta(hours=h), "parquet"))
    # a device missing from the registry whose evaporator is stuck from 00:05 to 01:50
    stuck = good_rows(n=110, device="zz-unregistered", start_minute=0)
    stuck.loc[5:, "temperature_evaporator"] = 4.25
    for h in range(2):
        part = stuck[(stuck["ts"] >= START + timedelta(hours=h))]
        part = part[part["ts"] < START + timedelta(hours=h + 1)]
        part.to_parquet(landing / f"extra-{h}.parquet", index=False)
    # a CSV with a row without a device and a value that is not a number
    broken = good_rows(n=3, device="dev-000001", start_minute=10).astype({"device_id": object})
    broken["ts"] = broken["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    broken = broken.astype(str)
    broken.loc[0, "device_id"] = ""
    broken.loc[1, "temperature_evaporator"] = "not-a-number"
    bad = landing / "broken.csv"
    broken.to_csv(bad, index=False)
    arrived_in_hour(bad)
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


def clean_two_hours(hours, root: Path, shards: int):
    """Both hours cleaned with ``shards`` shards, the second continuing the first's tails."""
    source, registered = hours
    paths = [source.path("sensor_readings", key) for key in KEYS]
    return clean_hours(paths, registered, ParquetStore(root / f"shards-{shards}"), shards)


def clean_hours(
    paths: list[Path], registered, out: ParquetStore, shards: int, ranges=None, shared=None
):
    """The typed hours at ``paths`` (one per key of KEYS) cleaned into ``out`` with ``shards``
    shards (and ``ranges`` device ranges), each hour continuing the previous one's tails, each
    on a connection of its own (or all on the ``shared`` one, left open)."""
    results = []
    for i, (key, path) in enumerate(zip(KEYS, paths, strict=True)):
        con = shared or connect()
        try:
            _, result = clean_hour_in_shards(
                con,
                out,
                key,
                path,
                CONTRACT,
                registered,
                previous_tails=out.path(TAILS, KEYS[0]) if i else None,
                shards=shards,
                ranges=ranges,
                tails_dataset=TAILS,
            )
        finally:
            if shared is None:
                con.close()
        results.append(result)
    return out, results


def rows(path: Path) -> pa.Table:
    """A partition's rows, columns and types, in file order (a writer's not-null markers aside)."""
    table = pq.read_table(path)
    schema = pa.schema([f.with_nullable(True) for f in table.schema])
    return table.cast(schema).combine_chunks()


def summary(result) -> dict:
    return {
        "rows": (result.rows_read, result.rows_clean, result.rows_quarantined),
        "files": result.files,
        "rejected": result.rejected_files,
        "notices": result.notices,
        "flags": result.flag_counts,
        "sensor_flags": result.sensor_flag_counts,
        "completeness": result.completeness,
        "storms": result.nan_storm_files,
    }


def test_every_shard_count_gives_the_same_partitions(hours, tmp_path):
    one, one_results = clean_two_hours(hours, tmp_path, 1)
    flags = one_results[0].flag_counts
    # the fixture really exercises the per-device rules and the quarantine
    assert flags["STUCK_SENSOR"] > 0 and flags["DUPLICATE"] > 0
    assert flags["UNREGISTERED_DEVICE"] > 0 and one_results[1].flag_counts["STUCK_SENSOR"] > 0
    assert {"duplicate_reading", "missing_value", "unparsable_value"} <= set(
        one_results[0].quarantine["rule"]
    )
    for shards in (2, 3, 50):
        many, results = clean_two_hours(hours, tmp_path, shards)
        assert_same_hours(many, results, one, one_results, shards)


def assert_same_hours(out: ParquetStore, results, expected: ParquetStore, wanted, *label) -> None:
    """Both hours' partitions (clean rows, tails), quarantine and counts are those expected."""
    for key, a, b in zip(KEYS, wanted, results, strict=True):
        for dataset in ("clean_readings", TAILS):
            assert rows(out.path(dataset, key)).equals(rows(expected.path(dataset, key))), (
                dataset,
                key,
                *label,
            )
        pd.testing.assert_frame_equal(b.quarantine, a.quarantine)
        assert summary(b) == summary(a)
        assert b.balanced


def test_shards_cut_the_hour_into_ranges_of_devices(hours):
    source, _ = hours
    con = connect()
    try:
        relation = f"read_parquet('{source.path('sensor_readings', KEYS[0])}')"
        bounds = shard_bounds(con, relation, 3)
        devices = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT device_id FROM {relation} WHERE device_id IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
    finally:
        con.close()
    assert len(bounds) == 2 and bounds == sorted(bounds)
    assert set(bounds) <= set(devices) and devices[0] not in bounds
    assert shard_bounds(connect(), relation, 1) == []


def test_shard_count_follows_the_memory_budget():
    settings = load_memory_budget()
    per_shard = settings.memory_budget_mb * 2**20 // settings.reading_bytes
    assert settings.shards_for(0) == 1
    assert settings.shards_for(per_shard) == 1
    assert settings.shards_for(per_shard + 1) == 2
    assert settings.shards_for(10 * per_shard) == 10


class Statements:
    """A DuckDB connection that records the statements it runs."""

    def __init__(self, con):
        self.con, self.sql = con, []

    def execute(self, sql, *args):
        self.sql.append(sql)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_rows_in_any_order_are_cleaned_as_the_same_rows_in_device_time_order(hours, tmp_path):
    source, registered = hours
    typed = pq.read_table(source.path("sensor_readings", KEYS[0])).to_pandas()
    keyed = ["device_id", "ts", "received_at", "source_file", "source_row"]
    ordered = typed.sort_values(keyed, na_position="first", kind="stable", ignore_index=True)
    shuffled = typed.sample(frac=1.0, random_state=3).reset_index(drop=True)
    outputs, statements = {}, {}
    for name, frame in {"ordered": ordered, "shuffled": shuffled}.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        out = ParquetStore(tmp_path / name)
        con = connect()
        try:
            _, result = clean_hour_in_shards(
                con, out, KEYS[0], path, CONTRACT, registered, shards=1, tails_dataset=TAILS
            )
        finally:
            con.close()
        outputs[name] = (out, result)
        spy = Statements(connect())
        try:
            clean_hour(spy, f"read_parquet('{path}')", CONTRACT, registered)
        finally:
            spy.close()
        statements[name] = [s for s in spy.sql if "ORDER BY device_id, ts" in s]
    (a, first), (b, second) = outputs["ordered"], outputs["shuffled"]
    assert first.flag_counts["DUPLICATE"] > 0 and first.flag_counts["STUCK_SENSOR"] > 0
    for dataset in ("clean_readings", TAILS):
        assert rows(b.path(dataset, KEYS[0])).equals(rows(a.path(dataset, KEYS[0]))), dataset
    pd.testing.assert_frame_equal(second.quarantine, first.quarantine)
    assert summary(second) == summary(first)
    # rows already in order are taken as they come; only the shuffled hour is sorted
    assert statements["ordered"] == [] and len(statements["shuffled"]) == 1


def in_device_order(source: ParquetStore, path: Path) -> Path:
    """The first hour's typed readings in (device_id, ts) order, as ingestion writes them, in
    row groups of 100 rows (so that a range's read can skip some, and ranges can be cut)."""
    typed = pq.read_table(source.path("sensor_readings", KEYS[0])).to_pandas()
    keyed = ["device_id", "ts", "received_at", "source_file", "source_row"]
    ordered = typed.sort_values(keyed, na_position="first", kind="stable", ignore_index=True)
    pq.write_table(pa.Table.from_pandas(ordered, preserve_index=False), path, row_group_size=100)
    return path


def test_each_shard_of_an_hour_in_device_order_is_cleaned_without_a_sort(
    hours, tmp_path, monkeypatch
):
    # A shard reads its device range from the hour's file in the file's own order, so an hour
    # written in (device_id, ts) order (as ingestion writes it) needs no sort in any shard.
    source, registered = hours
    import refrig_assets.quality.shards as shards_module

    spies: list[list[str]] = []

    class Recorder:  # records what each shard's connection executes
        def __init__(self, con):
            self.con, self.statements = con, []
            spies.append(self.statements)

        def execute(self, sql, *args):
            self.statements.append(sql)
            return self.con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.con, name)

    def recording_connect():
        return Recorder(connect())

    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    one, _ = clean_two_hours(hours, tmp_path / "one", 1)
    monkeypatch.setattr(shards_module, "connect", recording_connect)
    con = connect()
    try:
        clean_hour_in_shards(
            con,
            ParquetStore(tmp_path / "three"),
            KEYS[0],
            ordered,
            CONTRACT,
            registered,
            shards=3,
            tails_dataset=TAILS,
        )
    finally:
        con.close()
    assert len(spies) == 3
    assert all(not any("ORDER BY device_id, ts" in s for s in spy) for spy in spies)
    three = ParquetStore(tmp_path / "three").path("clean_readings", KEYS[0])
    assert rows(three).equals(rows(one.path("clean_readings", KEYS[0])))


def test_device_ranges_side_by_side_give_the_same_partitions(hours, tmp_path):
    # The previous-row pass of a shard runs in device ranges cut at the file's row groups, each
    # on its own cursor: with any number of ranges, in one shard or several, the partitions,
    # quarantine and counts are those of the whole file in one pass.
    source, registered = hours
    ordered = in_device_order(source, tmp_path / "ordered.parquet")
    outputs = {}
    for shards, ranges in [(1, 1), (1, 2), (1, 7), (2, 3)]:
        out = ParquetStore(tmp_path / f"{shards}-{ranges}")
        con = connect()
        try:
            _, result = clean_hour_in_shards(
                con,
                out,
                KEYS[0],
                ordered,
                CONTRACT,
                registered,
                shards=shards,
                ranges=ranges,
                tails_dataset=TAILS,
            )
        finally:
            con.close()
        outputs[shards, ranges] = (out, result)
    one, first = outputs[1, 1]
    assert first.flag_counts["DUPLICATE"] > 0 and first.flag_counts["STUCK_SENSOR"] > 0
    assert device_cuts(ordered, 7, nulls=True)  # the file really is cut
    for (shards, ranges), (out, result) in outputs.items():
        for dataset in ("clean_readings", TAILS):
            assert rows(out.path(dataset, KEYS[0])).equals(rows(one.path(dataset, KEYS[0]))), (
                dataset,
                shards,
                ranges,
            )
        pd.testing.assert_frame_equal(result.quarantine, first.quarantine)
        assert summary(result) == summary(first)


def test_nan_storms_read_from_the_statistics_are_those_a_scan_finds(hours, tmp_path):
    # An hour whose row groups each hold one landing file's read rows gives its NaN storms from
    # the Parquet statistics; any other hour is scanned. Both find the same files and shares.
    source, _ = hours
    table = pq.read_table(source.path("sensor_readings", KEYS[0]))
    typed = table.to_pandas()
    typed = typed[(typed["source_row"] >= 0) & typed["read_error"].isna()]
    storm = typed["source_file"] == "extra-0.parquet"
    sensors = [c.name for c in fleet_sensor_columns(CONTRACT)]
    typed.loc[storm, sensors] = None
    typed.loc[typed.index[storm][0], sensors[0]] = 1.0  # one value present
    path = tmp_path / "one-file-per-row-group.parquet"
    with pq.ParquetWriter(path, table.schema) as out:
        for _, rows in typed.groupby("source_file", sort=True):
            out.write_table(pa.Table.from_pandas(rows, table.schema, preserve_index=False))
    con = connect()
    try:
        for hour in (path, source.path("sensor_readings", KEYS[0])):
            relation = f"read_parquet('{hour}')"
            scanned = file_findings(con, relation, CONTRACT)
            assert file_findings(con, relation, CONTRACT, hour) == scanned
        read = file_findings(con, f"read_parquet('{path}')", CONTRACT).read
    finally:
        con.close()
    share = (storm.sum() * len(sensors) - 1) / (storm.sum() * len(sensors))
    assert _nan_storm_files_of(path, CONTRACT, read) == {"extra-0.parquet": share}
    # the fixture's hour mixes files (and read errors) in a row group: scanned
    assert _nan_storm_files_of(source.path("sensor_readings", KEYS[0]), CONTRACT, read) is None


def test_row_flags_read_off_the_pass_mask_are_those_the_joined_query_finds(hours):
    """On DuckDB the flags a row shows on its own (dropout, out of range, late, future) are
    computed by the previous-row pass and counted off their bits; the way other engines run the
    rules evaluates every flag in the clean rows' query. Both give the same rows and counts."""
    source, registered = hours
    path = source.path("sensor_readings", KEYS[0])
    damaged = (
        "(SELECT * REPLACE ("
        "CASE WHEN source_row % 7 = 0 THEN 999.0 ELSE temperature_evaporator END"
        " AS temperature_evaporator,"
        " CASE WHEN source_row % 11 = 0 THEN -5.0 ELSE pressure_low_side END AS pressure_low_side,"
        " CASE WHEN source_row % 13 = 0 THEN NULL ELSE vibration_compressor END"
        " AS vibration_compressor,"
        f" source_row % 17 = 0 AS late_arrival) FROM read_parquet('{path}'))"
    )
    found = {}
    for in_place in (True, False):
        con = connect()
        try:
            sql, result = clean_hour(con, damaged, CONTRACT, registered, flags_in_place=in_place)
            clean = con.execute(f"SELECT * FROM ({sql}) ORDER BY device_id, ts").df()
        finally:
            con.close()
        found[in_place] = (clean, summary(result))
    (in_place, counts), (joined, joined_counts) = found[True], found[False]
    pd.testing.assert_frame_equal(in_place, joined)
    assert counts == joined_counts
    flags = counts["flags"]
    row_and_joined = ("SENSOR_DROPOUT", "OUT_OF_RANGE", "LATE", "DUPLICATE", "UNREGISTERED_DEVICE")
    assert min(flags[f] for f in row_and_joined) > 0
    assert counts["sensor_flags"][("OUT_OF_RANGE", "pressure_low_side")] > 0
    assert counts["sensor_flags"][("OUT_OF_RANGE", "temperature_condenser")] == 0


@pytest.mark.parametrize("copies", [False, True], ids=["without-copies", "with-copies"])
def test_an_hour_in_order_is_cleaned_from_its_file_as_from_stored_rows(
    hours, tmp_path, monkeypatch, copies
):
    """An hour in (device_id, ts) order (what ingestion writes for one landing file) is cleaned
    without storing its rows: the clean rows stream from the file, flagged by place. Two hours
    (a stuck run carried across them, an unregistered device, a device in the wrong unit,
    values out of range, dropouts, late rows, unreadable rows; and, with copies, a device
    delivered twice and copies of stuck readings, of a device's first reading and of the
    file's last one) give the same partitions, quarantine and counts as the stored rows, in
    shards and ranges."""
    import refrig_assets.quality.rules as rules_module
    import refrig_assets.quality.shards as shards_module

    source, registered = hours
    keyed = ["device_id", "ts", "received_at", "source_file", "source_row"]
    paths = []
    passes: list[bool] = []
    device_pass = rules_module._device_pass

    def streamed(*args, **kwargs) -> bool:
        passes.append(device_pass(*args, **kwargs))
        return passes[-1]

    for key in KEYS:
        typed = pq.read_table(source.path("sensor_readings", key)).to_pandas()
        typed = typed.sort_values(keyed, na_position="first", kind="stable", ignore_index=True)
        read = typed["read_error"].isna() & typed["device_id"].notna()
        if copies:  # a stuck device's first, middle and last readings delivered again
            stuck = typed.index[typed["device_id"] == "zz-unregistered"]
            again = typed.loc[[stuck[0], stuck[len(stuck) // 2], stuck[-1]]].copy()
            again["source_row"] += 10_000
            typed = pd.concat([typed, again]).sort_values(
                keyed, na_position="first", kind="stable", ignore_index=True
            )
        else:
            copied = read & typed.where(read).duplicated(["device_id", "ts"])
            typed = typed[~copied].reset_index(drop=True)
        row = typed["source_row"].where(typed["device_id"] != "zz-unregistered", 1)
        typed.loc[row % 7 == 0, "temperature_evaporator"] = 999.0
        typed.loc[row % 13 == 0, "vibration_compressor"] = None
        typed.loc[row % 17 == 0, "late_arrival"] = True
        in_bar = typed["device_id"] == typed["device_id"].dropna().iloc[-1]
        typed.loc[in_bar, "pressure_low_side"] *= 0.01
        path = tmp_path / f"ordered-{key[-5:-3]}.parquet"
        pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), path, row_group_size=100)
        paths.append(path)
    stored_calls: list[bool] = []

    def clean_stored(*args, **kwargs):
        stored_calls.append(kwargs.pop("positions"))
        return clean_hour(*args, **kwargs)

    def clean(name: str, shards: int, ranges: int, stored: bool):
        if stored:
            monkeypatch.setattr(shards_module, "clean_hour", clean_stored)
        else:
            monkeypatch.setattr(rules_module, "_device_pass", streamed)
        out, results = clean_hours(paths, registered, ParquetStore(tmp_path / name), shards, ranges)
        monkeypatch.undo()
        return out, results

    stored, expected = clean("stored", 1, 1, stored=True)
    assert stored_calls and all(stored_calls)  # the shards asked for the streamed way
    flags = expected[0].flag_counts
    shown = ("STUCK_SENSOR", "UNREGISTERED_DEVICE", "UNIT_SUSPECT", "OUT_OF_RANGE", "LATE")
    assert min(flags[f] for f in (*shown, "SENSOR_DROPOUT")) > 0
    assert (flags["DUPLICATE"] > 0) == copies
    assert (expected[1].flag_counts["DUPLICATE"] > 0) == copies
    assert expected[1].flag_counts["STUCK_SENSOR"] > 0
    assert "unparsable_value" in set(expected[0].quarantine["rule"])
    for shards, ranges in [(1, 1), (1, 3), (2, 2)]:
        passes.clear()
        out, results = clean(f"streamed-{shards}-{ranges}", shards, ranges, stored=False)
        assert len(passes) == 2 * shards and all(passes)  # every shard of both hours streamed
        assert_same_hours(out, results, stored, expected, shards, ranges)


def catalog(con) -> set[tuple[str, str]]:
    """The tables, views (registered frames included) and variables a connection holds."""
    return set(
        con.execute(
            "SELECT 'table', table_name FROM duckdb_tables() UNION ALL "
            "SELECT 'view', view_name FROM duckdb_views() WHERE NOT internal UNION ALL "
            "SELECT 'variable', name FROM duckdb_variables()"
        ).fetchall()
    )


def test_hours_on_one_connection_give_the_partitions_of_a_connection_each(hours, tmp_path):
    """A one-shard hour is cleaned on the caller's connection (a ranged step's hours share one)
    and drops what it made there: both hours on one connection give the partitions, quarantine
    and counts of a connection per hour, and leave the connection as it was."""
    source, registered = hours
    paths = [source.path("sensor_readings", key) for key in KEYS]
    expected, wanted = clean_hours(paths, registered, ParquetStore(tmp_path / "each"), 1)
    con = connect()
    try:
        con.execute("CREATE TEMP VIEW callers AS SELECT 1 AS x")
        con.execute("SET VARIABLE callers_variable = 1")
        before = catalog(con)
        out, results = clean_hours(paths, registered, ParquetStore(tmp_path / "one"), 1, shared=con)
        assert catalog(con) == before
    finally:
        con.close()
    assert wanted[1].flag_counts["STUCK_SENSOR"] > 0  # the second hour carries a stuck run
    assert_same_hours(out, results, expected, wanted)
