"""Scoring a partition's feature hours in runs of hours, one run in memory at a time.

A daily partition of a large fleet does not fit in memory as one frame of features (nor of
scores): :func:`score_runs` reads ``scoring_chunk_hours`` hours at a time (models/ setting),
each with the earlier hours persistence looks back at, and yields that run's scores, which the
caller checks and appends to the partition before the next run is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from refrig_assets.core.model_config import ModelConfig
from refrig_assets.core.storage import ParquetStore
from refrig_assets.detectors.base import Detector
from refrig_assets.engines.device_shards import WHOLE_FLEET, DeviceRange, registry_parts
from refrig_assets.scoring.feature_reads import read_feature_hours
from refrig_assets.scoring.score import cohort_of, lookback_hours, score_windows

HOUR_KEY = "%Y-%m-%d-%H:%M"


def earlier_hours(first_hour: str, count: int) -> list[str]:
    """The ``count`` hourly partition keys before ``first_hour`` (oldest first)."""
    start = datetime.strptime(first_hour, HOUR_KEY)
    return [(start - timedelta(hours=h)).strftime(HOUR_KEY) for h in range(count, 0, -1)]


def chunk_hours(config: ModelConfig) -> int:
    """Hours scored per run (``scoring_chunk_hours``, at least 1)."""
    return max(1, int(config.setting("scoring_chunk_hours")))


def score_runs(
    store: ParquetStore,
    registry: pd.DataFrame,
    detector: Detector,
    version: str,
    hours: list[str],
    scored_at: datetime,
    devices: Callable[[pd.Series], np.ndarray] | None = None,
    config: ModelConfig | None = None,
    shards: list[DeviceRange] | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Per run of hours: (the run's input window starts, its scores in the model_scores
    contract). Each run reads only the columns the detector uses, plus the windows of earlier
    hours persistence looks at; ``devices`` (a mask over device ids) keeps a subset of the
    devices. Runs without features yield nothing. Rows of a run start within its hours
    (features of an hourly partition start in that hour), so runs never score the same window
    twice. The run length comes from ``config`` (the models/ settings now; default: those the
    detector was trained with).

    ``shards`` (device-id ranges, :func:`~refrig_assets.engines.device_shards.hour_shards`)
    splits each run further: one range of devices is read, scored and yielded at a time.
    Scoring looks at one device at a time (persistence within a device, trained state
    otherwise), so the pieces together are the run's scores, in the same order."""
    columns = detector.required_columns
    size = chunk_hours(config or detector.config)
    lookback = lookback_hours(detector)
    ranges = shards or WHOLE_FLEET
    parts = registry_parts(registry, ranges)
    for i in range(0, len(hours), size):
        run = hours[i : i + size]
        since = pd.Timestamp(datetime.strptime(run[0], HOUR_KEY).replace(tzinfo=UTC))
        for shard, shard_registry in zip(ranges, parts, strict=True):
            # Of the earlier hours, only the windows persistence looks at are read.
            # The columns another detector's step read from these files are not read again. One
            # hour's read is kept for the next hourly detector; a run of several hours (a daily
            # partition's) is not held beside the detector's own frame of it.
            features = read_feature_hours(
                store,
                [*earlier_hours(run[0], lookback), *run],
                columns,
                [("window_start", ">=", since - detector.lookback), *shard.filters()],
                keep=len(run) == 1,
            )
            if devices is not None and not features.empty:
                features = features[devices(features["device_id"])].reset_index(drop=True)
            if features.empty:
                continue
            features["cohort"] = cohort_of(
                features["device_id"], shard_registry
            )  # no copy of the run
            starts = features.loc[features["window_start"] >= since, ["window_start"]]
            scores = score_windows(detector, version, features, scored_at, since=since)
            del features
            yield starts, scores
            del starts, scores  # the caller has written them: not held while the next piece scores
