"""The detector interface every model implements.

A detector fits on window features and scores them as calibrated anomaly scores in [0, 1] with
per-row contributors. Subclasses implement two methods — :meth:`Detector.fit_raw` and
:meth:`Detector.raw_scores` — and register themselves with :func:`register_detector`; adding a
model is one file in ``models/`` and one class. A detector that scores something other than the
feature windows themselves (e.g. per-device hourly profiles) also overrides :meth:`Detector.rows`.

The base class owns what every model shares, all driven by the ``models/`` settings:

* which windows are scorable (``min_sensor_completeness``) and when a running-conditioned
  feature is trustworthy (``running_share``: enough running readings in the window);
* calibration of raw scores to tail probabilities (``calibration``);
* persistence (``persistence``): a row keeps its evidence only as far as at least
  ``min_windows - 1`` of the device's previous ``windows - 1`` rows reached it too, so one odd
  window does not raise an alert while a lasting change does. The persistent evidence is
  calibrated again on whole training sequences, so a threshold keeps its meaning;
* contributors, confidence and persistence on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import usable_features
from refrig_assets.core.model_config import ModelConfig
from refrig_assets.detectors.calibration import TailCalibrator
from refrig_assets.detectors.running_state import (
    choose_running_columns,
    running_state_features,
)
from refrig_assets.detectors.uninformative import uninformative_columns, uninformative_reason
from refrig_assets.quality.rules import flag_bit

DETECTORS: dict[str, type[Detector]] = {}
OUTPUT_COLUMNS = [
    "device_id",
    "window_start",
    "window_end",
    "anomaly_score",
    "anomaly_flag",
    "top_contributors",
    "contributor_detail",
    "confidence",
]


# What the output takes from the scored rows.
OUTPUT_ROW_COLUMNS = (
    "device_id",
    "window_start",
    "window_end",
    "quality_mask",
    "sensor_completeness",
)

# What every scored row carries besides the model's input columns.
META_COLUMNS = [
    "device_id",
    "cohort",
    "window_start",
    "window_end",
    "sensor_completeness",
    "quality_mask",
]


class NotTrainable(ValueError):
    """The training data is too small for this detector (a fleet with fewer devices than it
    groups, too few scorable windows, a feature no device has) or carries no information (every
    scored feature missing or constant): nothing was fitted. ``setting`` is the dotted models/
    setting the data fell short of (``REFRIG_SENSORS`` where a sensor the fleet does not report
    left no row complete; ``<sensor>.running_above``, the sensor_readings contract's running
    threshold, where no window was in the running state); the message says by how much."""

    def __init__(self, model_id: str, reason: str, setting: str):
        self.model_id = model_id
        self.reason = reason
        self.setting = setting
        super().__init__(f"{model_id}: not trained: {reason}")


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector available under its ``kind``."""
    DETECTORS[cls.kind] = cls
    return cls


@cache
def feature_sensor(feature: str) -> str:
    """The sensor a feature column is computed from (``vibration_compressor_max`` → sensor;
    a derived feature of one reading column, ``door_open_longest_minutes`` → ``door_open``),
    else the feature itself (``duty_cycle``)."""
    from refrig_assets.core.contracts import load_contract

    col = load_contract("device_features").column(feature)
    derived = col.extra.get("derived") or {}
    readings = load_contract("sensor_readings").column_names
    source = col.extra.get("sensor") or derived.get("sensor") or derived.get("state")
    return source if source in readings else feature


@cache
def feature_unit(feature: str) -> str | None:
    """The unit of a device_features column (from the sensor it is computed from)."""
    from refrig_assets.core.contracts import load_contract

    return load_contract("device_features").column(feature).unit


@cache
def feature_condition(feature: str) -> str | None:
    """The operating condition a feature is computed under (``running``), if any."""
    from refrig_assets.core.contracts import load_contract

    return load_contract("device_features").column(feature).extra.get("condition")


def context_columns(config: ModelConfig) -> list[str]:
    """Columns a model conditions on without scoring them (``features.context`` in models/)."""
    from refrig_assets.core.contracts import load_contract

    names = list(config.settings.get("features", {}).get("context", []) or [])
    contract = load_contract("device_features")
    for name in names:
        contract.column(name)  # KeyError names a column the contract does not have
    return [n for n in names if n not in config.feature_columns]


def _in_order(frame: pd.DataFrame | FewRows) -> bool:
    """Whether rows are sorted by device then window start (no missing key: those sort last)."""
    devices = frame["device_id"].to_numpy()
    starts = pd.DatetimeIndex(frame["window_start"].array)
    if starts.hasnans:
        return False
    ticks = starts.asi8
    try:
        later = devices[1:] > devices[:-1]
        same = devices[1:] == devices[:-1]
    except TypeError:  # ids of mixed types: let pandas decide
        return False
    return bool(np.all(later | (same & (ticks[1:] >= ticks[:-1]))))


def _ticks(starts: Any, ends: Any) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and ends as integer ticks of one unit. Columns of the same unit keep it
    (a stored partition's microseconds): converting 10^5-10^6 rows to nanoseconds cost more
    than the persistence arithmetic, and only differences and comparisons of the ticks are
    used, which no common unit changes."""
    start, end = pd.DatetimeIndex(starts), pd.DatetimeIndex(ends)
    if start.unit != end.unit or start.hasnans or end.hasnans:
        start, end = start.as_unit("ns"), end.as_unit("ns")
    return start.asi8, end.asi8


def sorted_rows(frame: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
    """``frame`` sorted by device and window start (stable), with a fresh index. Rows already
    in that order (a service's requests, the batch path's partitions) are not sorted again.
    ``copy=False`` (a frame the caller owns): rows already in order keep their arrays, only
    the index is new; a partition's copy would merge every column into one block first."""
    if len(frame) > 1 and not _in_order(frame):
        frame = frame.sort_values(["device_id", "window_start"], kind="stable")
    if copy:
        return frame.reset_index(drop=True)
    frame = frame.copy(deep=False)
    frame.index = pd.RangeIndex(len(frame))
    return frame


# Up to this many values are told apart by a dict rather than pandas' hash table.
_FEW_VALUES = 64


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values)`` of numbers without NaN: each value's code and the distinct
    values in the order they first occur; a request's few rows by a dict, without pandas'
    per-call cost."""
    if len(values) > _FEW_VALUES:
        return pd.factorize(values)
    seen: dict[Any, int] = {}
    codes = np.array([seen.setdefault(v, len(seen)) for v in values.tolist()], dtype=np.intp)
    return codes, np.array(list(seen), dtype=values.dtype)


class _Column:
    """One column of :class:`FewRows`: what scoring reads of a frame's column."""

    __slots__ = ("values",)

    def __init__(self, values: Any):
        self.values = values

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    @property
    def array(self) -> Any:
        """What ``Series.array`` gives for these values."""
        values = self.values
        return pd.arrays.NumpyExtensionArray(values) if isinstance(values, np.ndarray) else values

    def to_numpy(self) -> np.ndarray:
        values = self.values
        return values if isinstance(values, np.ndarray) else values.to_numpy()


class FewRows:
    """Prepared rows as arrays by column, for a request's few windows
    (:meth:`Detector.answer_columns`): what scoring reads of a prepared frame (``rows[column]``
    with ``to_numpy()``, ``array`` and ``dtype``; ``len``; ``empty``), without building, copying
    and indexing a DataFrame, which cost a few windows more than their arithmetic. The values
    are the arrays :meth:`Detector.prepare` puts in its frame."""

    def __init__(self, columns: dict[str, Any]):
        self.columns = {
            name: _Column(v.to_numpy() if isinstance(v, pd.arrays.NumpyExtensionArray) else v)
            for name, v in columns.items()
        }
        self.length = len(next(iter(columns.values()))) if columns else 0

    def __getitem__(self, name: str) -> _Column:
        return self.columns[name]

    def __len__(self) -> int:
        return self.length

    @property
    def empty(self) -> bool:
        return self.length == 0

    def numeric(self, names: list[str]) -> bool:
        """Whether the columns ``names`` are plain numpy arrays (what a frame's float matrix is
        built from column by column)."""
        return all(isinstance(self.columns[n].values, np.ndarray) for n in names)


class Detector(ABC):
    """Base class: preparation, calibration, persistence, contributors, confidence, storage."""

    kind: ClassVar[str]

    def __init__(self, config: ModelConfig):
        self.config = config
        self.calibrator = TailCalibrator(
            tail_quantile=float(config.setting("calibration.tail_quantile")),
            decades=float(config.setting("calibration.decades")),
        )
        # A fleet without some sensors (REFRIG_SENSORS) trains on the features it has.
        features = load_contract("device_features")
        self.feature_columns = usable_features(list(config.feature_columns), features)
        self.context_columns = [
            c
            for c in usable_features(context_columns(config), features)
            if c not in self.feature_columns
        ]
        self.training_rows = 0
        # What training learned about the data that the model's description should say (e.g.
        # plain statistics in place of running-conditioned ones): see choose_columns().
        self.notes: tuple[str, ...] = ()
        # Cohorts that never ran beside ones that did, and (running column, plain column) pairs
        # their windows read instead: see choose_columns().
        self.plain_cohorts: frozenset = frozenset()
        self.plain_of: tuple[tuple[str, str], ...] = ()
        # True while fit() runs: the rows being scored are the training rows themselves.
        self.fitting = False
        # When each device's start-up ends (device_id -> UTC time), for the devices whose
        # start-up windows training left out: see set_start_ups().
        self.start_up_ends: pd.Series | None = None

    def set_start_ups(self, ends: pd.Series) -> None:
        """Record the start-ups training left out (device_id -> end, UTC): those windows are
        still scored but never flagged. The model never learnt a device's first minutes, so
        their scores say only that a start-up is not its normal, which no operator needs paged.
        """
        self.start_up_ends = ends if len(ends) else None

    @property
    def input_columns(self) -> list[str]:
        """Scored features first, then context features (conditioned on, never contributors)."""
        return self.feature_columns + self.context_columns

    # -- what a subclass implements -------------------------------------------------------
    @abstractmethod
    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Fit on scorable training rows; return the raw scores of those rows."""

    @abstractmethod
    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Raw score per row (higher = more anomalous), a (rows × feature_columns) contribution
        matrix (signed: positive means above normal), and one evidence template per feature
        with ``{value}`` (the contribution's size, one decimal) and ``{direction}``
        (``above``/``below``), e.g. ``"{value}σ {direction} this device's baseline"``."""

    @property
    def required_columns(self) -> list[str]:
        """device_features columns scoring reads (the cohort is joined from the registry)."""
        spec = self.config.settings.get("running_share") or {}
        cols = [c for c in META_COLUMNS if c != "cohort"] + self.input_columns
        if spec.get("column") and spec["column"] not in cols:
            cols.append(spec["column"])
        cols += [p for _, p in self._plain_pairs() if p not in cols]
        return cols

    def _plain_pairs(self) -> tuple[tuple[str, str], ...]:
        """(running column, plain column) pairs read in the windows of ``plain_cohorts`` (none
        for a model saved before they existed)."""
        return getattr(self, "plain_of", ())

    def row_minutes(self) -> int:
        """Length of one scored row in minutes (default: the feature window)."""
        from refrig_assets.features.windows import window_minutes

        return window_minutes()

    @property
    def lookback(self) -> pd.Timedelta:
        """How much earlier data scoring needs before the rows it reports (persistence)."""
        return pd.Timedelta(minutes=self.row_minutes() * (self.persistence[0] - 1))

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows this model scores, from prepared feature windows (default: the windows).

        Must keep ``device_id``, ``cohort``, ``window_start``, ``window_end``,
        ``sensor_completeness``, ``quality_mask`` and the input columns."""
        return frame

    # -- shared behaviour -----------------------------------------------------------------
    def scorable(self, features: pd.DataFrame) -> pd.DataFrame:
        """Windows complete enough to score (seed rule: sensor_completeness >= 0.5)."""
        return features[self.scorable_mask(features)]

    def scorable_mask(self, features: pd.DataFrame) -> np.ndarray:
        """Which windows to score: complete enough (``min_sensor_completeness``) and free of
        the quality flags that say the numbers are not the device's physics
        (``unscored_quality_flags``): a device sending °F in a °C column is a data-quality
        finding on that device, not a refrigeration fault to page about."""
        floor = float(self.config.setting("min_sensor_completeness"))
        completeness = features["sensor_completeness"]
        if isinstance(completeness.dtype, np.dtype) and completeness.dtype.kind == "f":
            keep = completeness.to_numpy() >= floor  # numpy's comparison, without a Series
        else:
            keep = (completeness >= floor).to_numpy()
        unscored = 0
        for name in self.config.setting("unscored_quality_flags") or []:
            unscored |= flag_bit(name)
        if unscored and "quality_mask" in features.columns:
            column = features["quality_mask"]
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
                mask = column.to_numpy().astype("int64")  # no missing value to fill
            else:
                mask = column.fillna(0).astype("int64").to_numpy()
            keep &= (mask & unscored) == 0
        return keep

    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        """Scorable windows, with two corrections every model shares:

        * features in a ratio-scale unit (``log_scale_units``: absolute pressure, current,
          vibration) are taken as logarithms, so multiplicative effects (a pressure that follows
          the condensing temperature on a saturation curve, a current that rises by a share of
          itself) become the same additive shift for every device;
        * running-conditioned features are blanked where the compressor ran for too small a
          share of the window (``running_share``): a mean over one start-up transient is not a
          measurement of the running state."""
        columns, rows = self._prepared_columns(features)
        index = features.index if rows is None else features.index[rows]
        return pd.DataFrame(columns, index=index, copy=False)

    def _prepared_columns(
        self, features: pd.DataFrame, plain: bool = False
    ) -> tuple[dict[str, Any], Any]:
        """:meth:`prepare`'s columns (arrays) and the positions of the rows kept (``None``:
        all of them). ``plain``: columns of a numpy dtype as the numpy arrays themselves (what
        :class:`FewRows` holds) rather than pandas' array around them."""
        spec = self.config.settings.get("running_share") or {}
        share_col, floor = spec.get("column"), float(spec.get("min", 0.0) or 0.0)
        needed = [*META_COLUMNS, *self.input_columns]
        if share_col and share_col not in needed:
            needed.append(share_col)
        pairs = self._plain_pairs()
        needed += [p for _, p in pairs if p not in needed]
        keep = self.scorable_mask(features)
        rows = None if keep.all() else np.flatnonzero(keep)
        # Built column by column into a new frame (never a view of the caller's): a small
        # request's few windows would otherwise pay pandas' per-operation cost several times
        # per column. Each column is copied once and the frame is not consolidated, so a large
        # partition holds one copy of its rows, as a selection of them would.
        columns = {}
        for col in needed:
            series = features[col]
            if plain and isinstance(series.dtype, np.dtype):
                values = series.to_numpy()
            else:
                values = series.array
            columns[col] = values.copy() if rows is None else values.take(rows)
        idle = self._read_plain(columns) if pairs else None
        log_units = set(self.config.settings.get("log_scale_units") or [])
        for col in self.input_columns:
            if feature_unit(col) in log_units:
                values = np.asarray(columns[col], dtype=float)
                columns[col] = np.log(np.clip(values, 1e-6, None))
        conditioned = [c for c in self.input_columns if feature_condition(c) == "running"]
        if conditioned and share_col and floor > 0:
            too_short = ~(np.asarray(columns[share_col], dtype=float) >= floor)
            if idle is not None:
                too_short &= ~idle
            if too_short.any():
                for col in conditioned:
                    values = np.array(columns[col], dtype=float)
                    values[too_short] = np.nan
                    columns[col] = values
        return columns, rows

    def choose_columns(self, features: pd.DataFrame) -> Detector:
        """Settle the input columns on the training windows: where the cohorts' compressors
        never ran (:mod:`~refrig_assets.detectors.running_state`), the running-conditioned
        features are replaced by the plain statistics, or read from them in the windows of the
        cohorts that never ran (:attr:`plain_cohorts`). Kept with the model, so scoring reads
        the same columns; :attr:`notes` says so. A fleet whose cohorts run: nothing changes."""
        choice = choose_running_columns(
            features,
            self.scorable_mask(features),
            self.feature_columns,
            self.context_columns,
            self.config.settings.get("running_share") or {},
        )
        self.feature_columns = choice.feature_columns
        self.context_columns = choice.context_columns
        self.notes = choice.notes
        self.plain_cohorts = choice.plain_cohorts
        self.plain_of = choice.plain_of
        return self

    def _read_plain(self, columns: dict[str, Any]) -> np.ndarray | None:
        """In the windows of ``plain_cohorts`` (cohorts that never ran in training beside ones
        that did) each running-conditioned column takes its plain statistic's values and the
        running-state features (a duty cycle of 0 there) are missing: they carry no
        information, as they are left out where no cohort ran. Returns those windows
        (``None``: none)."""
        idle = np.isin(np.asarray(columns["cohort"], dtype=object), list(self.plain_cohorts))
        if not idle.any():
            return None
        pairs = dict(self._plain_pairs())
        for running, plain in pairs.items():
            values = np.array(columns[running], dtype=float)
            values[idle] = np.asarray(columns[plain], dtype=float)[idle]
            columns[running] = values
        for col in running_state_features(self.input_columns, load_contract("device_features")):
            if col not in pairs:
                values = np.array(columns[col], dtype=float)
                values[idle] = np.nan
                columns[col] = values
        return idle

    def fit(self, features: pd.DataFrame) -> Detector:
        """Fit on training windows (needs device_id, cohort and the input columns)."""
        self.choose_columns(features)
        frame = self.rows(self.prepare(features))
        frame = frame.sort_values(["device_id", "window_start"], kind="stable")
        frame = frame.reset_index(drop=True)
        fit_frame = frame
        max_rows = int(self.config.settings.get("training", {}).get("max_rows", 0) or 0)
        if max_rows and len(frame) > max_rows:
            fit_frame = frame.sample(n=max_rows, random_state=0).sort_index()
        min_rows = int(self.config.setting("training.min_rows"))
        if len(fit_frame) < min_rows:
            raise NotTrainable(
                self.config.model_id,
                f"too little data: {len(frame)} scorable training rows < training.min_rows "
                f"{min_rows}",
                "training.min_rows",
            )
        missing, constant = uninformative_columns(fit_frame, self.feature_columns)
        if missing or constant:
            # Every window would score the same: a version that looks trained and never flags.
            reason, setting = uninformative_reason(
                self.config, self.scorable(features), missing, constant, len(frame)
            )
            raise NotTrainable(self.config.model_id, "; ".join([*self.notes, reason]), setting)
        self.fitting = True
        try:
            raw = self.fit_raw(fit_frame.reset_index(drop=True))
            self.calibrator.fit(raw)
            self.persistence_calibrator = None
            if self.persistence[1] > 1:
                sequences = self._device_sample(frame)
                evidence = self.evidence(self.raw_scores(sequences)[0])
                self.persistence_calibrator = TailCalibrator(
                    tail_quantile=self.calibrator.tail_quantile, decades=self.calibrator.decades
                ).fit(self.sustained(sequences, evidence))
        finally:
            self.fitting = False
        self.training_rows = len(fit_frame)
        return self

    def _device_sample(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Whole training sequences of a sample of devices (persistence needs consecutive
        rows), at most ``persistence.calibration_rows`` rows."""
        limit = int(self.config.setting("persistence.calibration_rows"))
        if not limit or len(frame) <= limit:
            return frame
        devices = frame["device_id"].drop_duplicates().sample(frac=1.0, random_state=0)
        counts = frame["device_id"].value_counts().reindex(devices).cumsum()
        chosen = counts.index[counts.to_numpy() <= limit]
        return frame[frame["device_id"].isin(chosen)].reset_index(drop=True)

    def evidence(self, raw: np.ndarray) -> np.ndarray:
        """-log10 of the tail probability of raw scores (unclipped calibrated evidence)."""
        return -np.log10(self.calibrator.tail_probability(raw))

    def calibrated(self, frame: pd.DataFrame, raw: np.ndarray) -> np.ndarray:
        """Scores in [0, 1]: window evidence, made persistent and recalibrated when the model
        asks for persistence (so a threshold means the same with or without it)."""
        if getattr(self, "persistence_calibrator", None) is None:
            return self.calibrator.transform(raw)
        sustained = self.sustained(frame, self.evidence(raw))
        return self.persistence_calibrator.transform(sustained)

    def score(self, features: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Score scorable rows: the model_scores columns a detector is responsible for.

        Rows before ``since`` are context only: they feed persistence and are not returned."""
        scored = self.score_columns(features, since)
        if scored is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})
        return pd.DataFrame(scored)

    def score_columns(
        self, features: pd.DataFrame, since: pd.Timestamp | None = None
    ) -> dict[str, Any] | None:
        """:meth:`score`'s columns as arrays (``None``: no scorable row), for a caller that
        builds its own frame of them (a frame of a partition's windows costs a copy of each
        column)."""
        if since is not None:  # only as much earlier data as persistence looks at
            needed = features["window_start"] >= pd.Timestamp(since) - self.lookback
            if not needed.all():
                features = features[needed]
        frame = sorted_rows(self.rows(self.prepare(features)), copy=False)  # rows of its own
        return self._scored(frame, since)

    def answer_columns(self, features: pd.DataFrame) -> dict[str, Any] | None:
        """:meth:`score`'s columns of ``features`` as arrays (``None``: no scorable window), for
        an online request: rows already in order are scored as :class:`FewRows` (the arrays
        :meth:`prepare` takes, no frame built around them or the answer); other rows, or a
        model with rows of its own (:meth:`rows`), go through :meth:`score`'s frames."""
        if type(self).rows is Detector.rows:
            columns, _ = self._prepared_columns(features, plain=True)
            rows = FewRows(columns)
            if rows.numeric(self.input_columns) and (len(rows) < 2 or _in_order(rows)):
                return self._scored(rows, None)
        return self._scored(sorted_rows(self.rows(self.prepare(features)), copy=False), None)

    def _scored(
        self, frame: pd.DataFrame | FewRows, since: pd.Timestamp | None
    ) -> dict[str, Any] | None:
        """The output columns of prepared rows sorted by device and window start (``None``:
        no row)."""
        if frame.empty:
            return None
        raw, contrib, templates = self.raw_scores(frame)  # type: ignore[arg-type]
        score = self.calibrated(frame, raw)  # type: ignore[arg-type]
        keep = (
            np.ones(len(frame), dtype=bool)
            if since is None
            else (frame["window_start"] >= pd.Timestamp(since)).to_numpy()
        )
        # Only the columns the output carries are taken, as arrays (a selection of every column
        # would copy the whole prepared frame, most often to keep all of its rows; selecting
        # and re-indexing frames cost a request's few windows more than their arithmetic).
        rows = None
        if not keep.all():
            rows = np.flatnonzero(keep)
            score, contrib = score[rows], contrib[rows]
        out = {c: frame[c].array for c in OUTPUT_ROW_COLUMNS}
        if rows is not None:
            out = {c: values.take(rows) for c, values in out.items()}
        top_k = int(self.config.setting("top_contributors"))
        tops, details = self._contributors(contrib, templates, top_k)
        if self._plain_pairs():
            details = self._plain_evidence(frame, details, rows)
        penalty = float(self.config.setting("confidence_flag_penalty"))
        flagged = out["quality_mask"].to_numpy() != 0
        confidence = out["sensor_completeness"].to_numpy() * np.where(flagged, 1 - penalty, 1.0)
        unlearned = self.unlearned_context(frame)
        if unlearned is not None and unlearned.any():
            if rows is not None:
                unlearned = unlearned[rows]
            confidence, details = self._context_caveat(unlearned, confidence, details)
        return {
            "device_id": out["device_id"],
            "window_start": out["window_start"],
            "window_end": out["window_end"],
            "anomaly_score": score,
            "anomaly_flag": self._flags(score, out["device_id"], out["window_start"]),
            "top_contributors": tops,
            "contributor_detail": details,
            "confidence": np.clip(confidence, 0.0, 1.0),
        }

    def _flags(self, score: np.ndarray, devices: Any, starts: Any) -> np.ndarray:
        """Scores at the flag threshold, less the windows of a start-up training left out."""
        flags = score >= self.config.flag_threshold
        ends = getattr(self, "start_up_ends", None)  # models pickled before have none
        if ends is None or not flags.any():
            return flags
        end = pd.Series(np.asarray(devices, dtype=object)).map(ends)
        start = pd.to_datetime(pd.Series(np.asarray(starts)), utc=True)
        return flags & ~(start < pd.to_datetime(end, utc=True)).to_numpy(dtype=bool)

    def _plain_evidence(
        self, frame: pd.DataFrame | FewRows, details: np.ndarray, rows: np.ndarray | None
    ) -> np.ndarray:
        """Evidence of windows of ``plain_cohorts`` named by the column they read: the plain
        statistic (``temperature_evaporator_mean ...``), not the running-conditioned one."""
        cohorts = np.asarray(frame["cohort"].to_numpy(), dtype=object)
        idle = np.isin(cohorts if rows is None else cohorts[rows], list(self.plain_cohorts))
        if not idle.any():
            return details
        names = dict(self._plain_pairs())
        details = details.copy()
        for i in np.flatnonzero(idle).tolist():
            head, sep, tail = str(details[i] or "").partition(" ")
            if head in names:
                details[i] = names[head] + sep + tail
        return details

    def unlearned_context(self, frame: pd.DataFrame | FewRows) -> np.ndarray | None:
        """Per row and context column: the context lies outside the range training saw and
        the model learned no coupling to it (None: the model keeps no such record)."""
        residuals = getattr(self, "residuals", None)
        check = getattr(residuals, "unlearned_context", None)
        return None if check is None else check(frame)

    def _context_caveat(
        self, unlearned: np.ndarray, confidence: np.ndarray, details: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows judged without a context adjustment they needed: confidence lowered by
        ``confidence_context_penalty`` and the evidence saying which context was untrained."""
        penalty = float(self.config.setting("confidence_context_penalty"))
        outside = unlearned.any(axis=1)
        confidence = np.where(outside, confidence * (1 - penalty), confidence)
        details = details.copy()
        digits = 1 << np.arange(unlearned.shape[1], dtype=np.int64)
        codes = unlearned @ digits
        for code in np.unique(codes[outside]).tolist():
            names = [
                c for c, d in zip(self.context_columns, digits.tolist(), strict=True) if code & d
            ]
            note = f" ({', '.join(names)} outside its training range, effect not learned)"
            rows = np.flatnonzero(codes == code)
            details[rows] = [f"{d or ''}{note}" for d in details[rows].tolist()]
        return confidence, details

    @property
    def persistence(self) -> tuple[int, int]:
        """(windows, min_windows) from the settings; (1, 1) means no persistence."""
        windows = max(1, int(self.config.setting("persistence.windows")))
        return windows, min(windows, max(1, int(self.config.setting("persistence.min_windows"))))

    def sustained(self, frame: pd.DataFrame, score: np.ndarray) -> np.ndarray:
        """Persistence: a row keeps its score only as far as at least ``min_windows - 1`` of
        the device's previous ``windows - 1`` rows reached it too, i.e. the row's score is
        ``min(score, (min_windows-1)-th highest earlier score)``. ``frame`` is sorted by device
        and time. Earlier rows more than ``windows`` row lengths back do not count, so a gap in
        the data does not bridge two separate events, and the flag drops as soon as the
        anomaly ends."""
        windows, need = self.persistence
        if need <= 1:
            return score
        devices = frame["device_id"].to_numpy()
        start, end = _ticks(frame["window_start"].array, frame["window_end"].array)
        span = (end - start) * windows
        earlier = np.full((len(score), windows - 1), -np.inf)
        for lag in range(1, windows):
            same = (devices[lag:] == devices[:-lag]) & (start[lag:] - start[:-lag] < span[lag:])
            earlier[lag:, lag - 1] = np.where(same, score[:-lag], -np.inf)
        support = -np.sort(-earlier, axis=1)[:, need - 2]
        return np.where(np.isfinite(support), np.minimum(score, support), 0.0)

    def _contributors(
        self, contrib: np.ndarray, templates: list[str], top_k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top sensors per row (by their strongest feature) and the evidence for the first,
        built column-wise with numpy string ufuncs (no per-row Python)."""
        n = contrib.shape[0]
        sensors = [feature_sensor(f) for f in self.feature_columns]
        names = list(dict.fromkeys(sensors))
        magnitude = np.nan_to_num(np.abs(contrib), nan=0.0)
        per_sensor = np.zeros((n, len(names)))
        for j, sensor in enumerate(sensors):
            k = names.index(sensor)
            per_sensor[:, k] = np.maximum(per_sensor[:, k], magnitude[:, j])
        k = min(top_k, len(names))
        # The k strongest sensors, ties to the earlier one (a stable descending sort's order),
        # by k passes of argmax rather than sorting every row.
        rows = np.arange(n)
        order = np.empty((n, k), dtype=np.intp)
        for i in range(k):
            order[:, i] = np.argmax(per_sensor, axis=1)
            per_sensor[rows, order[:, i]] = -np.inf
        # Few distinct rankings occur: join the names once per ranking (its code's digits), then
        # look them up; codes are grouped by hashing, not sorting.
        digits = len(names) ** np.arange(k)
        inverse, rankings = _factorize(order @ digits)
        joined = np.array(
            [
                ",".join(names[c // d % len(names)] for d in digits.tolist())
                for c in rankings.tolist()
            ],
            dtype=object,
        )
        tops = joined[inverse]
        best = np.argmax(magnitude, axis=1)
        values = np.nan_to_num(contrib[rows, best])
        # The evidence depends only on (feature, size to one decimal, direction): few distinct
        # combinations occur, so each is written once and the rows look theirs up.
        size_of_row, size_values = _factorize(np.round(np.abs(values), 1))
        sizes = size_values.astype(str)
        width = len(self.feature_columns)
        code = (size_of_row.astype(np.int64) * width + best) * 2 + (values < 0)
        text_of_row, codes = _factorize(code)
        texts = np.empty(len(codes), dtype=object)
        for i, c in enumerate(codes.tolist()):
            (size, j), below = divmod(c // 2, width), c % 2
            if j < len(templates):
                head, _, tail = templates[j].partition("{value}")
                pre, has_direction, post = tail.partition("{direction}")
                direction = ("below" if below else "above") + post if has_direction else ""
                texts[i] = f"{self.feature_columns[j]} {head}{sizes[size]}{pre}{direction}"
        details = texts[text_of_row]
        return tops, details

    def describe(self) -> dict[str, float]:
        """Model-specific training facts logged as metrics (e.g. groups found); default none."""
        return {}

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "detector.joblib"
        joblib.dump(self, path)
        return path

    @staticmethod
    def load(directory: Path) -> Detector:
        return joblib.load(Path(directory) / "detector.joblib")


def load_detector_modules() -> None:
    """Import every module of this package, so each ``@register_detector`` class registers."""
    import importlib
    import pkgutil

    import refrig_assets.detectors as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def build_detector(config: ModelConfig) -> Detector:
    """Instantiate the detector class named by a config's ``detector`` key."""
    load_detector_modules()
    try:
        cls = DETECTORS[config.detector]
    except KeyError:
        raise ValueError(
            f"{config.path}: unknown detector {config.detector!r} (known: {sorted(DETECTORS)})"
        ) from None
    return cls(config)
