"""Scores of a detector that is not trained: an empty partition that says why.

A detector whose training fitted nothing (a pilot fleet with no more devices than DBSCAN's
``min_samples``, too few scorable windows; see :class:`~refrig_assets.detectors.base.NotTrainable`)
has no version to score with. That is a known state, not a failure: its score partitions are
written empty, in the model_scores contract, with the reason in their metadata, so every step
that reads scores sees "no scores this hour" from it and counts only the models that scored.
"""

import dagster as dg

from refrig_assets.core.contracts import load_contract
from refrig_assets.defs.shared.contract_checks import contract_check_result
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.integrity import ServingResolution


def not_trained_scores(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    asset: str,
    resolution: ServingResolution,
) -> dg.MaterializeResult:
    """Write ``asset``'s partition empty (contract-conformant) and say the model is not trained.

    No ``model_version`` in the metadata: no version scored (the health endpoint counts
    scoring steps by it)."""
    contract = load_contract("model_scores")
    empty = contract.empty_frame()
    path = refrig.store.write(asset, context.partition_key, empty)
    context.log.warning(f"{resolution.summary()}: nothing scored")
    return dg.MaterializeResult(
        metadata={
            **resolution.metadata(),
            "not_trained": resolution.not_trained or "",
            "windows_scored": 0,
            "written": True,
            "path": str(path),
        },
        check_results=[contract_check_result(asset, contract, empty)],
    )
