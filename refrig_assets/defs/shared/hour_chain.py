"""Assets that depend on one another, run over a range of hours in one step, hour by hour.

Some hourly assets fold each hour into state the next hour reads: alerts are folded into
incidents as they are stored, so the incidents of an hour must never see a later hour's alerts.
A ranged run of such assets cannot promise that: Dagster runs the first asset's step for every
hour of the range before the next asset's step starts. Here one op runs, hour by hour in hour
order, the one-hour bodies of the given assets (``refrig pipeline run``: ``device_alerts``,
``device_incidents``, ``device_status``; the same functions the hourly schedule runs, so the
same files, alert and incident rows, audit, notifications and defrost state), and records every
hour of each asset as its own materialization with its own check results (an hour's
materializations are stored as one event batch once the hour's assets have run: one transaction
per event log file, not one per event).

A failed blocking check stops the range at that hour, as a one-hour run skips the steps
downstream of it: the hour's materializations and checks so far are recorded and the step fails
naming the hour and asset (``refrig pipeline run`` goes on with the next hour). An hour that
raises fails the step after the hours before it are recorded (the runner runs the rest hour by
hour, so the bad hour fails alone).

The job is built per backfill run (:func:`hour_chain_job`, not part of the definitions): it is
the runner's range mode, and ``before_hour`` lets a replay store its streaming alerts just
before the hour they meet, as the hourly runs see them.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

from refrig_assets.core.storage import reads_kept
from refrig_assets.defs.shared.event_log import log_check_evaluations
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import (
    HourContext,
    finish_range,
    hour_check_evaluations,
    of_this_run,
)
from refrig_assets.defs.shared.resources import RefrigResource

# Metadata of the failure a blocking check raises: the hour and the asset it stopped at.
BLOCKED_HOUR, BLOCKED_ASSET = "blocked_hour", "blocked_asset"


class _Hour(HourContext):
    """One hour of the chain as its one-hour bodies see it: the hour, its window, and, for
    anything else (the run, the log), the op's context. Like an hour of a ranged step
    (:func:`refrig_assets.defs.shared.ranges.in_range`), the hours and assets of the chain share
    one :func:`~refrig_assets.defs.shared.ranges.per_range` state, finished after the range."""

    def __init__(self, context: dg.OpExecutionContext, key: str, state: dict[str, Any]):
        super().__init__(context, key, state)  # type: ignore[arg-type]
        self._window = hourly_partitions.time_window_for_partition_key(key)

    @property
    def partition_time_window(self) -> Any:
        return self._window


def _body(asset: dg.AssetsDefinition) -> Callable[..., Any]:
    """The asset's compute function (its ``hour_by_hour`` wrapper runs the one-hour body)."""
    return asset.op.compute_fn.decorated_fn  # type: ignore[union-attr]


def _hour_results(
    asset: dg.AssetsDefinition, hour: _Hour, refrig: RefrigResource
) -> list[dg.MaterializeResult]:
    out = _body(asset)(hour, refrig)
    results = list(out) if isinstance(out, Iterator) else [out]
    if not all(isinstance(r, dg.MaterializeResult) for r in results):
        raise TypeError(f"{asset.key.to_user_string()}: unexpected results {results!r}")
    return results


def hour_materializations(
    context: dg.OpExecutionContext, materializations: Sequence[dg.AssetMaterialization]
) -> Iterator[DagsterEvent]:
    """The step's events of ``materializations`` (one hour's), logged as one batch: with
    ``DAGSTER_EVENT_BATCH_SIZE`` set (``refrig pipeline run``) the event log stores them in one
    transaction per file instead of one per event; without it, one by one as yielded
    materializations are. Yielded so that the step's result lists them, as it lists yielded
    materializations."""
    step = context.get_step_execution_context()
    batch = generate_event_batch_id()
    for i, materialization in enumerate(materializations):
        yield DagsterEvent.asset_materialization(
            step,
            materialization,
            DagsterEventBatchMetadata(batch, i == len(materializations) - 1),
        )


def hour_chain_job(
    name: str,
    steps: Sequence[dg.AssetsDefinition],
    before_hour: Callable[[str], None] | None = None,
) -> dg.JobDefinition:
    """A job ``name`` of one op (of the same name) that runs ``steps``, in the order a one-hour
    run materializes them, for the hours ``first``..``last`` of its config, hour by hour
    (``before_hour(key)`` first, if given), recording each hour of each asset as a one-hour run
    records it."""
    assets = ", ".join(a.key.to_user_string() for a in steps)

    @dg.op(
        name=name,
        description=f"{assets} over a range of hours, hour by hour.",
        config_schema={"first": str, "last": str},
        out={},
    )
    def hour_chain(
        context: dg.OpExecutionContext, refrig: RefrigResource
    ) -> Iterator[DagsterEvent]:
        keys = hourly_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(context.op_config["first"], context.op_config["last"])
        )
        state: dict[str, Any] = {}
        evaluations: list[dg.AssetCheckEvaluation] = []
        try:
            # the hours read the partitions of the hours before them again (look-backs)
            with reads_kept():
                yield from _chain(context, refrig, keys, state, evaluations)
        finally:
            # Every hour's check results, after the materializations they evaluate and naming
            # them (as a ranged step stores them), in one batch.
            log_check_evaluations(context, of_this_run(context, evaluations))  # type: ignore[arg-type]
            finish_range(state)

    def _chain(
        context: dg.OpExecutionContext,
        refrig: RefrigResource,
        keys: Sequence[str],
        state: dict,
        evaluations: list[dg.AssetCheckEvaluation],
    ) -> Iterator[DagsterEvent]:
        specs = {
            asset.key: {(s.asset_key, s.name): s for s in asset.check_specs} for asset in steps
        }
        for key in keys:
            if before_hour is not None:
                before_hour(key)
            hour = _Hour(context, key, state)
            done: list[dg.AssetMaterialization] = []
            try:
                for asset in steps:
                    results = _hour_results(asset, hour, refrig)
                    blocked: list[str] = []
                    for result in results:
                        metadata = dict(result.metadata or {})
                        done.append(
                            dg.AssetMaterialization(asset.key, partition=key, metadata=metadata)
                        )
                        found, failed = hour_check_evaluations(
                            result, asset.key, specs[asset.key], key
                        )
                        evaluations += found
                        blocked += failed
                    if blocked:
                        raise dg.Failure(
                            description="blocking check(s) failed: " + "; ".join(blocked),
                            metadata={
                                "failed_checks": dg.MetadataValue.json(blocked),
                                BLOCKED_HOUR: key,
                                BLOCKED_ASSET: asset.key.to_user_string(),
                            },
                        )
            except Exception:
                # The hour's materializations so far are recorded before the step fails.
                yield from hour_materializations(context, done)
                raise
            yield from hour_materializations(context, done)

    @dg.job(
        name=name,
        description=f"{assets} over a range of hours, hour by hour (history backfills).",
        resource_defs={"refrig": RefrigResource()},
        executor_def=dg.in_process_executor,
    )
    def chain() -> None:
        hour_chain()

    return chain
