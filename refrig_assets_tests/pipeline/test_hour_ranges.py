"""A run over a range of hours records every hour as if it had been its own run: its own
materialization metadata, its own check results, a failing hour named and blocking only itself
when ``refrig pipeline run`` runs the range again hour by hour."""

import dagster as dg
import duckdb
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from refrig_assets.cli.runner import chunked, run_hours
from refrig_assets.defs.shared.ranges import hour_by_hour, hour_connection, in_range, per_range

HOURS = dg.HourlyPartitionsDefinition(
    start_date="2026-01-01-00:00", end_date="2026-01-01-06:00", timezone="UTC"
)
KEYS = HOURS.get_partition_keys()  # six hours
BAD_HOUR = KEYS[3]


def toy_definitions(
    seen: list, finished: list, bad_hour: str | None = None, crash_hour: str | None = None
) -> dg.Definitions:
    """An hourly asset with a blocking check that fails on ``bad_hour`` (and a body that raises
    on ``crash_hour``), and one downstream."""

    @dg.asset(
        partitions_def=HOURS,
        check_specs=[
            dg.AssetCheckSpec("hour_ok", asset="toy", blocking=True, partitions_def=HOURS)
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    @hour_by_hour
    def toy(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        shared = per_range(context, "shared", list, finished.append)
        shared.append(context.partition_key)
        seen.append((context.partition_key, context.partition_time_window.start.hour))
        if context.partition_key == crash_hour:
            raise RuntimeError(f"cannot read {crash_hour}")
        return dg.MaterializeResult(
            metadata={"hour": context.partition_key, "ranged": in_range(context)},
            check_results=[
                dg.AssetCheckResult(
                    check_name="hour_ok",
                    passed=context.partition_key != bad_hour,
                    metadata={"hour": context.partition_key},
                )
            ],
        )

    @dg.asset(partitions_def=HOURS, deps=[toy], backfill_policy=dg.BackfillPolicy.single_run())
    @hour_by_hour
    def downstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"hour": context.partition_key})

    job = dg.define_asset_job("hourly_pipeline", partitions_def=HOURS)
    return dg.Definitions(assets=[toy, downstream], jobs=[job])


def run_range(defs: dg.Definitions, instance, first: str, last: str):
    return defs.resolve_job_def("hourly_pipeline").execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


def materialized(result, asset: str) -> dict[str, dict]:
    return {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
        if m.asset_key == dg.AssetKey(asset)
    }


def test_every_hour_of_a_range_runs_in_order_with_its_own_metadata_and_checks():
    seen, finished = [], []
    defs = toy_definitions(seen, finished)
    with dg.instance_for_test() as instance:
        result = run_range(defs, instance, KEYS[0], KEYS[-1])
        runs = instance.get_runs()

    assert result.success
    assert len(runs) == 1  # one run for the six hours
    assert seen == [(k, h) for h, k in enumerate(KEYS)]
    toy = materialized(result, "toy")
    assert sorted(toy) == KEYS
    assert all(meta == {"hour": k, "ranged": True} for k, meta in toy.items())
    assert sorted(materialized(result, "downstream")) == KEYS
    checks = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert sorted(checks) == KEYS
    assert all(c.passed and c.metadata["hour"].value == k for k, c in checks.items())
    # made once for the range, finished once after its last hour
    assert finished == [KEYS]


def test_a_one_hour_run_goes_through_the_body_unchanged():
    seen, finished = [], []
    defs = toy_definitions(seen, finished)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("hourly_pipeline").execute_in_process(
            instance=instance, partition_key=KEYS[2]
        )

    assert materialized(result, "toy") == {KEYS[2]: {"hour": KEYS[2], "ranged": False}}
    [check] = result.get_asset_check_evaluations()
    assert check.partition == KEYS[2] and check.passed
    assert finished == []  # a one-hour body finishes its own objects


def test_a_failed_blocking_check_fails_the_range_after_recording_every_hour():
    seen, finished = [], []
    defs = toy_definitions(seen, finished, bad_hour=BAD_HOUR)
    with dg.instance_for_test() as instance:
        result = run_range(defs, instance, KEYS[0], KEYS[-1])

    assert not result.success
    assert sorted(materialized(result, "toy")) == KEYS
    failed = [e.partition for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == [BAD_HOUR]
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert BAD_HOUR in str(failure.event_specific_data.error.message)
    assert materialized(result, "downstream") == {}  # blocked, as one hour would be


def test_the_runner_runs_a_failed_range_again_hour_by_hour_so_only_the_bad_hour_fails():
    seen, finished = [], []
    defs = toy_definitions(seen, finished, bad_hour=BAD_HOUR)
    outcomes = {}

    def on_hour(key, success, failed):
        outcomes[key] = (success, failed)
        return failed

    with dg.instance_for_test() as instance:
        failures = run_hours(defs, instance, ["toy", "downstream"], chunked(KEYS, 4), on_hour)
        done = instance.get_materialized_partitions(dg.AssetKey("downstream"))

    assert list(outcomes) == KEYS
    assert [k for k, (ok, _) in outcomes.items() if not ok] == [BAD_HOUR]
    assert failures == ["toy"]
    assert done == set(KEYS) - {BAD_HOUR}
    # hours 0-3: once as a range, again one by one; hours 4-5: one range that passed
    assert [k for k, _ in seen] == KEYS[:4] + KEYS[:4] + KEYS[4:]


def test_an_hour_that_raises_fails_the_range_and_the_runner_goes_on_from_that_hour():
    seen, finished = [], []
    defs = toy_definitions(seen, finished, crash_hour=BAD_HOUR)
    outcomes = {}

    def on_hour(key, success, failed):
        outcomes[key] = success
        return failed

    with dg.instance_for_test() as instance:
        result = run_range(defs, instance, KEYS[0], KEYS[-1])
        assert sorted(materialized(result, "toy")) == KEYS[:3]  # written before the crash
        seen.clear()
        failures = run_hours(defs, instance, ["toy"], chunked(KEYS, 6), on_hour)

    assert [k for k, ok in outcomes.items() if not ok] == [BAD_HOUR]
    assert failures == ["toy"]
    assert finished == [KEYS[:4], KEYS[:4]]  # finished also when an hour failed
    # the range up to the crash, then one run per hour from the hour that failed
    assert [k for k, _ in seen] == KEYS[:4] + KEYS[3:]


def connection_definitions(used: list) -> dg.Definitions:
    """An hourly asset whose body queries DuckDB through ``hour_connection`` and names its view
    with CREATE OR REPLACE, as the hourly assets do."""

    @dg.asset(partitions_def=HOURS, backfill_policy=dg.BackfillPolicy.single_run())
    @hour_by_hour
    def counted(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with hour_connection(context) as con:
            con.execute(
                "CREATE OR REPLACE VIEW hour AS SELECT "
                f"TIMESTAMPTZ '{context.partition_time_window.start.isoformat()}' AS t"
            )
            [(hour,)] = con.execute("SELECT hour(t) FROM hour").fetchall()
            used.append(con)
        return dg.MaterializeResult(metadata={"hour": hour})

    job = dg.define_asset_job("hourly_pipeline", partitions_def=HOURS)
    return dg.Definitions(assets=[counted], jobs=[job])


def closed(con) -> bool:
    try:
        con.execute("SELECT 1")
    except duckdb.ConnectionException:
        return True
    return False


def test_the_hours_of_a_range_share_one_duckdb_connection_closed_after_the_range():
    used: list = []
    with dg.instance_for_test() as instance:
        result = run_range(connection_definitions(used), instance, KEYS[0], KEYS[-1])

    assert result.success
    assert len(used) == len(KEYS) and all(con is used[0] for con in used)
    assert closed(used[0])
    # each hour saw its own view, not the previous hour's
    assert {k: m["hour"] for k, m in materialized(result, "counted").items()} == {
        k: h for h, k in enumerate(KEYS)
    }


def test_a_one_hour_run_gets_its_own_duckdb_connection_closed_with_the_hour():
    used: list = []
    with dg.instance_for_test() as instance:
        defs = connection_definitions(used)
        for key in KEYS[:2]:
            defs.resolve_job_def("hourly_pipeline").execute_in_process(
                instance=instance, partition_key=key
            )

    assert len(used) == 2 and used[0] is not used[1]
    assert all(closed(con) for con in used)
