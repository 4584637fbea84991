"""Hourly assets over a range of hours in one run: each hour as its own partition.

A history backfill runs many hours per Dagster run (``config/backfill.yaml``), so it costs what
its data costs instead of one run's bookkeeping per hour. The hourly assets keep their one-hour
bodies; :func:`hour_by_hour` runs the body once per hour of the run's range, in order, each time
with a context whose ``partition_key`` and ``partition_time_window`` are that hour's, so every
hour is written exactly as a one-hour run writes it (same files, same atomic replace, same
cross-hour state: stuck-sensor tails, alert dedup, incidents).

What Dagster 1.13 would lose in a ranged step is recorded per hour here:

- materialization metadata: Dagster gives every partition of a ranged output the same
  metadata, so each hour's is attached to its own partition (``add_asset_metadata``);
- check results: a check result yielded in a ranged step carries no partition, so each hour's
  is logged as an ``AssetCheckEvaluation`` of that hour, right after the step's materializations
  (every hour's evaluations as one batch, one transaction per event log file, see
  :func:`refrig_assets.defs.shared.event_log.log_check_evaluations`; the evaluation of a
  materialization of the same run is that materialization's, whatever their order);
- blocking checks: a failed blocking check of any hour fails the step after every hour's
  materialization is recorded (the hours downstream are then not run; ``refrig pipeline run``
  runs such a range again hour by hour, so the failing hour blocks only itself);
- an hour that raises fails the step; the hours before it, written, are recorded as
  materialized, so a rerun hour by hour starts at the failing hour.

An asset may also give a range body (``@hour_by_hour(ranged=...)``) that computes all the hours
of the step in one pass and still writes and reports each hour as its own partition, exactly as
the one-hour body would; when it cannot take the range (it says why, in each hour's
``range_mode`` metadata and the log), the hours run one by one.

A one-hour run goes through the body unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import dagster as dg
import duckdb
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.storage.event_log.base import AssetRecordsFilter
from dagster_shared.record import replace

from refrig_assets.core.backfill import hours_per_run
from refrig_assets.core.duck import connect
from refrig_assets.core.storage import reads_kept
from refrig_assets.defs.shared.event_log import log_check_evaluations
from refrig_assets.engines.memory import load_memory_budget

T = TypeVar("T")
RANGE_STATE = "_refrig_range_state"
_FINISH = "__finish__"  # the range state's (finish, object) pairs


def parquet_columns(path) -> tuple[tuple[str, str], ...]:
    """A Parquet file's column names and types, to tell whether a range's files can be read as
    one relation (nullability left out: DuckDB writes a column without NULLs as required)."""
    import pyarrow.parquet as pq

    return tuple((f.name, str(f.type)) for f in pq.read_schema(path))


def written_in_groups(
    keys: list[str],
    write: Callable[[str], T],
    rows: Callable[[T], int],
    results: Callable[[list[T]], HourResults],
) -> HourResults:
    """A range body's loop: each hour of ``keys`` written in order (``write(key)``), and the
    results of a group of written hours (``results(group)``) given once the group's rows would
    need more than one memory shard (config/performance.yaml), after the last hour, and, when
    an hour raises, for the hours written before it (as their own runs would record them)
    before the error goes on."""
    budget = load_memory_budget()
    group: list[T] = []
    try:
        for key in keys:
            group.append(write(key))
            if budget.shards_for(sum(rows(hour) for hour in group)) > 1:
                yield from results(group)
                group = []
    except Exception:
        yield from results(group)
        raise
    yield from results(group)


def checks_at_once(
    hours: list[T],
    files: list[Any],
    together: Callable[[], Any],
    alone: Callable[[T], Any],
    passed: Callable[[Any], bool],
) -> list[tuple[Any, str]]:
    """Each of ``hours``' contract check results, as ``alone(hour)`` gives them, with how they
    were found (the hour's ``range_mode``).

    The check of the hours' ``files`` read as one relation, ``together()``, passes only when
    every hour's would: each contract probe counts failing rows, and a key repeated within an
    hour is repeated in the hours together. A passing check's result names no rows, so it is
    then every hour's result; otherwise (a failure, files of other columns or types) each hour
    is checked alone."""
    found, why = None, "one hour"
    if len(hours) > 1:
        why = "the hours' files differ in columns or types"
        if len({parquet_columns(p) for p in files}) == 1:
            why = "the check of the hours together failed"
            try:
                found = together()
            except duckdb.Error as e:
                why = f"the hours together could not be checked: {e}"
    if found is not None and passed(found):
        return [(found, f"hours in order; contract checks over {len(hours)} hours at once")] * len(
            hours
        )
    mode = f"hours in order; contract checks hour by hour: {why}"
    return [(alone(hour), mode) for hour in hours]


def range_backfill_policy() -> dg.BackfillPolicy:
    """Backfills of the hourly assets: runs of ``hours_per_run`` hours (config/backfill.yaml)."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=hours_per_run())


class HourContext:
    """The step's context seen as a one-hour run of ``key`` (everything else is the step's)."""

    def __init__(self, context: dg.AssetExecutionContext, key: str, state: dict[str, Any]):
        self._context = context
        self._key = key
        self._state = state

    @property
    def partition_key(self) -> str:
        return self._key

    @property
    def partition_keys(self) -> list[str]:
        return [self._key]

    @property
    def has_partition_key(self) -> bool:
        return True

    @property
    def has_partition_key_range(self) -> bool:
        return False

    @property
    def partition_key_range(self) -> dg.PartitionKeyRange:
        return dg.PartitionKeyRange(self._key, self._key)

    @property
    def partition_time_window(self):
        partitions = cast(
            dg.TimeWindowPartitionsDefinition, self._context.assets_def.partitions_def
        )
        return partitions.time_window_for_partition_key(self._key)

    def __getattr__(self, name: str) -> Any:
        if name == RANGE_STATE:
            return self._state
        return getattr(self._context, name)


def finish_range(state: dict[str, Any]) -> None:
    """Finish the objects a range's hours shared (:func:`per_range`'s ``finish``), once, after
    the last hour (also when an hour failed)."""
    for finish, obj in state.get(_FINISH, []):
        finish(obj)


def in_range(context: dg.AssetExecutionContext) -> bool:
    """True when this hour is one of several of a ranged step (see :func:`per_range`)."""
    return isinstance(context, HourContext)


def per_range(
    context: dg.AssetExecutionContext,
    name: str,
    make: Callable[[], T],
    finish: Callable[[T], None] | None = None,
) -> T:
    """An object made once for all the hours of a ranged step (``finish`` is called on it once,
    after the last hour, also when an hour failed); in a one-hour run simply ``make()``, which
    the body finishes itself (``in_range`` tells which)."""
    if not in_range(context):
        return make()
    state: dict[str, Any] = getattr(context, RANGE_STATE)
    if name not in state:
        state[name] = make()
        if finish is not None:
            state.setdefault(_FINISH, []).append((finish, state[name]))
    return cast(T, state[name])


@contextmanager
def hour_connection(context: dg.AssetExecutionContext) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection (:func:`refrig_assets.core.duck.connect`) for one hour's body.

    In a ranged step the hours share one, closed after the range: opening an in-memory database
    costs more than a small hour's queries. The body must therefore name its views and tables
    with ``CREATE OR REPLACE``. A one-hour run gets its own, closed when the hour ends."""
    if in_range(context):
        yield per_range(context, "duckdb_connection", connect, lambda con: con.close())
        return
    con = connect()
    try:
        yield con
    finally:
        con.close()


# What a range body gives: per hour of the range, in hour order, that hour's results (yielded
# once the hour is written, so an hour that fails leaves the hours before it recorded); or, when
# it cannot take this range, the reason, and the range runs hour by hour.
HourResults = Iterator[tuple[str, list[dg.MaterializeResult]]]
RangeBody = Callable[..., "HourResults | str"]
RANGE_MODE = "range_mode"  # metadata of every hour of a ranged step: how the hour was computed


def hour_by_hour(body: Callable[..., Any] | None = None, *, ranged: RangeBody | None = None) -> Any:
    """Decorate an hourly asset's one-hour body so that a ranged run runs it per hour.

    Place it under ``@dg.asset``/``@dg.multi_asset`` (with ``backfill_policy=``
    :func:`range_backfill_policy`); the body's signature is kept for Dagster.

    ``ranged`` (``@hour_by_hour(ranged=f)``): a range body, ``f(context, keys, *args)``, that
    computes all the hours ``keys`` of a ranged step in one pass and yields each hour's results
    as the one-hour body would give them (each hour still written as its own partition); or
    returns a reason (text) why it cannot, and the hours run one by one. Each hour's metadata
    says which way it was computed (``range_mode``; a range body may set an hour's own, e.g.
    for hours it had to compute one by one)."""
    if body is None:
        return functools.partial(hour_by_hour, ranged=ranged)

    @functools.wraps(body)
    def run(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if context.has_partition_key:
            yield from _results(body(context, *args, **kwargs))
            return
        yield from _over_range(body, context, args, kwargs, ranged)

    return run


def _results(out: Any) -> Iterator[Any]:
    if inspect.isgenerator(out):
        yield from out
    elif out is not None:
        yield out


def hour_check_evaluations(
    result: dg.MaterializeResult,
    asset: dg.AssetKey,
    specs: Mapping[tuple[dg.AssetKey, str], dg.AssetCheckSpec],
    key: str,
) -> tuple[list[dg.AssetCheckEvaluation], list[str]]:
    """The check results of one hour's ``result`` (of ``asset``) as evaluations of hour ``key``,
    and the blocking ones that failed (``"<hour> <asset>.<check>"``)."""
    evaluations, blocked = [], []
    for check in result.check_results or []:
        target = dg.AssetKey.from_coercible(check.asset_key) if check.asset_key else asset
        spec = specs.get((target, str(check.check_name)))
        blocking = bool(spec and spec.blocking)
        evaluations.append(
            dg.AssetCheckEvaluation(
                asset_key=target,
                check_name=str(check.check_name),
                passed=check.passed,
                metadata=check.metadata,
                severity=check.severity,
                description=check.description,
                blocking=blocking,
                partition=key,
            )
        )
        if blocking and not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            blocked.append(f"{key} {target.to_user_string()}.{check.check_name}")
    return evaluations, blocked


def of_this_run(
    context: dg.AssetExecutionContext, evaluations: list[dg.AssetCheckEvaluation]
) -> list[dg.AssetCheckEvaluation]:
    """``evaluations`` (of hours this step has recorded as materialized), each naming its hour's
    materialization of this run as its target, as a one-hour run's evaluation does: Dagster
    counts a partition's check result as current only when it targets the partition's latest
    materialization (one query per asset for all the hours)."""
    hours: dict[dg.AssetKey, set[str]] = {}
    for evaluation in evaluations:
        if evaluation.partition is not None:
            hours.setdefault(evaluation.asset_key, set()).add(evaluation.partition)
    targets: dict[tuple[dg.AssetKey, str], AssetCheckEvaluationTargetMaterializationData] = {}
    for asset, keys in hours.items():
        latest = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset, asset_partitions=sorted(keys)), limit=len(keys)
        ).records
        for found in latest:
            if found.run_id == context.run_id and found.partition_key is not None:
                targets.setdefault(
                    (asset, found.partition_key),
                    AssetCheckEvaluationTargetMaterializationData(
                        storage_id=found.storage_id, run_id=found.run_id, timestamp=found.timestamp
                    ),
                )
    return [
        replace(e, target_materialization_data=targets.get((e.asset_key, e.partition or "")))
        for e in evaluations
    ]


def _hours(body, context: dg.AssetExecutionContext, args, kwargs, state, ranged, mode) -> Any:
    """Each hour of the range with its results: from the range body, else hour by hour."""
    keys = list(context.partition_keys)
    if ranged is not None:
        out = ranged(context, keys, *args, **kwargs)
        if not isinstance(out, str):
            mode.append(f"one pass over {len(keys)} hours")
            yield from out
            return
        mode.append(f"hour by hour: {out}")
        context.log.info(f"{context.op_def.name}: hour by hour: {out}")
    else:
        mode.append("hour by hour")
    for key in keys:
        hour = cast(dg.AssetExecutionContext, HourContext(context, key, state))
        yield key, _results(body(hour, *args, **kwargs))


def _over_range(
    body, context: dg.AssetExecutionContext, args, kwargs, ranged=None
) -> Iterator[Any]:
    # the hours read the partitions of the hours before them again (look-backs, baselines)
    with reads_kept():
        yield from _over_hours(body, context, args, kwargs, ranged)


def _over_hours(body, context: dg.AssetExecutionContext, args, kwargs, ranged) -> Iterator[Any]:
    state: dict[str, Any] = {}
    produced: list[dg.AssetKey] = []
    blocked: list[str] = []
    specs = {(s.asset_key, s.name): s for s in context.assets_def.check_specs}
    done: list[tuple[str, dg.AssetKey, dict]] = []  # hours finished, for a failure's record
    evaluations: list[dg.AssetCheckEvaluation] = []  # of the hours finished
    mode: list[str] = []
    try:
        for key, results in _hours(body, context, args, kwargs, state, ranged, mode):
            finished = []
            found_here: list[dg.AssetCheckEvaluation] = []
            for result in results:
                if not isinstance(result, dg.MaterializeResult):
                    raise TypeError(f"{context.op_def.name}: unexpected result {type(result)}")
                asset = (
                    dg.AssetKey.from_coercible(result.asset_key)
                    if result.asset_key
                    else context.assets_def.key
                )
                if asset not in produced:
                    produced.append(asset)
                metadata = dict(result.metadata or {})
                if ranged is not None:  # unless the range body says how this hour went
                    metadata.setdefault(RANGE_MODE, mode[0])
                context.add_asset_metadata(metadata, asset_key=asset, partition_key=key)
                finished.append((key, asset, metadata))
                found, failed = hour_check_evaluations(result, asset, specs, key)
                found_here += found
                blocked += failed
            done += finished
            evaluations += found_here
    except Exception:
        # The hours before the failing one were written: record them, as their own runs would.
        for key, asset, metadata in done:
            yield dg.AssetMaterialization(asset, partition=key, metadata=metadata)
        log_check_evaluations(context, of_this_run(context, evaluations))
        raise
    finally:
        finish_range(state)
    for asset in produced:
        yield dg.MaterializeResult(asset_key=asset)
    # Every hour's evaluations, stored after the materializations they evaluate; the checks'
    # outputs still close the step (and let the steps downstream run when nothing blocks).
    log_check_evaluations(context, of_this_run(context, evaluations))
    for check_key in context.selected_asset_check_keys:
        name = context.assets_def.get_output_name_for_asset_check_key(check_key)
        yield dg.Output(None, output_name=name)
    if blocked:
        raise dg.Failure(
            description="blocking check(s) failed: " + "; ".join(blocked),
            metadata={"failed_checks": dg.MetadataValue.json(blocked)},
        )
