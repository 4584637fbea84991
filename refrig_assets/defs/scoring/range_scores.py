"""A score asset's hours in a ranged step, scored in one pass per run of hours.

Scoring a window does not depend on the hour it is stored in: the detector scores each window
from its own features and, for persistence, the device's windows just before it
(``detector.lookback``). So the hours of a ranged step (a history backfill) are read and scored
together, one detector call over a run of consecutive hours (as many as the memory budget of
config/performance.yaml holds at once), and each hour's share is then written and checked as
that hour's partition by the one-hour body, with the same guards (paused model, stale features,
rollout, distribution hold) before it, hour by hour. The scores are the hour-by-hour ones:
each hour's windows, with the same earlier windows as context, by the same detector version
(the one the step resolved for all its hours).

An hour is scored alone, as before, when its run cannot be scored in one pass: the step is not
a range of hours, the hour alone is over the memory budget (device shards), or a feature row
lies outside the hour of its partition.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as RANGE_END_TAG
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as RANGE_START_TAG

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import in_range, per_range
from refrig_assets.detectors.base import Detector
from refrig_assets.engines.device_shards import feature_file_readings
from refrig_assets.engines.memory import MemoryBudget, load_memory_budget
from refrig_assets.scoring.runs import HOUR_KEY, earlier_hours
from refrig_assets.scoring.score import cohort_of, lookback_hours, score_windows

FEATURES = "device_features"
HOUR = pd.Timedelta(hours=1)
# A piece as score_runs yields it: (the input window starts, the scores in model_scores).
Piece = tuple[pd.DataFrame, pd.DataFrame]


def hour_start(key: str) -> pd.Timestamp:
    """The start of the hourly partition ``key`` (UTC)."""
    return pd.Timestamp(datetime.strptime(key, HOUR_KEY).replace(tzinfo=UTC))


def step_hours(context: dg.AssetExecutionContext) -> list[str]:
    """The hours of the ranged step ``context`` is one hour of (from its run's partition range
    tags, which Dagster and ``refrig pipeline run`` set on ranged runs); [] when unknown."""
    tags = context.run.tags
    first, last = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not first or not last:
        return []
    return list(hourly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last)))


class RangeScores:
    """One detector version's scores of the hours ``keys``, scored a run of hours at a time
    when an hour is first asked for (:meth:`pieces`), handed out hour by hour."""

    def __init__(
        self,
        store: ParquetStore,
        registry: pd.DataFrame,
        detector: Detector,
        version: str,
        keys: list[str],
        budget: MemoryBudget | None = None,
    ):
        self.store, self.registry = store, registry
        self.detector, self.version = detector, version
        self.keys = keys
        self.budget = budget or load_memory_budget()
        self._ready: dict[str, list[Piece]] = {}
        self._alone: set[str] = set()  # hours scored alone by the caller

    def pieces(self, key: str) -> list[Piece] | None:
        """The hour's pieces (as :func:`~refrig_assets.scoring.runs.score_runs` of that hour
        alone yields them), or None when the caller must score the hour alone."""
        if key not in self._ready and key not in self._alone:
            self._score_run_from(key)
        return self._ready.pop(key, None)

    def _run_from(self, key: str) -> list[str]:
        """Consecutive hours of the range from ``key`` whose readings fit the budget at once."""
        if key not in self.keys:
            return []
        run: list[str] = []
        readings = 0
        for k in self.keys[self.keys.index(key) :]:
            path = self.store.path(FEATURES, k)
            readings += feature_file_readings(path) if path.exists() else 0
            if run and self.budget.shards_for(readings) > 1:
                break
            run.append(k)
        return run

    def _score_run_from(self, key: str) -> None:
        run = self._run_from(key)
        if not run or self.budget.shards_for(_run_readings(self.store, run[:1])) > 1:
            self._alone.add(key)
            return
        detector = self.detector
        since = hour_start(run[0])
        features = self.store.read_many(
            FEATURES,
            [*earlier_hours(run[0], lookback_hours(detector)), *run],
            columns=detector.required_columns,
            filters=[("window_start", ">=", since - detector.lookback)],
        )
        if features.empty:
            self._ready.update({k: [] for k in run})
            return
        starts_at = pd.DatetimeIndex(features["window_start"])
        # Rows of an hourly partition start in its hour; the split by hour relies on it.
        edges = [hour_start(k) for k in run]
        inside = sum(((starts_at >= e) & (starts_at < e + HOUR)).sum() for e in edges)
        if inside != (starts_at >= since).sum() or (starts_at >= edges[-1] + HOUR).any():
            self._alone.update(run)
            return
        features["cohort"] = cohort_of(features["device_id"], self.registry)
        scores = score_windows(detector, self.version, features, datetime.now(UTC), since=since)
        scored_starts = pd.DatetimeIndex(scores["window_start"])
        empty = load_contract("model_scores").empty_frame()
        for k, start in zip(run, edges, strict=True):
            end = start + HOUR
            # The one-hour run reads its hour and the windows persistence looks back at; it
            # yields a piece when that read has rows.
            if not ((starts_at >= start - detector.lookback) & (starts_at < end)).any():
                self._ready[k] = []
                continue
            hour = (starts_at >= start) & (starts_at < end)
            mine = (scored_starts >= start) & (scored_starts < end)
            # An hour without scorable windows gets the contract's empty frame, as alone.
            part = scores[mine].reset_index(drop=True) if mine.any() else empty.copy()
            self._ready[k] = [(features.loc[hour, ["window_start"]], part)]


def _run_readings(store: ParquetStore, keys: list[str]) -> int:
    return sum(feature_file_readings(p) for p in store.existing_paths(FEATURES, keys))


def range_pieces(
    context: dg.AssetExecutionContext,
    refrig,
    model_id: str,
    detector: Detector,
    version: str,
) -> list[Piece] | None:
    """In a ranged step, this hour's score pieces from its run's one pass (see the module
    docstring); None in a one-hour run or when the hour is to be scored alone."""
    if not in_range(context):
        return None
    keys = step_hours(context)
    if context.partition_key not in keys:
        return None
    scores = per_range(
        context,
        f"range_scores:{model_id}:{version}",
        lambda: RangeScores(
            refrig.store, refrig.store.read("device_registry"), detector, version, keys
        ),
    )
    return scores.pieces(context.partition_key)
