"""Progressive rollout in the score assets: which rollout a partition serves, serving it, and
what its metadata shows (per-version devices, windows, flags, failures and latency; the step's
gate values and decision). The decision itself is taken and audited in
:mod:`refrig_assets.lifecycle.rollout`."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pandas as pd

from refrig_assets.defs.scoring.holds import lifecycle_store
from refrig_assets.defs.shared.ranges import in_range, per_range
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.rollout import (
    Rollout,
    RolloutManager,
    ServedPartition,
    serve_partition,
)


@contextmanager
def rollout_manager(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> Iterator[RolloutManager]:
    """The rollout manager for one hour, on :func:`lifecycle_store`'s store: the hours of a
    ranged step share one (its tables are created and checked once); every question still
    reads the database."""
    with lifecycle_store(context, refrig) as lifecycle:
        if in_range(context):
            yield per_range(context, "rollout_manager", lambda: RolloutManager(lifecycle))
        else:
            yield RolloutManager(lifecycle)


def serving_rollout(
    context: dg.AssetExecutionContext, refrig: RefrigResource, model_id: str, pinned: str | None
) -> Rollout | None:
    """The rollout this partition serves: none without one in progress, while a version is
    pinned, or on the Spark engine (there the champion scores every device and the rollout
    waits)."""
    with rollout_manager(context, refrig) as manager:
        if refrig.engine == "spark":
            if (rollout := manager.active(model_id)) is not None:
                context.log.warning(
                    f"{model_id}: the rollout of v{rollout.candidate} is served by the local "
                    "engine only; on Spark the champion scores every device and it waits"
                )
            return None
        return manager.serving(model_id, pinned)


def serve_rollout(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    rollout: Rollout,
    load: Callable[[str], Any],
    score_side: Callable,
) -> ServedPartition:
    """Score the partition split by device between candidate and champion, then judge and
    apply the step (audited as ``scoring <partition>``)."""
    with rollout_manager(context, refrig) as manager:
        served = serve_partition(
            manager,
            rollout,
            context.partition_key,
            load,
            score_side,
            f"scoring {context.partition_key}",
        )
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
