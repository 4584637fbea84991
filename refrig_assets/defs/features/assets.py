"""``device_features``: windows of clean readings (15 minutes by default) per device."""

import dagster as dg
import duckdb
import pandas as pd

from refrig_assets.contracts import load_contract
from refrig_assets.defs.checks import contract_check_result
from refrig_assets.defs.partitions import hourly_partitions
from refrig_assets.defs.resources import RefrigResource
from refrig_assets.features import feature_sql

GROUP = "features"


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    deps=["clean_readings"],
    description="Per device and window: per-sensor mean/std/min/max/last/slope, duty cycle, "
    "door-open share, sensor completeness and the window's quality flags.",
    check_specs=[
        dg.AssetCheckSpec("device_features_contract", asset="device_features", blocking=True)
    ],
    kinds={"parquet", "duckdb"},
)
def device_features(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Feature windows of one hour, computed by DuckDB over the clean readings."""
    key = context.partition_key
    source = refrig.store.path("clean_readings", key)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW clean AS SELECT * FROM read_parquet('{source}')")
    sql = feature_sql("clean", cadence_seconds=refrig.settings.cadence_seconds)
    path = refrig.store.write_from_duckdb("device_features", key, con, sql)
    features = pd.read_parquet(path)
    con.close()
    check = contract_check_result("device_features", load_contract("device_features"), features)
    completeness = features["sensor_completeness"]
    return dg.MaterializeResult(
        metadata={
            "windows": len(features),
            "devices": int(features["device_id"].nunique()),
            "mean_completeness": float(completeness.mean()) if len(features) else 0.0,
            "windows_below_half_complete": int((completeness < 0.5).sum()),
            "windows_with_flags": int((features["quality_mask"] != 0).sum()),
            "path": str(path),
        },
        check_results=[check],
    )


defs = dg.Definitions(assets=[device_features])
