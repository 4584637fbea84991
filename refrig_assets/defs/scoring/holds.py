"""Hooks the scoring assets call: hold scoring for a paused model or stale features, pause a
model whose newly scored partition diverges from its previous scores, and resolve the version
that serves (audited, artifact verified; the last good one when the artifact is corrupt).

A held partition writes nothing (the last good scores stay) and does not fail, so the other
detectors and the alert step carry on.

In a ranged step (a history backfill) the hours share what does not depend on the hour: one
lifecycle store, opened once (:func:`lifecycle_store`; each hour still asks it whether the
model is paused, so a pause recorded during the range, by this step's distribution hold or by
an operator, holds the next hours as hour by hour), and the distribution hold's reference
(:class:`ScoreReference`: the partitions present, listed once and kept up to date with the
hours the step writes, and the previous partitions' scores, re-read only when their file
changed). The lifecycle policy needs no sharing: its file is parsed once per version.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import partition_file_name
from refrig_assets.defs.shared.lifecycle import model_lifecycle
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import in_range, per_range
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.fallback import histogram_shift, scoring_hold_reason
from refrig_assets.lifecycle.integrity import ServingResolution, resolve_serving
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.lifecycle.promotion import ModelLifecycle
from refrig_assets.scoring.summary import ScoreSummary, score_counts

REFERENCE_COLUMNS = ["anomaly_score", "model_version"]


@contextmanager
def lifecycle_store(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> Iterator[ModelLifecycle]:
    """The lifecycle store for one hour: a one-hour run opens and closes its own; the hours of a
    ranged step share one, closed after the range (opening it creates and checks the audit
    table, which costs more than the hour's queries). Every query still reads the database,
    so what an hour sees is what it would see alone."""
    if in_range(context):
        yield per_range(
            context, "model_lifecycle", lambda: model_lifecycle(refrig), _close_lifecycle
        )
        return
    lifecycle = model_lifecycle(refrig)
    try:
        yield lifecycle
    finally:
        _close_lifecycle(lifecycle)


def _close_lifecycle(lifecycle: ModelLifecycle) -> None:
    lifecycle.audit.close()


class ScoreReference:
    """A score asset's earlier partitions, as the distribution hold compares with them.

    The partitions present are listed once, then kept up to date with :meth:`written` (in a
    ranged step the step itself is the only writer of its asset's partitions); a partition's
    scores are read once and read again only when its file changes (size or modification
    time), so each hour reads the hour written just before it, not every reference hour."""

    def __init__(self, root: Path, asset: str, present: list[str]):
        self.directory = root / asset
        self.present = set(present)
        self._frames: dict[str, tuple[tuple[int, int], pd.DataFrame]] = {}

    def earlier(self, current: str, count: int) -> list[str]:
        """The ``count`` newest partitions before ``current`` (oldest first); the scores kept
        of any other partition are let go (a range keeps at most ``count`` hours in memory)."""
        before = sorted(s for s in self.present if s < current)
        chosen = before[-count:] if count > 0 else []
        for stem in set(self._frames) - set(chosen):
            del self._frames[stem]
        return chosen

    def scores(self, stem: str) -> pd.DataFrame:
        """The partition's anomaly scores and model versions (a copy the caller may keep)."""
        path = self.directory / f"{stem}.parquet"
        stat = os.stat(path)
        key = (stat.st_size, stat.st_mtime_ns)
        cached = self._frames.get(stem)
        if cached is None or cached[0] != key:
            # (pyarrow directly: pandas' read_parquet costs ~3x as much for an hour's file)
            cached = (key, pq.ParquetFile(path).read(columns=REFERENCE_COLUMNS).to_pandas())
            self._frames[stem] = cached
        return cached[1]

    def written(self, stem: str) -> None:
        """The step replaced (or created) partition ``stem``."""
        self.present.add(stem)
        self._frames.pop(stem, None)


def score_reference(
    context: dg.AssetExecutionContext, refrig: RefrigResource, asset: str
) -> ScoreReference:
    """The distribution hold's reference of ``asset`` for this hour (one per ranged step)."""

    def make() -> ScoreReference:
        return ScoreReference(refrig.store.root, asset, refrig.store.partitions(asset))

    return per_range(context, f"score_reference:{asset}", make) if in_range(context) else make()


def reference_written(
    context: dg.AssetExecutionContext, refrig: RefrigResource, asset: str
) -> None:
    """This hour's partition of ``asset`` was written: the next hours of a ranged step compare
    with it (a one-hour run keeps no reference)."""
    if in_range(context):
        score_reference(context, refrig, asset).written(partition_file_name(context.partition_key))


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
    with lifecycle_store(context, refrig) as lifecycle:
        paused = lifecycle.is_paused(model_id)
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
    policy = load_policy(refrig.settings.models_dir)  # parsed once per version of the file
    pause, canary = policy["pause"], policy["canary"]
    reference_of = score_reference(context, refrig, asset)
    earlier = reference_of.earlier(
        partition_file_name(context.partition_key), int(pause["reference_partitions"])
    )
    frames = [reference_of.scores(s) for s in earlier]
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
    with lifecycle_store(context, refrig) as lifecycle:
        lifecycle.pause(
            model_id,
            f"scoring {context.partition_key}",
            f"{why} (version {version}, partition {context.partition_key})",
        )
    context.log.error(f"{model_id}: {why}; scoring paused, nothing written")
    return held(asset, f"paused: {why}")


def serving_version(
    context: dg.AssetExecutionContext, refrig: RefrigResource, model_id: str, pinned: str | None
) -> ServingResolution:
    """The version this partition is scored with, loaded: the pin, else the audited production
    version; a corrupt artifact or an alias moved outside the gates is logged as an error and
    the last good version serves (see :mod:`refrig_assets.lifecycle.integrity`)."""
    with lifecycle_store(context, refrig) as lifecycle:
        history = lifecycle.audit.events(model_id)
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
