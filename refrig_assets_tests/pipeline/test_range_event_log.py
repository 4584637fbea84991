"""What the event log holds after a run over a range of hours is what one-hour runs leave: each
hour's materialization with its own metadata, each hour's check evaluation targeting that
materialization (so Dagster counts it current), written in a few batches, not one per hour."""

import dagster as dg
import pytest

from refrig_assets.defs.shared.event_log import pipeline_instance
from refrig_assets.defs.shared.hour_chain import hour_chain_job
from refrig_assets.defs.shared.ranges import hour_by_hour
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets_tests.pipeline.test_batched_event_log import recorded_batches
from refrig_assets_tests.pipeline.test_hour_ranges import (
    BAD_HOUR,
    HOURS,
    KEYS,
    run_range,
    toy_definitions,
)

CHECK = dg.AssetCheckKey(dg.AssetKey("toy"), "hour_ok")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh DAGSTER_HOME per call, read by :func:`pipeline_instance` (batching on)."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "")  # restored after the test
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")  # pipeline_instance sets it

    def make(name: str) -> dg.DagsterInstance:
        path = tmp_path / name
        path.mkdir()
        (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        monkeypatch.setenv("DAGSTER_HOME", str(path))
        return pipeline_instance()

    return make


def recorded(instance: dg.DagsterInstance) -> dict[str, dict]:
    """Per hour of ``toy``: its materialization's metadata (all but how it ran), its check's
    status, metadata and whether Dagster counts the evaluation as current."""
    storage = instance.event_log_storage
    records = instance.fetch_materializations(dg.AssetKey("toy"), limit=100).records
    hours: dict[str, dict] = {
        r.partition_key: {
            "metadata": {
                k: v.value for k, v in r.asset_materialization.metadata.items() if k != "ranged"
            }
        }
        for r in records
        if r.partition_key is not None and r.asset_materialization is not None
    }
    for execution in storage.get_asset_check_execution_history(CHECK, limit=100):
        evaluation = execution.event.dagster_event.event_specific_data
        metadata = getattr(evaluation, "metadata", None)  # none while only planned
        hours.setdefault(execution.partition, {})["check"] = (
            execution.status.value,
            None if metadata is None else {k: v.value for k, v in metadata.items()},
        )
    for info in storage.get_asset_check_partition_info([CHECK]):
        hours[info.partition_key]["current"] = info.is_current
    return hours


def test_a_range_records_every_hour_as_one_hour_runs_do(home, monkeypatch):
    batches = recorded_batches(monkeypatch)
    defs = toy_definitions([], [], bad_hour=BAD_HOUR)
    hourly = home("hourly")
    job = defs.resolve_job_def("hourly_pipeline")
    for key in KEYS:
        job.execute_in_process(instance=hourly, partition_key=key, raise_on_error=False)
    by_hour = recorded(hourly)

    batches.clear()
    ranged = home("ranged")
    result = run_range(defs, ranged, KEYS[0], KEYS[-1])
    assert not result.success  # the bad hour's blocking check (the runner reruns hour by hour)
    assert recorded(ranged) == by_hour
    assert sorted(by_hour) == KEYS
    assert all(hour["current"] for hour in by_hour.values())
    assert by_hour[BAD_HOUR]["check"][0] == "FAILED"
    # The range's evaluations: one batch, after the batch of its materializations.
    evaluations = ["ASSET_CHECK_EVALUATION"] * len(KEYS)
    assert evaluations in batches
    assert batches.index(evaluations) > batches.index(["ASSET_MATERIALIZATION"] * len(KEYS))


def test_the_hours_before_one_that_raises_are_recorded_with_current_checks(home):
    defs = toy_definitions([], [], crash_hour=BAD_HOUR)
    instance = home("crash")
    result = run_range(defs, instance, KEYS[0], KEYS[-1])

    assert not result.success
    hours = recorded(instance)
    written = KEYS[: KEYS.index(BAD_HOUR)]
    assert sorted(k for k, h in hours.items() if "metadata" in h) == written
    assert all(hours[k]["check"][0] == "SUCCEEDED" and hours[k]["current"] for k in written)


def chain_toy(bad_hour: str | None = None) -> dg.AssetsDefinition:
    """``toy`` as the hour chain runs it: a one-hour body taking the resource, with its check."""

    @dg.asset(
        partitions_def=HOURS,
        check_specs=[
            dg.AssetCheckSpec("hour_ok", asset="toy", blocking=True, partitions_def=HOURS)
        ],
    )
    @hour_by_hour
    def toy(context: dg.AssetExecutionContext, refrig: RefrigResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={"hour": context.partition_key},
            check_results=[
                dg.AssetCheckResult(check_name="hour_ok", passed=context.partition_key != bad_hour)
            ],
        )

    return toy


def test_the_hour_chain_records_every_hours_check_as_current(home, tmp_path, monkeypatch):
    # `refrig pipeline run` runs alerts -> incidents -> status of a range in one op, hour by hour
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "refrig"))
    instance = home("chain")
    job = hour_chain_job("toy_chain", [chain_toy(bad_hour=BAD_HOUR)])

    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"toy_chain": {"config": {"first": KEYS[0], "last": KEYS[-1]}}}},
        raise_on_error=False,
    )

    assert not result.success  # stopped at the bad hour's blocking check
    hours = recorded(instance)
    done = KEYS[: KEYS.index(BAD_HOUR) + 1]
    assert sorted(hours) == done
    assert all(hours[k]["current"] for k in done)
    assert [hours[k]["check"][0] for k in done] == ["SUCCEEDED"] * (len(done) - 1) + ["FAILED"]
