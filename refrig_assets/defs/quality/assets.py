"""``clean_readings`` and ``quarantined_readings``: one step, so every row is accounted for."""

from datetime import timedelta

import dagster as dg
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import sql_str
from refrig_assets.defs.shared.contract_checks import contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import hour_by_hour, hour_connection, range_backfill_policy
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.schema_checks import (
    contract_version_metadata,
    schema_check,
    schema_check_spec,
    sql_contract_check,
)
from refrig_assets.ingestion.landing.hour_keys import hour_key
from refrig_assets.quality.report import summarise, write_summary
from refrig_assets.quality.rules import SENSOR_FLAGS, flag_bit
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
@hour_by_hour
def clean_readings(context: dg.AssetExecutionContext, refrig: RefrigResource):
    """Deduplicate, validate and flag the readings of one hour; quarantine what cannot be kept.

    A stuck-sensor run that began in the previous hour counts from its start when that hour's
    run tails are there (hours run in order, as the schedule and ``refrig pipeline run`` do).

    Data-quality metrics (flag rates overall and per sensor, completeness, quarantine counts)
    are recorded as metadata so the UI plots them across partitions.
    """
    refrig.warm_up_scoring(context)  # while DuckDB checks the hour (once per process)
    key = context.partition_key
    contract = load_contract("sensor_readings")
    clean_contract = load_contract("clean_readings")
    q_contract = load_contract("quarantined_readings")
    registry = pq.read_table(refrig.store.path("device_registry"), columns=["device_id"])
    tails = refrig.store.path(
        TAILS, hour_key(context.partition_time_window.start - timedelta(hours=1))
    )
    with hour_connection(context) as con:
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
            )
        refrig.store.write("quarantined_readings", key, result.quarantine)
        con.execute(
            f"CREATE OR REPLACE VIEW clean AS SELECT * FROM read_parquet({sql_str(str(path))})"
        )
        exempt = f"quality_mask & {flag_bit('OUT_OF_RANGE')} <> 0"
        clean_check = sql_contract_check(
            con, "clean", "clean_readings", clean_contract, range_exempt_sql=exempt
        )
        con.register("quarantine", result.quarantine)
        q_check = sql_contract_check(con, "quarantine", "quarantined_readings", q_contract)
    summary = summarise(result)
    write_summary(refrig.store, key, summary)
    for r in result.rejected_files:
        context.log.warning(f"quarantined file [{r.rule}]: {r.message}")
    for f, share in result.nan_storm_files.items():
        context.log.warning(f"NaN storm: {f} misses {share:.1%} of its sensor values; quarantined")
    per_sensor = {
        f"{flag.lower()}_rate__{sensor}": float(rate)
        for flag in SENSOR_FLAGS
        for sensor, rate in summary["flag_rates_by_sensor"][flag].items()
    }
    yield dg.MaterializeResult(
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
            **contract_version_metadata(clean_contract),
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
            clean_check,
            schema_check(context, "clean_readings", clean_contract),
        ],
    )
    yield dg.MaterializeResult(
        asset_key="quarantined_readings",
        metadata={
            "rows": len(result.quarantine),
            "rows_quarantined": result.rows_quarantined,
            "rejected_files": len(result.rejected_files),
            "nan_storm_files": len(result.nan_storm_files),
            "by_rule": dg.MetadataValue.json(summary["quarantined_by_rule"]),
            "rows_by_file": dg.MetadataValue.json(summary["quarantined_rows_by_file"]),
            **contract_version_metadata(q_contract),
        },
        check_results=[q_check, schema_check(context, "quarantined_readings", q_contract)],
    )


defs = dg.Definitions(assets=[clean_readings])
