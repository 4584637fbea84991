"""A model version's references: the feature windows it was fitted on, and its first scores.

Every registered version carries a ``training_partitions`` lineage tag such as
``2026-01-01T00..2026-01-01T01`` (first and last file stem under ``<data_dir>/device_features/``);
the feature reference is read back from those partitions, so no copy of the training data is
kept. The score reference is what the version scored in its first hours after that data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.storage import ParquetStore
from refrig_assets.monitoring.drift import sample_rows
from refrig_assets.scoring.score import with_cohort

FEATURES = "device_features"


class ReferenceUnavailable(RuntimeError):
    """The training data of a model version can no longer be read."""


@dataclass(frozen=True)
class ModelReference:
    """Which feature partitions a model version was trained on."""

    model_id: str
    model_version: str
    training_partitions: str
    stems: tuple[str, ...]


def partition_window(stem: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """UTC time window of the partition a file stem names (hourly ``2026-01-01T05`` or daily
    ``2026-01-01``); None for anything else (``all``)."""
    try:
        if len(stem) == 13 and stem[10] == "T":
            start = pd.Timestamp(f"{stem[:10]} {stem[11:]}:00", tz="UTC")
            return start, start + pd.Timedelta(hours=1)
        if len(stem) == 10:
            start = pd.Timestamp(stem, tz="UTC")
            return start, start + pd.Timedelta(days=1)
    except ValueError:
        return None
    return None


def partition_range(tag: str) -> tuple[str, str]:
    """Split a ``training_partitions`` tag ``FIRST..LAST`` into its two file stems."""
    first, sep, last = tag.partition("..")
    if not sep or not first or not last:
        raise ValueError(f"training_partitions tag {tag!r} is not of the form FIRST..LAST")
    return first, last


def reference_for(
    store: ParquetStore, model_id: str, model_version: str, tags: dict[str, str]
) -> ModelReference:
    """The feature partitions named by a version's lineage tags that still exist on disk."""
    tag = tags.get("training_partitions")
    if not tag:
        raise ReferenceUnavailable(
            f"{model_id} version {model_version} has no training_partitions tag"
        )
    first, last = partition_range(tag)
    stems = tuple(s for s in store.partitions(FEATURES) if first <= s <= last)
    if not stems:
        raise ReferenceUnavailable(
            f"{model_id} version {model_version}: training partitions {tag} are no longer under "
            f"{store.root / FEATURES}"
        )
    return ModelReference(model_id, model_version, tag, stems)


def model_inputs(registry, model_id: str, model_version: str) -> list[str]:
    """The features a registered model version scores (``registry``: a
    :class:`~refrig_assets.training.registry.ModelRegistry`): the columns it was trained on,
    which follow the fleet's sensors (:func:`~refrig_assets.core.fleet_sensors.usable_features`:
    no feature of a sensor the fleet lacks, the plain statistic where the fleet has no running
    state), not every column its model config lists. Drift is measured on these: a feature the
    fleet never had has nothing to drift, and the one the model reads in its place does."""
    return list(registry.load(model_id, model_version).feature_columns)


def training_end(reference: ModelReference) -> pd.Timestamp:
    """End of the last training partition: later windows are out of sample for the version."""
    window = partition_window(reference.stems[-1])
    if window is None:
        raise ReferenceUnavailable(f"cannot tell when partition {reference.stems[-1]!r} ends")
    return window[1]


SCORE_COLUMNS = ["model_version", "window_start", "anomaly_score", "anomaly_flag"]


def score_reference(
    store: ParquetStore, dataset: str, model_version: str, after: pd.Timestamp, hours: int
) -> pd.DataFrame:
    """The windows ``model_version`` scored in its first ``hours`` hours after ``after``.

    Empty when the version has not scored anything after ``after`` yet. The reference period
    starts at the first such window, so a version promoted days after training still gets its
    first production hours as reference.
    """
    frames, first = [], None
    for stem in store.partitions(dataset):
        window = partition_window(stem)
        if window is None or window[1] <= after:
            continue
        if first is not None and window[0] >= first + pd.Timedelta(hours=hours):
            break
        rows = pq.read_table(store.root / dataset / f"{stem}.parquet", columns=SCORE_COLUMNS)
        rows = rows.to_pandas()
        rows = rows[(rows["model_version"].astype(str) == model_version)]
        rows = rows[rows["window_start"] >= after]
        if rows.empty:
            continue
        if first is None:
            first = rows["window_start"].min()
        frames.append(rows[rows["window_start"] < first + pd.Timedelta(hours=hours)])
    if not frames:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def read_features(
    store: ParquetStore,
    stems: list[str] | tuple[str, ...],
    columns: list[str] | None,
    registry: pd.DataFrame,
    max_rows: int,
    seed: int,
) -> pd.DataFrame:
    """Feature windows of the given partition stems with their cohort, sampled to ``max_rows``
    (``columns=None``: every column, as a detector needs for scoring)."""
    paths = [store.root / FEATURES / f"{s}.parquet" for s in stems]
    paths = [p for p in paths if p.exists()]
    if not paths:
        return pd.DataFrame(columns=["device_id", *(columns or []), "cohort"])
    wanted = None if columns is None else list(dict.fromkeys(["device_id", *columns]))
    frame = pd.concat([pd.read_parquet(p, columns=wanted) for p in paths], ignore_index=True)
    return with_cohort(sample_rows(frame, max_rows, seed), registry)
