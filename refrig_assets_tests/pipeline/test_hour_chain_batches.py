"""The hour chain stores an hour's materializations (one per asset) as one event batch, one
transaction per event log file instead of one per event, and still records, and lists in the
step's result, the materializations of an hour whose later asset raised."""

import dagster as dg

from refrig_assets.defs.shared.hour_chain import hour_chain_job
from refrig_assets.defs.shared.ranges import hour_by_hour
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets_tests.pipeline.test_batched_event_log import recorded_batches
from refrig_assets_tests.pipeline.test_hour_ranges import BAD_HOUR, HOURS, KEYS
from refrig_assets_tests.pipeline.test_range_event_log import home  # noqa: F401 (fixture)

MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION.value


def chained(name: str, raise_at: str | None = None) -> dg.AssetsDefinition:
    """An hourly asset as the chain runs it; it raises in hour ``raise_at``."""

    @dg.asset(name=name, partitions_def=HOURS)
    @hour_by_hour
    def body(context: dg.AssetExecutionContext, refrig: RefrigResource) -> dg.MaterializeResult:
        if context.partition_key == raise_at:
            raise RuntimeError(f"{name} failed in {raise_at}")
        return dg.MaterializeResult(metadata={"hour": context.partition_key, "asset": name})

    return body


def run(job: dg.JobDefinition, instance: dg.DagsterInstance, name: str):
    return job.execute_in_process(
        instance=instance,
        run_config={"ops": {name: {"config": {"first": KEYS[0], "last": KEYS[-1]}}}},
        raise_on_error=False,
    )


def materialized(instance: dg.DagsterInstance, asset: str) -> dict[str, dict]:
    """Each recorded hour of ``asset`` with its metadata."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    return {
        r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()}
        for r in records
        if r.partition_key is not None and r.asset_materialization is not None
    }


def test_an_hours_materializations_are_stored_in_one_batch(home, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "refrig"))
    batches = recorded_batches(monkeypatch)
    instance = home("chain")
    job = hour_chain_job("two_chain", [chained("first"), chained("second")])

    result = run(job, instance, "two_chain")

    assert result.success
    hour_batches = [b for b in batches if MATERIALIZATION in b]
    assert hour_batches == [[MATERIALIZATION, MATERIALIZATION]] * len(KEYS)
    for asset in ("first", "second"):
        assert materialized(instance, asset) == {k: {"hour": k, "asset": asset} for k in KEYS}
    listed = [
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
    ]
    assert listed == [(a, k) for k in KEYS for a in ("first", "second")]


def test_an_hour_whose_later_asset_raises_keeps_the_earlier_assets_materialization(
    home,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    monkeypatch.setenv("REFRIG_HOME", str(tmp_path / "refrig"))
    instance = home("chain")
    job = hour_chain_job("two_chain", [chained("first"), chained("second", raise_at=BAD_HOUR)])

    result = run(job, instance, "two_chain")

    assert not result.success
    done = KEYS[: KEYS.index(BAD_HOUR)]
    assert sorted(materialized(instance, "first")) == [*done, BAD_HOUR]
    assert sorted(materialized(instance, "second")) == done
    # the runner reads the result's events to know which hours to run again one by one
    listed = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
    }
    assert ("first", BAD_HOUR) in listed and ("second", BAD_HOUR) not in listed
