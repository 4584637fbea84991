"""``clean_readings`` and ``quarantined_readings``: one step, so every row is accounted for."""

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from refrig_assets.contract_sql import sql_violations
from refrig_assets.contracts import load_contract
from refrig_assets.defs.partitions import hourly_partitions
from refrig_assets.defs.resources import RefrigResource
from refrig_assets.landing import LandingIndex
from refrig_assets.quality import clean_hour, flag_bit

GROUP = "quality"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "clean_readings",
            group_name=GROUP,
            deps=["sensor_readings", "device_registry"],
            description="Readings that follow the contract, one per (device_id, ts), sorted, with "
            "quality flags (dropout, out of range, unregistered device...).",
            kinds={"parquet", "duckdb"},
        ),
        dg.AssetSpec(
            "quarantined_readings",
            group_name=GROUP,
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
            description="rows read = rows clean + rows quarantined (nothing lost).",
        ),
        dg.AssetCheckSpec("clean_readings_contract", asset="clean_readings", blocking=True),
    ],
)
def clean_readings(context: dg.AssetExecutionContext, refrig: RefrigResource):
    """Deduplicate, validate and flag the readings of one hour; quarantine what cannot be kept."""
    key = context.partition_key
    s = refrig.settings
    contract = load_contract("sensor_readings")
    readings = pq.read_table(refrig.store.path("sensor_readings", key))
    registry = pq.read_table(refrig.store.path("device_registry"), columns=["device_id"])
    rejected = LandingIndex(s.home / "state" / "landing_index.json").rejections_for(key)
    con = duckdb.connect()
    clean_sql, result = clean_hour(con, readings, contract, registry, rejected)
    path = refrig.store.write_from_duckdb("clean_readings", key, con, clean_sql)
    refrig.store.write("quarantined_readings", key, result.quarantine)
    con.execute(f"CREATE VIEW clean AS SELECT * FROM read_parquet('{path}')")
    flag_rates = (
        con.execute(
            "SELECT "
            + ", ".join(
                f'avg(CASE WHEN quality_mask & {flag_bit(f)} <> 0 THEN 1.0 ELSE 0.0 END) AS "{f}"'
                for f in ("SENSOR_DROPOUT", "OUT_OF_RANGE", "UNREGISTERED_DEVICE")
            )
            + " FROM clean"
        )
        .df()
        .iloc[0]
        .fillna(0.0)
        .round(5)
        .to_dict()
    )
    violations = sql_violations(
        con,
        "clean",
        load_contract("clean_readings"),
        range_exempt_sql=f"quality_mask & {flag_bit('OUT_OF_RANGE')} <> 0",
    )
    con.close()
    by_rule = result.quarantine["rule"].value_counts().to_dict()
    for r in result.rejected_files:
        context.log.warning(f"quarantined file [{r.rule}]: {r.message}")
    balanced = result.rows_read == result.rows_clean + result.rows_quarantined
    yield dg.MaterializeResult(
        asset_key="clean_readings",
        metadata={
            "rows_read": result.rows_read,
            "rows_clean": result.rows_clean,
            "rows_quarantined": result.rows_quarantined,
            "flag_rates": dg.MetadataValue.json(flag_rates),
            **{f"flag_rate_{k.lower()}": float(v) for k, v in flag_rates.items()},
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key="clean_readings",
                check_name="rows_accounted_for",
                passed=balanced,
                metadata={
                    "rows_read": result.rows_read,
                    "rows_clean": result.rows_clean,
                    "rows_quarantined": result.rows_quarantined,
                },
            ),
            dg.AssetCheckResult(
                asset_key="clean_readings",
                check_name="clean_readings_contract",
                passed=violations.empty,
                metadata={
                    "failures": int(violations["failures"].sum()) if len(violations) else 0,
                    "failing_checks": dg.MetadataValue.md(
                        violations.astype(str).to_markdown(index=False)
                        if len(violations)
                        else "none"
                    ),
                },
            ),
        ],
    )
    yield dg.MaterializeResult(
        asset_key="quarantined_readings",
        metadata={
            "rows": len(result.quarantine),
            "rejected_files": len(result.rejected_files),
            "by_rule": dg.MetadataValue.json({str(k): int(v) for k, v in by_rule.items()}),
        },
    )


defs = dg.Definitions(assets=[clean_readings])
