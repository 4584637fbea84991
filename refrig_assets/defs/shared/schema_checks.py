"""Asset-check results shared by the landing and quality assets: contract and schema checks."""

from typing import Any

import dagster as dg
import duckdb

from refrig_assets.core.contract_sql import column_changes, sql_violation_samples, sql_violations
from refrig_assets.core.contracts import Contract
from refrig_assets.defs.shared.ranges import per_range

SAMPLE_ROWS = 10


def sql_contract_check(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    asset: str,
    contract: Contract,
    range_exempt_sql: str | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """``<dataset>_contract``: the relation against its contract, in SQL (fit for millions of
    rows), with the failing checks, their counts and a sample of failing rows as metadata."""
    violations = sql_violations(con, relation, contract, range_exempt_sql)
    sample = (
        sql_violation_samples(con, relation, contract, SAMPLE_ROWS, range_exempt_sql)
        if len(violations)
        else None
    )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{contract.dataset}_contract",
        passed=violations.empty,
        severity=severity,
        metadata={
            "failures": int(violations["failures"].sum()) if len(violations) else 0,
            "contract_version": str(contract.version),  # text: a number would be plotted
            "schema_fingerprint": contract.schema_fingerprint,
            "failing_checks": dg.MetadataValue.md(
                violations.astype(str).to_markdown(index=False) if len(violations) else "none"
            ),
            "sample": dg.MetadataValue.md(
                sample.astype(str).to_markdown(index=False)
                if sample is not None and len(sample)
                else "none"
            ),
        },
    )


def contract_version_metadata(contract: Contract) -> dict:
    """Materialization metadata recording which version of the contract the data follows."""
    return {
        "contract_version": str(contract.version),
        "schema_fingerprint": contract.schema_fingerprint,
        "contract_columns": dg.MetadataValue.json({c.name: c.type for c in contract.columns}),
    }


def schema_check(
    context: dg.AssetExecutionContext, asset: str, contract: Contract
) -> dg.AssetCheckResult:
    """``<asset>_schema_unchanged``: warns when the contract's columns changed since the asset's
    previous materialization (columns added, removed or retyped), naming them."""
    # The hours of a ranged step are recorded when the step ends, so every hour of the range
    # compares with the same materialization before it: looked up once per range.
    previous, previous_fp = per_range(
        context, f"previous_schema:{asset}", lambda: _previous_schema(context, asset)
    )
    changes = column_changes(previous, contract)
    changed = any(changes.values())
    if changed:
        context.log.warning(
            f"{asset}: contracts/{contract.dataset}.yaml columns changed since the last "
            f"materialization: {changes}"
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{asset}_schema_unchanged",
        passed=not changed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "schema_fingerprint": contract.schema_fingerprint,
            "previous_fingerprint": str(previous_fp.value)
            if previous is not None and previous_fp is not None
            else "none",
            "added": ", ".join(changes["added"]) or "none",
            "removed": ", ".join(changes["removed"]) or "none",
            "retyped": ", ".join(changes["retyped"]) or "none",
        },
    )


def _previous_schema(context: dg.AssetExecutionContext, asset: str) -> tuple[Any, Any]:
    """The contract columns and fingerprint the asset's latest materialization recorded."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is not None and event.asset_materialization is not None:
        meta = event.asset_materialization.metadata
        if "contract_columns" in meta:
            return meta["contract_columns"].value, meta.get("schema_fingerprint")
    return None, None


def schema_check_spec(
    asset: str, contract: str, partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetCheckSpec:
    """The ``<asset>_schema_unchanged`` check; ``partitions_def``: the asset's."""
    return dg.AssetCheckSpec(
        f"{asset}_schema_unchanged",
        asset=asset,
        partitions_def=partitions_def,
        description=f"The columns of contracts/{contract}.yaml are the ones the previous "
        "materialization followed (a change is reported with the columns added, removed or retyped).",
    )
