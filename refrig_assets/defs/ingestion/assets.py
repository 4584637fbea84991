"""Assets reading the outside world: ``sensor_readings`` (landing zone) and ``device_registry``."""

import dagster as dg
import duckdb

from refrig_assets.contracts import load_contract
from refrig_assets.defs.partitions import hourly_partitions
from refrig_assets.defs.resources import RefrigResource
from refrig_assets.device_registry import load_device_registry
from refrig_assets.landing import LandingIndex, read_hour

GROUP = "ingestion"


@dg.asset(
    group_name=GROUP,
    description="The fleet's device registry (site, cohort, per-device thresholds), with defaults "
    "filled from the contract.",
    check_specs=[
        dg.AssetCheckSpec("device_registry_contract", asset="device_registry", blocking=True)
    ],
    kinds={"parquet"},
)
def device_registry(refrig: RefrigResource) -> dg.MaterializeResult:
    """Read the registry file (CSV or Parquet) named by REFRIG_DEVICE_REGISTRY."""
    from refrig_assets.defs.checks import contract_check_result

    registry = load_device_registry(refrig.settings.registry_path)
    path = refrig.store.write("device_registry", None, registry)
    check = contract_check_result("device_registry", load_contract("device_registry"), registry)
    return dg.MaterializeResult(
        metadata={
            "devices": len(registry),
            "sites": int(registry["site_id"].nunique()),
            "cohorts": dg.MetadataValue.json(registry["cohort"].value_counts().to_dict()),
            "source": str(refrig.settings.registry_path),
            "path": str(path),
        },
        check_results=[check],
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    description="Typed readings of one UTC hour, gathered from every landing file (Parquet/CSV), "
    "with the source file and row of each reading.",
    check_specs=[
        dg.AssetCheckSpec(
            "landing_files_readable",
            asset="sensor_readings",
            description="Every landing file for this hour could be read (rejected files are "
            "quarantined, named with their rule).",
        )
    ],
    kinds={"parquet", "duckdb"},
)
def sensor_readings(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Readings assigned to the hour of their ``ts``, from all files under the landing zone."""
    s = refrig.settings
    window = context.partition_time_window
    index = LandingIndex(s.home / "state" / "landing_index.json")
    contract = load_contract("sensor_readings")
    table, files, rejected = read_hour(
        s.landing_dir, window.start, window.end, contract, index, context.partition_key
    )
    index.save()
    con = duckdb.connect()
    con.register("hour", table)
    path = refrig.store.write_from_duckdb(
        "sensor_readings", context.partition_key, con, "SELECT * FROM hour ORDER BY device_id, ts"
    )
    con.close()
    for r in rejected:
        context.log.warning(f"landing file rejected [{r.rule}]: {r.message}")
    return dg.MaterializeResult(
        metadata={
            "rows": table.num_rows,
            "files": len(files),
            "rejected_files": len(rejected),
            "landing_dir": str(s.landing_dir),
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="landing_files_readable",
                passed=not rejected,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rejected": dg.MetadataValue.md(
                        "\n".join(f"- `{r.source_file}` ({r.rule}): {r.message}" for r in rejected)
                        or "none"
                    )
                },
            )
        ],
    )


defs = dg.Definitions(assets=[device_registry, sensor_readings])
