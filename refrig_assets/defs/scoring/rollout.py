"""Progressive rollout in the score assets: which rollout a partition serves, serving it, and
what its metadata shows (per-version devices, windows, flags, failures and latency; the step's
gate values and decision). The decision itself is taken and audited in
:mod:`refrig_assets.lifecycle.rollout`."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from refrig_assets.defs.shared.lifecycle import model_lifecycle
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.rollout import (
    Rollout,
    RolloutManager,
    ServedPartition,
    serve_partition,
)


def serving_rollout(
    context: dg.AssetExecutionContext, refrig: RefrigResource, model_id: str, pinned: str | None
) -> Rollout | None:
    """The rollout this partition serves: none without one in progress, while a version is
    pinned, or on the Spark engine (there the champion scores every device and the rollout
    waits)."""
    lifecycle = model_lifecycle(refrig)
    try:
        manager = RolloutManager(lifecycle)
        if refrig.engine == "spark":
            if (rollout := manager.active(model_id)) is not None:
                context.log.warning(
                    f"{model_id}: the rollout of v{rollout.candidate} is served by the local "
                    "engine only; on Spark the champion scores every device and it waits"
                )
            return None
        return manager.serving(model_id, pinned)
    finally:
        lifecycle.audit.close()


def serve_rollout(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    rollout: Rollout,
    load: Callable[[str], Any],
    score_side: Callable,
) -> ServedPartition:
    """Score the partition split by device between candidate and champion, then judge and
    apply the step (audited as ``scoring <partition>``)."""
    lifecycle = model_lifecycle(refrig)
    try:
        served = serve_partition(
            RolloutManager(lifecycle),
            rollout,
            context.partition_key,
            load,
            score_side,
            f"scoring {context.partition_key}",
        )
    finally:
        lifecycle.audit.close()
    decision = served.decision
    log = context.log.error if served.fallback else context.log.info
    log(
        f"{rollout.model_id}: {rollout.describe()} — {decision.action}: {decision.reason}"
        + (
            f"; candidate's devices scored by the champion ({served.fallback})"
            if served.fallback
            else ""
        )
    )
    return served


def rollout_metadata(served: ServedPartition | None) -> dict[str, Any]:
    """Score-asset metadata of a partition served during a rollout (empty otherwise)."""
    if served is None:
        return {}
    decision = served.decision
    rollout = decision.rollout
    gates = pd.DataFrame(
        [
            {
                "gate": g.name,
                "value": g.value,
                "rule": g.rule,
                "passed": g.passed,
                "detail": g.detail,
            }
            for g in decision.gates
        ],
        columns=["gate", "value", "rule", "passed", "detail"],
    )
    return {
        "rollout_candidate": rollout.candidate,
        "rollout_step": f"{rollout.step + 1}/{len(rollout.steps)}",
        "rollout_share": float(rollout.share),
        "rollout_decision": decision.action,
        "rollout_reason": decision.reason,
        "rollout_fallback": served.fallback,
        "rollout_gates": dg.MetadataValue.md(gates.to_markdown(index=False) if len(gates) else "-"),
        "rollout_gate_values": dg.MetadataValue.json(decision.gate_values()),
        "model_versions": dg.MetadataValue.json(served.versions()),
    }
