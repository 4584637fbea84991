"""``clean_readings`` and ``quarantined_readings``: one step, so every row is accounted for."""

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect, sql_str
from refrig_assets.defs.shared.contract_checks import contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import (
    RANGE_MODE,
    checks_at_once,
    hour_by_hour,
    hour_connection,
    range_backfill_policy,
    written_in_groups,
)
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.schema_checks import (
    contract_version_metadata,
    schema_check,
    schema_check_spec,
    sql_contract_check,
)
from refrig_assets.engines.memory import SPILL_DIR, hold_to_budget, load_memory_budget
from refrig_assets.ingestion.landing.hour_keys import hour_key
from refrig_assets.quality.report import summarise, write_summary
from refrig_assets.quality.rules import SENSOR_FLAGS, QualityResult, flag_bit
from refrig_assets.quality.shards import clean_hour_in_shards

GROUP = "quality"
# Per device and sensor, the hour's last value and when its run began (stuck runs across hours).
TAILS = "stuck_sensor_tails"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "clean_readings",
            group_name=GROUP,
            owners=["team:data-platform"],
            deps=["sensor_readings", "device_registry"],
            description="Readings that follow the contract, one per (device_id, ts), sorted, with "
            "quality flags (dropout, out of range, stuck, duplicate, late, future timestamp, unit "
            "suspect, unregistered device).",
            kinds={"parquet", "duckdb"},
        ),
        dg.AssetSpec(
            "quarantined_readings",
            group_name=GROUP,
            owners=["team:data-platform"],
            deps=["sensor_readings"],
            description="Every rejected row or file with file, row, column, rule, value and message.",
            kinds={"parquet"},
        ),
    ],
    partitions_def=hourly_partitions,
    check_specs=[
        dg.AssetCheckSpec(
            "rows_accounted_for",
            asset="clean_readings",
            blocking=True,
            partitions_def=hourly_partitions,
            description="rows read = rows clean + rows quarantined (nothing lost).",
        ),
        contract_check_spec("clean_readings", "clean_readings", True, hourly_partitions),
        contract_check_spec(
            "quarantined_readings", "quarantined_readings", False, hourly_partitions
        ),
        schema_check_spec("clean_readings", "clean_readings", hourly_partitions),
        schema_check_spec("quarantined_readings", "quarantined_readings", hourly_partitions),
    ],
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour(ranged=lambda context, keys, refrig: quality_range(context, keys, refrig))
def clean_readings(context: dg.AssetExecutionContext, refrig: RefrigResource):
    """Deduplicate, validate and flag the readings of one hour; quarantine what cannot be kept.

    A stuck-sensor run that began in the previous hour counts from its start when that hour's
    run tails are there (hours run in order, as the schedule and ``refrig pipeline run`` do).

    Data-quality metrics (flag rates overall and per sensor, completeness, quarantine counts)
    are recorded as metadata so the UI plots them across partitions.
    """
    refrig.warm_up_scoring(context)  # while DuckDB checks the hour (once per process)
    key = context.partition_key
    clean_contract = load_contract("clean_readings")
    q_contract = load_contract("quarantined_readings")
    registry = pq.read_table(refrig.store.path("device_registry"), columns=["device_id"])
    with hour_connection(context) as con:
        checked: list[tuple[dg.AssetCheckResult, dg.AssetCheckResult]] = []
        path, result = clean_hour_written(
            refrig,
            con,
            key,
            registry,
            meanwhile=lambda clean, result: checked.append(
                hour_contract_checks(con, clean, result.quarantine)
            ),
        )
        ((clean_check, q_check),) = checked
    schema = (
        schema_check(context, "clean_readings", clean_contract),
        schema_check(context, "quarantined_readings", q_contract),
    )
    yield from hour_results(context, refrig, key, path, result, (clean_check, q_check), schema)


def clean_hour_written(
    refrig: RefrigResource,
    con: duckdb.DuckDBPyConnection,
    key: str,
    registry: pa.Table,
    meanwhile: Callable[[Path, QualityResult], object] | None = None,
    budget_held: bool = False,
) -> tuple[Path, QualityResult]:
    """Clean hour ``key`` after the previous hour's stuck-run tails, writing its clean rows,
    tails and quarantine partitions; returns the clean path and the result.
    ``budget_held``: ``con`` is already held to the memory budget (a range's connection).

    ``meanwhile(clean_file, result)`` (the contract checks) runs on DuckDB on the clean file
    before it becomes the partition, while it is made durable (so before the quarantine
    partition is written, as the clean one is); on Spark on the partitions once written."""
    contract = load_contract("sensor_readings")
    start = hourly_partitions.time_window_for_partition_key(key).start
    tails = refrig.store.path(TAILS, hour_key(start - timedelta(hours=1)))
    previous = tails if tails and tails.exists() else None
    if refrig.engine == "spark":  # the same rules' SQL, run by Spark (engines/spark_hourly.py)
        from refrig_assets.engines.spark_hourly import write_quality_hour

        path = refrig.store.path("clean_readings", key)
        result = write_quality_hour(
            refrig.spark,
            refrig.store.path("sensor_readings", key),
            contract,
            registry,
            clean_target=path,
            tails_target=refrig.store.path(TAILS, key),
            quarantine_target=refrig.store.path("quarantined_readings", key),
            previous_tails=previous,
        )
    else:  # in device shards sized to the memory budget (config/performance.yaml)
        path, result = clean_hour_in_shards(
            con,
            refrig.store,
            key,
            refrig.store.path("sensor_readings", key),
            contract,
            registry,
            previous_tails=previous,
            tails_dataset=TAILS,
            meanwhile=meanwhile,
            budget_held=budget_held,
        )
    refrig.store.write("quarantined_readings", key, result.quarantine)
    if meanwhile is not None and refrig.engine == "spark":
        meanwhile(path, result)
    return path, result


def hour_contract_checks(
    con: duckdb.DuckDBPyConnection, clean: Path | list[Path], quarantine: pd.DataFrame
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """The clean file(s) and the quarantine rows against their contracts, in SQL."""
    files = [str(clean)] if isinstance(clean, Path) else [str(p) for p in clean]
    source = sql_str(files[0]) if len(files) == 1 else f"[{', '.join(map(sql_str, files))}]"
    con.execute(f"CREATE OR REPLACE VIEW clean AS SELECT * FROM read_parquet({source})")
    exempt = f"quality_mask & {flag_bit('OUT_OF_RANGE')} <> 0"
    clean_check = sql_contract_check(
        con, "clean", "clean_readings", load_contract("clean_readings"), range_exempt_sql=exempt
    )
    con.register("quarantine", quarantine)
    try:
        q_contract = load_contract("quarantined_readings")
        q_check = sql_contract_check(con, "quarantine", "quarantined_readings", q_contract)
    finally:
        con.unregister("quarantine")
    return clean_check, q_check


def hour_results(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    key: str,
    path: Path,
    result: QualityResult,
    checks: tuple[dg.AssetCheckResult, dg.AssetCheckResult],
    schema: tuple[dg.AssetCheckResult, dg.AssetCheckResult],
    mode: str | None = None,
) -> list[dg.MaterializeResult]:
    """Hour ``key``'s summary written and its two materializations with their check results
    (``checks``: the clean and quarantine contract checks; ``schema``: their schema checks;
    ``mode``: how a ranged step computed the hour)."""
    how = {} if mode is None else {RANGE_MODE: mode}
    clean_contract = load_contract("clean_readings")
    q_contract = load_contract("quarantined_readings")
    summary = summarise(result)
    write_summary(refrig.store, key, summary)
    for r in result.rejected_files:
        context.log.warning(f"quarantined file [{r.rule}]: {r.message}")
    for f, share in result.nan_storm_files.items():
        context.log.warning(f"NaN storm: {f} misses {share:.1%} of its sensor values; quarantined")
    variants = summary["unregistered_case_variants"]
    if variants:
        named = "; ".join(f"{known}: {', '.join(seen)}" for known, seen in variants.items())
        context.log.warning(
            f"{len(result.case_variants)} unregistered device id(s) differ from a registered id "
            f"only in case (registered: seen) {named}. Ids are exact: these readings score "
            "under cohort 'unknown' and the registered devices look silent; correct the ids "
            "at the source or in the registry"
        )
    case_metadata = (
        {"unregistered_case_variants": dg.MetadataValue.json(variants)} if variants else {}
    )
    per_sensor = {
        f"{flag.lower()}_rate__{sensor}": float(rate)
        for flag in SENSOR_FLAGS
        for sensor, rate in summary["flag_rates_by_sensor"][flag].items()
    }
    return [
        dg.MaterializeResult(
            asset_key="clean_readings",
            metadata={
                "rows_read": result.rows_read,
                "rows_clean": result.rows_clean,
                "rows_quarantined": result.rows_quarantined,
                "quarantine_rate": float(summary["quarantine_rate"]),
                "completeness": float(summary["completeness"]),
                **{f"flag_rate_{f.lower()}": float(r) for f, r in summary["flag_rates"].items()},
                **per_sensor,
                "flag_rates_by_sensor": dg.MetadataValue.json(summary["flag_rates_by_sensor"]),
                "path": str(path),
                **case_metadata,
                **contract_version_metadata(clean_contract),
                **how,
            },
            check_results=[
                dg.AssetCheckResult(
                    asset_key="clean_readings",
                    check_name="rows_accounted_for",
                    passed=result.balanced,
                    metadata={
                        "rows_read": result.rows_read,
                        "rows_clean": result.rows_clean,
                        "rows_quarantined": result.rows_quarantined,
                    },
                ),
                checks[0],
                schema[0],
            ],
        ),
        dg.MaterializeResult(
            asset_key="quarantined_readings",
            metadata={
                "rows": len(result.quarantine),
                "rows_quarantined": result.rows_quarantined,
                "rejected_files": len(result.rejected_files),
                "nan_storm_files": len(result.nan_storm_files),
                "by_rule": dg.MetadataValue.json(summary["quarantined_by_rule"]),
                "rows_by_file": dg.MetadataValue.json(summary["quarantined_rows_by_file"]),
                **contract_version_metadata(q_contract),
                **how,
            },
            check_results=[checks[1], schema[1]],
        ),
    ]


def quality_range(context: dg.AssetExecutionContext, keys: list[str], refrig: RefrigResource):
    """The range body of ``clean_readings``: the hours of ``keys`` cleaned in order (each after
    the previous hour's stuck-run tails, each written as its own partitions, as hour by hour),
    their contract checks run once over a group of hours (:func:`range_contract_checks`); or
    why the range runs hour by hour."""
    if refrig.engine != "duckdb":
        return f"the {refrig.engine} engine cleans one hour at a time"
    return _quality_hours(context, keys, refrig)


def _quality_hours(
    context: dg.AssetExecutionContext, keys: list[str], refrig: RefrigResource
) -> Iterator[tuple[str, list[dg.MaterializeResult]]]:
    refrig.warm_up_scoring(context)
    registry = pq.read_table(refrig.store.path("device_registry"), columns=["device_id"])
    # Every hour of a ranged step compares with the materialization before the range.
    schema = (
        schema_check(context, "clean_readings", load_contract("clean_readings")),
        schema_check(context, "quarantined_readings", load_contract("quarantined_readings")),
    )
    with closing(connect()) as con:
        # held once for all the hours, as clean_hour_in_shards holds a one-hour run's
        hold_to_budget(con, load_memory_budget(), refrig.store.root / SPILL_DIR)

        def write(key: str) -> tuple[str, Path, QualityResult]:
            return (key, *clean_hour_written(refrig, con, key, registry, budget_held=True))

        yield from written_in_groups(
            keys,
            write,
            lambda hour: hour[2].rows_read,
            lambda group: _group_results(context, refrig, con, group, schema),
        )


def _group_results(context, refrig, con, group, schema):
    checked = range_contract_checks(con, [(path, result.quarantine) for _, path, result in group])
    for (key, path, result), (checks, mode) in zip(group, checked, strict=True):
        yield key, hour_results(context, refrig, key, path, result, checks, schema, mode)


def range_contract_checks(
    con: duckdb.DuckDBPyConnection, hours: list[tuple[Path, pd.DataFrame]]
) -> list[tuple[tuple[dg.AssetCheckResult, dg.AssetCheckResult], str]]:
    """The clean and quarantine contract checks of each of ``hours`` (clean file, quarantine
    rows), as :func:`hour_contract_checks` of that hour alone gives them, with how they were
    found (the hours' ``range_mode``; see :func:`checks_at_once`)."""
    return checks_at_once(
        hours,
        [path for path, _ in hours],
        lambda: hour_contract_checks(
            con, [p for p, _ in hours], pd.concat([q for _, q in hours], ignore_index=True)
        ),
        lambda hour: hour_contract_checks(con, *hour),
        lambda checks: all(c.passed for c in checks),
    )


defs = dg.Definitions(assets=[clean_readings])
