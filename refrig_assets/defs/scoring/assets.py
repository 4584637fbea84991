"""``<model_id>_scores`` assets: the production (or pinned) version scores feature windows.

Hourly detectors score each hourly feature partition; daily detectors score the 24 hourly
partitions of their day. Both also read the feature hours just before their partition when
present, so persistence (a lasting change, not one odd window) holds across partition edges.
A failing detector fails only its own asset; :mod:`.sensors` then builds the hour's alerts from
the scores that do exist.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import ModelConfig, all_model_ids, load_model_config
from refrig_assets.defs.scoring.holds import held, scoring_hold, serving_version, unservable
from refrig_assets.defs.scoring.partition_writer import write_score_partition
from refrig_assets.defs.scoring.range_scores import range_pieces
from refrig_assets.defs.scoring.rollout import rollout_metadata, serve_rollout, serving_rollout
from refrig_assets.defs.shared.contract_checks import contract_check_spec
from refrig_assets.defs.shared.partitions import daily_partitions, hourly_partitions, hours_within
from refrig_assets.defs.shared.ranges import hour_by_hour, per_range, range_backfill_policy
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.untrained import not_trained_scores
from refrig_assets.engines.device_shards import WHOLE_FLEET, hour_shards
from refrig_assets.quality.freshness import stale_feature_partitions
from refrig_assets.scoring.runs import earlier_hours, score_runs
from refrig_assets.scoring.score import lookback_hours

GROUP = "scoring"
# Daily score assets live in their own group: jobs hold one partitioning each (hourly_pipeline
# selects the "scoring" group; daily_scoring this one).
DAILY_GROUP = "daily_scoring"


def feature_hours(context: dg.AssetExecutionContext, schedule: str) -> list[str]:
    """Hourly feature partitions covered by this score partition."""
    if schedule == "hourly":
        return [context.partition_key]
    window = context.partition_time_window
    return hours_within(window.start, window.end)


def score_hour_by_hour(
    refrig: RefrigResource, detector, version: str, hours: list[str], devices=None, config=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of :func:`~refrig_assets.scoring.runs.score_runs` as two whole frames:
    (window starts scored, scores), for callers that need the partition at once (a progressive
    rollout splitting devices between versions); the score assets otherwise write run by run.

    ``devices`` (a progressive rollout's side: device_id Series -> bool mask) keeps only the
    devices that version serves; ``config`` (the models/ settings now) sets the run length."""
    registry = refrig.store.read("device_registry")
    runs = list(
        score_runs(
            refrig.store, registry, detector, version, hours, datetime.now(UTC), devices, config
        )
    )
    if not runs:
        return pd.DataFrame({"window_start": []}), load_contract("model_scores").empty_frame()
    return (
        pd.concat([starts for starts, _ in runs], ignore_index=True),
        pd.concat([scores for _, scores in runs], ignore_index=True),
    )


def build_scoring_asset(config: ModelConfig) -> dg.AssetsDefinition:
    """One score asset for a detector configured in ``models/``."""
    model_id = config.model_id
    asset_name = f"{model_id}_scores"
    partitions = hourly_partitions if config.schedule == "hourly" else daily_partitions

    @dg.asset(
        name=asset_name,
        group_name=GROUP if config.schedule == "hourly" else DAILY_GROUP,
        owners=["team:ml-platform"],
        partitions_def=partitions,
        deps=["device_features", f"{model_id}_model", "device_registry"],
        description=f"{model_id} scores ({config.schedule}, {config.granularity}) in the "
        "model_scores contract: calibrated score, flag, top contributors, model version.",
        check_specs=[contract_check_spec(asset_name, "model_scores", True, partitions)],
        kinds={"parquet", "mlflow"},
        tags={"detector": config.detector},
        backfill_policy=range_backfill_policy() if config.schedule == "hourly" else None,
    )
    @hour_by_hour
    def _score(context: dg.AssetExecutionContext, refrig: RefrigResource) -> dg.MaterializeResult:
        model_config = load_model_config(model_id, refrig.settings.models_dir)
        hours = feature_hours(context, model_config.schedule)
        if hold := scoring_hold(context, refrig, asset_name, model_id, hours):
            return hold  # paused model or stale features: nothing scored, last good scores stay
        if out_of_date := stale_feature_partitions(refrig.store, hours):
            return held(asset_name, "; ".join(out_of_date.values()))  # features older than data
        # The pin, else the audited production version, its artifact verified; a corrupt one
        # gives way to the last good version, and no loadable version to the rules fallback.
        # A ranged step resolves (and verifies) the serving version once for all its hours.
        resolution = per_range(
            context,
            f"serving_version:{model_id}",
            lambda: serving_version(context, refrig, model_id, model_config.pinned_version),
        )
        if resolution.not_trained:  # its training fitted nothing (small fleet): empty scores
            return not_trained_scores(context, refrig, asset_name, resolution)
        if resolution.version is None:
            return unservable(asset_name, resolution)
        version, detector = resolution.version, resolution.detector
        # A degraded serving (corrupt artifact, refused alias) serves one version everywhere.
        rollout = (
            None
            if resolution.degraded
            else serving_rollout(context, refrig, model_id, model_config.pinned_version)
        )
        served = ranged = None
        shards = WHOLE_FLEET
        if not refrig.store.existing_paths("device_features", hours):
            raise FileNotFoundError(f"{model_id}: no device_features for {hours[0]}..{hours[-1]}")
        # Earlier hours (when present) let persistence look back across the partition start.
        earlier = earlier_hours(hours[0], lookback_hours(detector))
        since = pd.Timestamp(context.partition_time_window.start)
        # -- engine switch (refrig_assets.engines): REFRIG_ENGINE=spark scores on Spark --------
        if refrig.engine == "spark":
            from refrig_assets.engines.spark import score_partition_on_spark

            features, scores = score_partition_on_spark(
                refrig.spark,
                detector,
                version,
                refrig.store.existing_paths("device_features", earlier + hours),
                refrig.store.read("device_registry"),
                datetime.now(UTC),
                since=since,
            )
        elif rollout is not None:  # progressive rollout: candidate and champion split the devices
            served = serve_rollout(
                context,
                refrig,
                rollout,
                lambda v: detector if v == version else refrig.registry.load(model_id, v),
                lambda det, v, keep: score_hour_by_hour(
                    refrig, det, v, hours, devices=keep, config=model_config
                ),
            )
            features, scores = served.starts, served.scores
        else:  # run by run (scoring_chunk_hours), device shard by shard (memory budget)
            shards = hour_shards(refrig.store, hours)
            # A ranged step scores its hours in one pass per run of hours (range_scores).
            ranged = range_pieces(context, refrig, model_id, detector, version)
            pieces = (
                ranged
                if ranged is not None
                else score_runs(
                    refrig.store,
                    refrig.store.read("device_registry"),
                    detector,
                    version,
                    hours,
                    datetime.now(UTC),
                    config=model_config,
                    shards=shards,
                )
            )
        # -- end engine switch ---------------------------------------------------------------
        if refrig.engine == "spark" or served is not None:  # the partition as whole frames
            pieces = [(features, scores)]
        # Each piece is checked against the contract before it is appended; bad scores (NaN,
        # out of range) or a diverged distribution rename nothing: the last good partition stays.
        written = write_score_partition(
            context, refrig, asset_name, model_id, version, pieces, since
        )
        if written.hold is not None:
            return written.hold  # scores diverged from this version's previous ones: model paused
        return dg.MaterializeResult(
            metadata={
                "model_version": version,
                "pinned": model_config.pinned_version is not None,
                **resolution.metadata(),
                "lookback_hours": dg.MetadataValue.json(
                    [h for h in earlier if refrig.store.exists("device_features", h)]
                ),
                **written.metadata,
                "device_shards": len(shards),
                # scored with the other hours of its ranged step in one pass (range_scores)
                "range_pass": ranged is not None,
                **rollout_metadata(served),
            },
            check_results=[written.check],
        )

    return _score


scoring_assets = [build_scoring_asset(load_model_config(m)) for m in all_model_ids()]
