"""Hooks the scoring assets call: hold scoring for a paused model or stale features, pause a
model whose newly scored partition diverges from its previous scores, and resolve the version
that serves (audited, artifact verified; the last good one when the artifact is corrupt).

A held partition writes nothing (the last good scores stay) and does not fail, so the other
detectors and the alert step carry on.
"""

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import partition_file_name
from refrig_assets.defs.shared.lifecycle import model_lifecycle
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.fallback import histogram_shift, scoring_hold_reason
from refrig_assets.lifecycle.integrity import ServingResolution, resolve_serving
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.scoring.summary import ScoreSummary, score_counts


def held(
    asset: str, reason: str, check_name: str = "model_scores_contract"
) -> dg.MaterializeResult:
    """The result of a partition that was not scored (nothing written, nothing to validate)."""
    return dg.MaterializeResult(
        metadata={"held": reason, "written": False, "windows_scored": 0},
        check_results=[
            dg.AssetCheckResult(
                asset_key=asset,
                check_name=check_name,
                passed=True,
                metadata={"rows": 0, "held": reason},
            )
        ],
    )


def scoring_hold(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    asset: str,
    model_id: str,
    feature_partitions: list[str],
) -> dg.MaterializeResult | None:
    """A held result when the model is paused, or when the features of the partition are stale
    (present but ending more than their freshness SLA before the partition's end). Checked
    before the model is loaded, so a paused model with a broken artifact does not crash; missing
    features are left to the scoring asset's own error."""
    lifecycle = model_lifecycle(refrig)
    try:
        paused = lifecycle.is_paused(model_id)
    finally:
        lifecycle.audit.close()
    ends = refrig.store.read_many("device_features", feature_partitions, columns=["window_end"])
    if not paused and ends.empty:
        return None
    # A day of which only some hours are partitions (a run over part of a day) is judged at
    # the end of its last hour, not at midnight.
    partition_end = context.partition_time_window.end
    if feature_partitions:
        last_hour = hourly_partitions.time_window_for_partition_key(max(feature_partitions))
        partition_end = min(partition_end, last_hour.end)
    reason = scoring_hold_reason(
        paused,
        ends,
        partition_end,
        float(load_contract("device_features").freshness_sla_minutes),
    )
    if reason is None:
        return None
    context.log.warning(f"{model_id}: scoring held — {reason}")
    return held(asset, reason)


def distribution_hold(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    asset: str,
    model_id: str,
    version: str,
    scores: pd.DataFrame | ScoreSummary,
) -> dg.MaterializeResult | None:
    """Pause the model (audited) and hold when the new scores (a frame, or the summary of a
    partition written piece by piece) diverge from the same version's previous partitions by
    more than the policy's KL."""
    policy = load_policy(refrig.settings.models_dir)
    pause, canary = policy["pause"], policy["canary"]
    current = partition_file_name(context.partition_key)
    earlier = [s for s in refrig.store.partitions(asset) if s < current]
    earlier = earlier[-int(pause["reference_partitions"]) :]
    frames = [
        pd.read_parquet(
            refrig.store.root / asset / f"{s}.parquet", columns=["anomaly_score", "model_version"]
        )
        for s in earlier
    ]
    reference = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if reference.empty:
        return None
    reference = reference[reference["model_version"].astype(str) == str(version)]
    bins = int(canary["histogram_bins"])
    if isinstance(scores, ScoreSummary):
        new_counts, new_windows = scores.histogram, scores.windows
    else:
        new_counts, new_windows = score_counts(scores["anomaly_score"], bins), len(scores)
    anomalous, kl, why = histogram_shift(
        new_counts,
        new_windows,
        reference["anomaly_score"].to_numpy(),
        pause,
        bins,
        float(canary["kl_epsilon"]),
    )
    if not anomalous:
        return None
    lifecycle = model_lifecycle(refrig)
    try:
        lifecycle.pause(
            model_id,
            f"scoring {context.partition_key}",
            f"{why} (version {version}, partition {context.partition_key})",
        )
    finally:
        lifecycle.audit.close()
    context.log.error(f"{model_id}: {why}; scoring paused, nothing written")
    return held(asset, f"paused: {why}")


def serving_version(
    context: dg.AssetExecutionContext, refrig: RefrigResource, model_id: str, pinned: str | None
) -> ServingResolution:
    """The version this partition is scored with, loaded: the pin, else the audited production
    version; a corrupt artifact or an alias moved outside the gates is logged as an error and
    the last good version serves (see :mod:`refrig_assets.lifecycle.integrity`)."""
    lifecycle = model_lifecycle(refrig)
    try:
        history = lifecycle.audit.events(model_id)
    finally:
        lifecycle.audit.close()
    resolution = resolve_serving(refrig.registry, history, model_id, pinned)
    if resolution.degraded:
        context.log.error(resolution.summary())
    return resolution


def unservable(asset: str, resolution: ServingResolution) -> dg.MaterializeResult:
    """No version of the model loads: nothing is scored (the other detectors and the alert step
    carry on) and the serving state hands the model to the rules-based fallback."""
    result = held(asset, resolution.summary())
    return dg.MaterializeResult(
        metadata={**(result.metadata or {}), **resolution.metadata()},
        check_results=result.check_results,
    )
