"""Turning contract validation into asset check results (failure counts and a sample)."""

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import Contract
from refrig_assets.scoring.conformance import contract_failures

SAMPLE_ROWS = 10


def contract_check_spec(
    asset: str,
    contract: str,
    blocking: bool,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetCheckSpec:
    """The ``<contract>_contract`` check of ``asset``; give the asset's ``partitions_def`` so each
    evaluation names the partition it checked."""
    stops = " A failure stops the assets downstream." if blocking else ""
    return dg.AssetCheckSpec(
        name=f"{contract}_contract",
        asset=asset,
        blocking=blocking,
        partitions_def=partitions_def,
        description=f"Rows follow contracts/{contract}.yaml (types, nulls, ranges, allowed values, "
        f"keys).{stops}",
    )


def contract_check_result(
    asset: str, contract: Contract, frame: pd.DataFrame
) -> dg.AssetCheckResult:
    """Validate ``frame`` against ``contract`` (pandera's failures, pandera run only when the
    frame is not shown to conform without it); failures summarised as metadata."""
    return contract_failures_result(asset, contract, len(frame), contract_failures(contract, frame))


def contract_failures_result(
    asset: str, contract: Contract, rows: int, failures: pd.DataFrame
) -> dg.AssetCheckResult:
    """The check result of ``rows`` rows validated (perhaps piece by piece) with ``failures``
    (pandera's failure table, :meth:`Contract.validate`)."""
    by_check = (
        failures.groupby(["column", "check"], dropna=False).size().reset_index(name="failures")
        if len(failures)
        else pd.DataFrame(columns=["column", "check", "failures"])
    )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{contract.dataset}_contract",
        passed=failures.empty,
        metadata={
            "rows": rows,
            "failures": len(failures),
            # Text, not a number: the UI would plot a constant line.
            "contract_version": str(contract.version),
            "schema_fingerprint": contract.schema_fingerprint,
            "failures_by_check": dg.MetadataValue.md(by_check.to_markdown(index=False))
            if len(by_check)
            else "none",
            "sample": dg.MetadataValue.md(
                failures.head(SAMPLE_ROWS).astype(str).to_markdown(index=False)
            )
            if len(failures)
            else "none",
        },
    )
