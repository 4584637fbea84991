"""Requests computed together in one pass of the feature SQL get exactly what each would get
alone, and a request that breaks the contract is refused without touching the others."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest
from support.serving_world import HOURS, landed_readings, serving_world, use_serving_world

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.serving import scorer
from refrig_assets.serving import service as service_module
from refrig_assets.serving.batching import Batcher
from refrig_assets.serving.inputs import (
    RequestRejected,
    readings_features,
    readings_features_many,
    table_from_records,
)
from refrig_assets.serving.service import ScoringService


@pytest.fixture(scope="module")
def readings() -> dict[str, pa.Table]:
    frame = landed_readings(serving_world(), HOURS[1:])
    return {
        device: pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        for device, rows in frame.groupby("device_id")
    }


@pytest.fixture(scope="module")
def registered() -> pa.Table:
    ids = ParquetStore(serving_world() / "data").read("device_registry")["device_id"]
    return pa.table({"device_id": pa.array(ids, pa.string())})


def test_requests_computed_together_equal_each_computed_alone(readings, registered):
    devices = sorted(readings)[:3]
    at = datetime.now(UTC)
    together = readings_features_many(connect(), [readings[d] for d in devices], registered, at)
    for device, features in zip(devices, together, strict=True):
        alone = readings_features(connect(), readings[device], registered, at)
        pd.testing.assert_frame_equal(features, alone)
        assert set(features["device_id"]) == {device}


def test_a_broken_request_in_a_pass_is_refused_alone_with_its_own_rows(readings, registered):
    a, b, c = sorted(readings)[:3]
    broken = readings[b].to_pandas()
    broken["ts"] = broken["ts"].astype(str)
    broken.loc[5, "ts"] = "not a time"
    tables = [readings[a], pa.Table.from_pandas(broken, preserve_index=False), readings[c]]

    first, refused, last = readings_features_many(connect(), tables, registered, datetime.now(UTC))

    assert isinstance(refused, RequestRejected)
    [violation] = refused.violations
    assert (violation.rule, violation.row, violation.column) == ("unparsable_value", 5, "ts")
    assert violation.message.startswith("request row 5")
    assert set(first["device_id"]) == {a}
    assert set(last["device_id"]) == {c}


def test_the_batcher_never_puts_one_device_twice_in_a_pass(readings):
    passes: list[list[frozenset]] = []
    gate = threading.Event()

    def compute(tables: list[pa.Table], context: object) -> list[int]:
        gate.wait(10)
        passes.append([frozenset(t.column("device_id").to_pylist()) for t in tables])
        return [t.num_rows for t in tables]

    batcher = Batcher(compute, max_requests=10, runners=1)
    a, b = sorted(readings)[:2]
    jobs = [readings[a], readings[b], readings[a], readings[b]]
    answers: list[int] = [0] * len(jobs)

    def call(i: int) -> None:
        answers[i] = batcher.submit(jobs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(30)

    assert answers == [t.num_rows for t in jobs]
    for devices in passes:
        assert len(set().union(*devices)) == len(devices)  # no device in two requests of a pass
    assert sum(len(p) for p in passes) == len(jobs)


def test_requests_that_arrive_during_a_pass_share_the_next_one(readings):
    passes: list[list[int]] = []
    started, gate = threading.Event(), threading.Event()

    def compute(tables: list[pa.Table], context: object) -> list[int]:
        passes.append([t.num_rows for t in tables])
        started.set()
        gate.wait(10)
        return [t.num_rows for t in tables]

    batcher = Batcher(compute, max_requests=10, runners=1)
    devices = sorted(readings)[:5]
    jobs = [readings[d].slice(0, 10 + k) for k, d in enumerate(devices)]
    answers: list[int] = [0] * len(jobs)

    def call(i: int) -> None:
        answers[i] = batcher.submit(jobs[i])

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert started.wait(10)  # the first request's pass is running: the others queue behind it
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, len(jobs))]
    for t in rest:
        t.start()
    for _ in range(3000):  # until all of them wait (bounded: 30 s)
        if len(batcher._pending) == len(rest):
            break
        time.sleep(0.01)  # (not started.wait: it is set, so it would not wait at all)
    gate.set()
    for t in [first, *rest]:
        t.join(30)

    assert answers == [t.num_rows for t in jobs]
    assert passes[0] == [jobs[0].num_rows]
    assert sorted(passes[1]) == [t.num_rows for t in jobs[1:]] and len(passes) == 2
    # the runner slot came back: a later lone request runs its own pass at once
    assert batcher.submit(jobs[0]) == jobs[0].num_rows
    assert passes[-1] == [jobs[0].num_rows]


def test_a_failing_pass_fails_its_requests_and_frees_its_runner(readings):
    calls = []

    def compute(tables: list[pa.Table], context: object) -> list[int]:
        calls.append(len(tables))
        if len(calls) == 1:
            raise RuntimeError("model store unavailable")
        return [t.num_rows for t in tables]

    batcher = Batcher(compute, max_requests=10, runners=1)
    table = readings[sorted(readings)[0]]
    with pytest.raises(RuntimeError, match="model store unavailable"):
        batcher.submit(table)
    assert batcher.submit(table) == table.num_rows


def test_a_request_whose_answer_is_ready_never_computes_another_pass_first(readings):
    """A waiting request can be answered by another request's pass; it then returns at once,
    leaving the next pass to a request still waiting (else its answer would wait a pass)."""
    owner: dict[int, int] = {}  # thread → the request it sent
    computed: set[int] = set()
    late: list[int] = []

    def compute(tables: list[pa.Table], context: object) -> list[int]:
        mine = owner[threading.get_ident()]
        if mine in computed:
            late.append(mine)
        time.sleep(0.002)
        computed.update(int(t.schema.metadata[b"request"]) for t in tables)
        return [t.num_rows for t in tables]

    batcher = Batcher(compute, max_requests=10, runners=1)
    devices = sorted(readings)[:8]
    answers: dict[int, int] = {}

    def client(k: int) -> None:
        for n in range(15):
            request = k * 100 + n
            owner[threading.get_ident()] = request
            table = readings[devices[k]].replace_schema_metadata({"request": str(request)})
            answers[request] = batcher.submit(table)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(devices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(answers) == 8 * 15
    assert late == []


def _without_timings(answer: dict) -> dict:
    return {
        **answer,
        "models": [{k: v for k, v in m.items() if k != "latency_ms"} for m in answer["models"]],
    }


def _rounded(value, digits: int = 12):
    """``value`` with every float rounded to ``digits`` significant digits: two paths doing the
    same arithmetic in another order agree to the last bits, not always in them."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def _one_hour_tables(home) -> dict[str, pa.Table]:
    from support.serving_world import as_json

    frame = landed_readings(home, HOURS[2:])
    return {
        device: table_from_records(as_json(rows)["readings"], "sensor_readings")
        for device, rows in frame.groupby("device_id")
    }


def test_requests_scored_in_one_pass_get_each_its_own_answer(tmp_path, monkeypatch):
    home = use_serving_world(tmp_path, monkeypatch)
    service = ScoringService(single_user=True)
    service.start()
    try:
        tables = _one_hour_tables(home)
        devices = sorted(tables)[:4]
        snapshot = service.models.current()
        together = service._score_pass([tables[d] for d in devices], (snapshot, True))
        for device, (answer, _) in zip(devices, together, strict=True):
            alone = service.score("readings", tables[device], snapshot)
            assert _without_timings(answer.as_dict()) == _without_timings(alone.as_dict())
            assert {w["device_id"] for w in answer.windows} == {device}
            assert all("probable_cause" in w for w in answer.windows)
    finally:
        service.close()


def test_a_one_hour_request_scores_the_same_with_the_rules_in_memory(tmp_path, monkeypatch):
    home = use_serving_world(tmp_path, monkeypatch)
    service = ScoringService(single_user=True)
    service.start()
    try:
        table = pa.concat_tables(list(_one_hour_tables(home).values()))
        taken = []
        real = service_module.small_batch_windows

        def spy(*args, **kwargs):
            found = real(*args, **kwargs)
            taken.append(found is not None)
            return found

        monkeypatch.setattr(service_module, "small_batch_windows", spy)
        fast = service.score("readings", table).as_dict()
        assert taken == [True]
        monkeypatch.setattr(service_module, "small_batch_windows", lambda *a, **k: None)
        batch = service.score("readings", table).as_dict()
        assert _rounded(_without_timings(fast)) == _rounded(_without_timings(batch))
        assert len(fast["windows"]) > 0
    finally:
        service.close()


def test_a_model_failing_on_one_request_of_a_pass_still_scores_the_others(tmp_path, monkeypatch):
    home = use_serving_world(tmp_path, monkeypatch)
    service = ScoringService(single_user=True)
    service.start()
    try:
        tables = _one_hour_tables(home)
        bad, good = sorted(tables)[:2]
        real = scorer.model_scores

        def refuses_bad(detector, features):
            if detector.config.model_id == "isolation_forest" and bad in set(features["device_id"]):
                raise ValueError(f"cannot score {bad}")
            return real(detector, features)

        monkeypatch.setattr(scorer, "model_scores", refuses_bad)
        snapshot = service.models.current()
        (first, _), (second, _) = service._score_pass(
            [tables[bad], tables[good]], (snapshot, False)
        )

        assert [e["model_id"] for e in first.errors] == ["isolation_forest"]
        assert "isolation_forest" not in {m["model_id"] for m in first.models}
        assert second.errors == []
        assert "isolation_forest" in {m["model_id"] for m in second.models}
        assert all(
            "isolation_forest" in {s["model_id"] for s in w["scores"]} for w in second.windows
        )
    finally:
        service.close()
