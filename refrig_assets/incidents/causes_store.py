"""Where the causes step keeps what it learns between hours, under the data folder.

* ``cause_baselines/<hour>.parquet``: baselines built for that hour from the device_features of
  ``baseline.lookback_hours`` before it. An hour reuses the newest baseline built at most
  ``refresh_hours`` earlier (one build a day on a running fleet); a baseline from less than
  ``min_history_hours`` of history is used but not kept, so a new fleet's first hours rebuild
  it as history grows.
* ``cause_state/<hour>.parquet``: per device, the end of the last window with a defrost (or
  when observation began) after that hour; the next hour continues from it instead of
  re-reading a day of features.
* ``cause_stops/<hour>.parquet``: per device, the compressor stop running at the end of that
  hour and the longest stop ended before it (:mod:`refrig_assets.incidents.stops`), where the
  signature table reads the stop features.

Both are derived data: deleting them costs one rebuild, never a result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.storage import (
    KEPT_BYTES,
    KEPT_FILE_BYTES,
    ParquetStore,
    partition_file_name,
    read_parquet_table,
)
from refrig_assets.incidents import baselines as bl
from refrig_assets.incidents import stops
from refrig_assets.incidents.signatures import SignatureTable

BASELINES = "cause_baselines"
STATE = "cause_state"
STOPS = "cause_stops"
FEATURES = "device_features"
HOUR = pd.Timedelta(hours=1)


def hour_of(partition_key: str) -> pd.Timestamp:
    """Start of an hourly partition (``2026-01-01-05:00`` or ``2026-01-01T05``), UTC."""
    return pd.Timestamp(partition_file_name(partition_key)).tz_localize("UTC")


def stem_of(hour: pd.Timestamp) -> str:
    """Partition file stem of an hour (``2026-01-01T05``)."""
    return hour.strftime("%Y-%m-%dT%H")


@dataclass
class CauseStore:
    """Baselines, derived-feature state and the registry of one data folder.

    One store kept for many hours (the hours of a backfill run) reads a stored baseline file
    once while the hours keep reusing it (unless the file changed), indexes it once
    (:meth:`indexed`), and reads each hour of feature history once for the baselines it
    rebuilds (small files, while unchanged)."""

    store: ParquetStore
    # The last baseline file read ((stem, mtime ns, size), frame) and the last frame indexed.
    _read: tuple[tuple[str, int, int], pd.DataFrame] | None = field(
        default=None, repr=False, compare=False
    )
    _indexed: tuple[pd.DataFrame, bl.IndexedBaselines] | None = field(
        default=None, repr=False, compare=False
    )
    # Feature history frames kept for the next hours' baselines: (stem, columns) -> (file
    # stamp, frame), oldest first, and their bytes (bounded as the kept reads of a range are).
    _frames: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, ...], pd.DataFrame]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _frame_bytes: int = field(default=0, repr=False, compare=False)

    @classmethod
    def open(cls, where) -> CauseStore:
        """From a Settings (its ``data_dir``), a ParquetStore, or a REFRIG_HOME path."""
        if isinstance(where, ParquetStore):
            return cls(where)
        if hasattr(where, "data_dir"):
            return cls(ParquetStore(where.data_dir))
        return cls(ParquetStore(Path(where) / "data"))

    # ------------------------------------------------------------------ registry
    def registry(self) -> pd.DataFrame | None:
        """The stored device registry (device_id, cohort), None when there is none."""
        if not self.store.exists("device_registry"):
            return None
        return self.store.read("device_registry", columns=["device_id", "cohort"])

    def with_cohort(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` with each device's cohort (kept when present; 'unknown' otherwise)."""
        if "cohort" in features:
            return features
        return with_cohorts(features, self.cohorts())

    def cohorts(self) -> pd.Series | None:
        """Each registered device's cohort (indexed by device_id), None without a registry."""
        registry = self.registry()
        return None if registry is None else registry.set_index("device_id")["cohort"]

    # ------------------------------------------------------------------ history
    def _history_stems(self, hour: pd.Timestamp, hours: float) -> list[str]:
        lo, hi = stem_of(hour - pd.Timedelta(hours=hours)), stem_of(hour)
        return [s for s in self.store.partitions(FEATURES) if lo <= s < hi]

    def _read_features(self, stems: list[str], wanted: list[str]) -> pd.DataFrame:
        frames = [self._feature_frame(stem, wanted) for stem in stems]
        # Of the frames kept for the next hours, those of partitions this history no longer has.
        for key in [k for k in self._frames if k[0] not in stems and k[1] == tuple(wanted)]:
            self._forget(key)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=wanted)

    def _feature_frame(self, stem: str, wanted: list[str]) -> pd.DataFrame:
        """The ``wanted`` columns (those it has) of one device_features partition; kept for the
        next hours while the file is unchanged (same inode, size, mtime and ctime) when it is a
        small file: a store kept for many hours reads each history hour once, not once per
        baseline build. A kept frame is only ever concatenated (copied), never changed."""
        path = self.store.root / FEATURES / f"{stem}.parquet"
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = (stem, tuple(wanted))
        found = self._frames.get(key)
        if found is not None and found[0] == stamp:
            return found[1]
        names = set(pq.ParquetFile(path).schema_arrow.names)
        cols = [c for c in wanted if c in names]
        frame = read_parquet_table(path, columns=cols).to_pandas()
        if found is not None:
            self._forget(key)
        if st.st_size <= KEPT_FILE_BYTES:
            self._frames[key] = (stamp, frame)
            self._frame_bytes += int(frame.memory_usage(index=False).sum())
            while self._frame_bytes > KEPT_BYTES and self._frames:
                self._forget(next(iter(self._frames)))
        return frame

    def _forget(self, key: tuple[str, tuple[str, ...]]) -> None:
        _, frame = self._frames.pop(key)
        self._frame_bytes -= int(frame.memory_usage(index=False).sum())

    # ------------------------------------------------------------------ baselines
    def baselines(self, partition_key: str, table: SignatureTable) -> pd.DataFrame:
        """Baselines for the hour of ``partition_key`` (cached, see the module docstring)."""
        hour = hour_of(partition_key)
        settings = table.baseline
        directory = self.store.root / BASELINES
        if directory.exists():
            # Built less than refresh_hours before the hour: stems are whole hours in time order,
            # so compared as text (a long history's hours each look at hundreds of files).
            stale = stem_of(hour - pd.Timedelta(hours=settings["refresh_hours"]))
            fresh = sorted(
                stem
                for stem in (
                    n[: -len(".parquet")] for n in os.listdir(directory) if n.endswith(".parquet")
                )
                if stale < stem <= stem_of(hour)
            )
            if fresh:
                path = directory / f"{fresh[-1]}.parquet"
                stat = path.stat()
                version = (fresh[-1], stat.st_mtime_ns, stat.st_size)
                if self._read is None or self._read[0] != version:
                    self._read = (version, pd.read_parquet(path))
                return self._read[1]
        stems = self._history_stems(hour, settings["lookback_hours"])
        features = table.baseline_features()
        wanted = ["device_id", "window_start", "window_end", "duty_cycle", bl.DEFROST_MINUTES]
        wanted += [f for f in features if f not in wanted]
        history = self.with_cohort(self._read_features(stems, wanted))
        baselines = bl.build_baselines(history, table)
        if len(stems) >= settings["min_history_hours"]:
            self.store.write(BASELINES, stem_of(hour), baselines)
        return baselines

    def indexed(self, baselines: pd.DataFrame) -> bl.IndexedBaselines:
        """``baselines`` indexed for lookups (:class:`~refrig_assets.incidents.baselines.
        IndexedBaselines`), once for the same frame given again (a reused baseline file)."""
        if self._indexed is None or self._indexed[0] is not baselines:
            self._indexed = (baselines, bl.IndexedBaselines(baselines))
        return self._indexed[1]

    # ------------------------------------------------------------------ derived features
    def with_derived(
        self, partition_key: str, features: pd.DataFrame, table: SignatureTable
    ) -> pd.DataFrame:
        """``features`` with ``hours_since_defrost``: hours from the end of the device's last
        window with any defrost (defrost_minutes > 0) (or from when observation began, at most
        ``derived.defrost.lookback_hours`` back) to the end of each window; and, where the
        table reads them, the compressor stop features (:func:`with_stops`)."""
        frame = features
        if bl.DEFROST_MINUTES in frame and not frame.empty:
            before = self.state_before(partition_key, table)
            frame, state = derive_defrost(frame, before)
            self.write_state(partition_key, [state], before)
        if uses_stops(table) and stops.DUTY in frame and not frame.empty:
            previous = self.stops_before(partition_key, table)
            frame, after = with_stops(frame, previous, table)
            self.write_stops(partition_key, [after], previous)
        return frame

    def stops_before(self, partition_key: str, table: SignatureTable) -> pd.DataFrame:
        """The stop state after the hour before (:mod:`refrig_assets.incidents.stops`): the
        stored one, else followed from ``derived.stops.lookback_hours`` of feature history."""
        hour = hour_of(partition_key)
        prev = self.store.root / STOPS / f"{stem_of(hour - HOUR)}.parquet"
        if prev.exists():
            return pd.read_parquet(prev)
        stems = self._history_stems(hour, table.derived["stops"]["lookback_hours"])
        history = self._read_features(stems, list(STOP_COLUMNS))
        if history.empty or stops.DUTY not in history:
            return stops.empty_state()
        return with_stops(history, stops.empty_state(), table)[1]

    def write_stops(
        self, partition_key: str, states: list[pd.DataFrame], before: pd.DataFrame
    ) -> None:
        """Store the stop state after the hour: ``states`` (of :func:`with_stops`, disjoint
        devices) and, for devices absent this hour, their state before it."""
        self.store.write(STOPS, stem_of(hour_of(partition_key)), stops.merge_states(states, before))

    def state_before(self, partition_key: str, table: SignatureTable) -> pd.Series:
        """Per device, the last defrost end (or observation start) before the hour."""
        lookback = table.derived["defrost"]["lookback_hours"]
        return self._state_before(hour_of(partition_key), lookback)

    def write_state(
        self, partition_key: str, states: list[pd.DataFrame], before: pd.Series
    ) -> None:
        """Store the state after the hour: ``states`` (of :func:`derive_defrost`, for disjoint
        groups of devices, in device order) and, for devices absent this hour, their last
        known value."""
        state = pd.concat(states, ignore_index=True) if len(states) > 1 else states[0]
        # Devices absent this hour keep their last known value.
        before_ns = epoch_ns(before)
        carried = pd.DataFrame(
            {"device_id": before.index.astype(str), "last": pd.to_datetime(before_ns, utc=True)}
        )
        carried = carried[~carried["device_id"].isin(state["device_id"])]
        parts = [p for p in (state, carried) if len(p)]
        self.store.write(
            STATE, stem_of(hour_of(partition_key)), pd.concat(parts, ignore_index=True)
        )

    def _state_before(self, hour: pd.Timestamp, lookback: float) -> pd.Series:
        """Per device, the last defrost end (or observation start) before ``hour``."""
        prev = self.store.root / STATE / f"{stem_of(hour - HOUR)}.parquet"
        if prev.exists():
            state = pd.read_parquet(prev)
            return state.set_index("device_id")["last"].astype("datetime64[ns, UTC]")
        stems = self._history_stems(hour, lookback)
        history = self._read_features(
            stems, ["device_id", "window_start", "window_end", bl.DEFROST_MINUTES]
        )
        if history.empty or bl.DEFROST_MINUTES not in history:
            return pd.Series(dtype="datetime64[ns, UTC]")
        end = pd.to_datetime(history["window_end"], utc=True)
        start = pd.to_datetime(history["window_start"], utc=True)
        devices = history["device_id"].astype(str).to_numpy()
        observed = start.groupby(devices).min()
        defrost = end.where(_defrosting(history))
        last = defrost.groupby(devices).max()
        return last.fillna(observed).astype("datetime64[ns, UTC]")


def with_cohorts(features: pd.DataFrame, cohorts: pd.Series | None) -> pd.DataFrame:
    """``features`` with each device's cohort from ``cohorts`` (:meth:`CauseStore.cohorts`;
    kept when present, 'unknown' otherwise). A caller mapping several groups of windows keeps
    one ``cohorts``: its index's hash table is built on the first lookup only."""
    if "cohort" in features:
        return features
    if cohorts is None:
        return features.assign(cohort="unknown")
    cohort = features["device_id"].map(cohorts)
    return features.assign(cohort=cohort.fillna("unknown").to_numpy())


# The device_features columns the stop features follow.
STOP_COLUMNS = (
    "device_id",
    "window_start",
    "window_end",
    stops.DUTY,
    stops.IDLE_STREAK,
    bl.DEFROST_MINUTES,
    "reading_count",
    "sensor_completeness",
)
# Of those, the numbers of a window (a service derives the stop features from them).
STOP_NUMBERS = tuple(
    c for c in STOP_COLUMNS if c not in ("device_id", "window_start", "window_end")
)


def uses_stops(table: SignatureTable) -> bool:
    """Whether the table's conditions read the compressor stop features (and it has their
    ``derived.stops`` settings)."""
    features = {f for sig in table for f in sig.features}
    return "stops" in table.derived and bool({stops.STOPPED, stops.OVER_LONGEST} & features)


def with_stops(
    features: pd.DataFrame, before: pd.DataFrame, table: SignatureTable
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``features`` (with ``duty_cycle``) with the compressor stop features
    (:func:`stop_features`), and the stop state after them for their devices, continuing from
    ``before``."""
    frame = bl.numbered(features)
    numbers = {c: bl.as_numbers(frame[c]) for c in STOP_NUMBERS if c in frame}
    stopped, over, after = stop_features(
        frame["device_id"].astype(str).to_numpy(),
        epoch_ns(frame["window_start"]),
        epoch_ns(frame["window_end"]),
        numbers,
        stops.StopState(before),
        table,
    )
    return frame.assign(**{stops.STOPPED: stopped, stops.OVER_LONGEST: over}), after


def stop_features(
    devices: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    numbers: Mapping[str, np.ndarray],
    before: stops.StopState,
    table: SignatureTable,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per window (device ids, starts and ends as int64 ns; ``numbers``: those of
    :data:`STOP_NUMBERS` the windows have), ``compressor_stopped_minutes`` and
    ``compressor_stop_over_longest`` (:func:`~refrig_assets.incidents.stops.derive_stops`), and
    the stop state after the windows, continuing from ``before``: the batch's and a service's
    one derivation."""
    from refrig_assets.incidents.policy import incident_policy
    from refrig_assets.incidents.quality_signals import silent_windows

    n = len(devices)

    def number(name: str) -> np.ndarray:
        return numbers[name] if name in numbers else np.full(n, np.nan)

    # A window its device (almost) did not report in shows no stop: it ends the count.
    quality = pd.DataFrame(
        {c: numbers[c] for c in ("reading_count", "sensor_completeness") if c in numbers},
        index=pd.RangeIndex(n),
    )
    duty = np.where(silent_windows(quality, incident_policy()), np.nan, number(stops.DUTY))
    return stops.derive_stops(
        devices,
        start,
        end,
        duty,
        number(stops.IDLE_STREAK),
        number(bl.DEFROST_MINUTES) > 0,
        before,
        table.derived["stops"]["min_observed_hours"],
    )


class DefrostState:
    """The defrost state before an hour (:meth:`CauseStore.state_before`) with its device index
    and its times as int64 ns, made once: a service diagnoses a few devices at a time against
    the whole fleet's state (the index's hash table is built on its first lookup only)."""

    def __init__(self, before: pd.Series):
        self.before = before
        self.positions = bl.KeyPositions(before.index)
        self.ns = epoch_ns(before) if len(before) else np.zeros(0, np.int64)


def derive_defrost(
    features: pd.DataFrame, before: pd.Series | DefrostState
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``features`` (with ``defrost_minutes``) with ``hours_since_defrost``, and the state after
    them (device_id, last) for their devices, continuing from ``before``
    (:meth:`CauseStore.state_before`). Each device's value depends on its own windows only."""
    frame = bl.numbered(features)
    state = before if isinstance(before, DefrostState) else DefrostState(before)
    since, devices, last = defrost_hours(
        frame["device_id"].astype(str).to_numpy(),
        epoch_ns(frame["window_start"]),
        epoch_ns(frame["window_end"]),
        _defrosting(frame).to_numpy(),
        state,
    )
    after = pd.DataFrame({"device_id": devices, "last": pd.to_datetime(last, utc=True)})
    return frame.assign(hours_since_defrost=since), after


def defrost_hours(
    devices: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    defrosting: np.ndarray,
    before: DefrostState,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`derive_defrost` on arrays (one entry per window: device id, start and end as int64
    ns UTC, :func:`defrosting`): each window's hours since the defrost, and the state after
    them (each device and its last defrost end, int64 ns)."""
    # Times as int64 ns UTC: engines hand timestamps over in several units.
    order = np.lexsort((end, devices))
    d, e = devices[order], end[order]
    start = start[order]
    # Rows are grouped by device now: each group is one run [first[k], first[k + 1]).
    first = (
        np.flatnonzero(np.concatenate([[True], d[1:] != d[:-1]]))
        if len(d)
        else np.zeros(0, np.int64)
    )
    sizes = np.diff(np.append(first, len(d)))
    # Only the times of the devices at hand are looked up in the state.
    known = before.positions(d[first])
    # Devices new to the state: observed from their first window's start.
    previous = np.minimum.reduceat(start, first) if len(d) else np.zeros(0, np.int64)
    if len(before.ns):
        previous = np.where(known >= 0, before.ns[np.maximum(known, 0)], previous)
    last = np.maximum(
        np.repeat(previous, sizes), np.where(defrosting[order], e, np.iinfo(np.int64).min)
    )
    last = _group_cummax(last, sizes)
    since = np.empty(len(devices))
    since[order] = (e - last) / 3.6e12
    tail = first + sizes - 1  # each device's last row holds its running maximum
    return since, d[tail], last[tail]


def _group_cummax(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Running maximum of int64 ``values`` restarting at every group (consecutive runs of
    ``sizes`` rows): each value is replaced by its rank among all values, offset by its group
    so that a later group always ranks higher, and one running maximum serves every group."""
    if not len(values):
        return values
    ranks, rank = np.unique(values, return_inverse=True)
    offset = np.repeat(np.arange(len(sizes), dtype=np.int64) * len(ranks), sizes)
    return ranks[np.maximum.accumulate(rank.reshape(-1) + offset) - offset]


# A window whose readings a sensor fault spoiled cannot show that no defrost happened.
UNREADABLE_FLAGS = ("STUCK_SENSOR", "SENSOR_DROPOUT", "OUT_OF_RANGE", "UNIT_SUSPECT")


def _defrosting(frame: pd.DataFrame) -> pd.Series:
    """:func:`defrosting` of the windows of ``frame``."""
    mask = quality_bits(frame["quality_mask"]) if "quality_mask" in frame else None
    return pd.Series(defrosting(bl.as_numbers(frame[bl.DEFROST_MINUTES]), mask), index=frame.index)


def defrosting(minutes: np.ndarray, quality_mask: np.ndarray | None) -> np.ndarray:
    """Windows with any time in defrost (``minutes`` > 0: a defrost running on from the previous
    window too), and windows with a sensor fault (``quality_mask``, :func:`quality_bits`): there
    the defrost cannot be seen, so the count of hours without one restarts rather than growing
    on readings that cannot show it."""
    seen = minutes > 0  # missing (NaN) counts as none
    if quality_mask is not None:
        from refrig_assets.quality.rules import quality_flag_names

        names = quality_flag_names()
        bits = sum(1 << names.index(f) for f in UNREADABLE_FLAGS if f in names)
        seen |= (quality_mask & bits) != 0
    return seen


def quality_bits(column: pd.Series) -> np.ndarray:
    """A quality_mask column as int64 flag bits (missing or not a number: no flag)."""
    return np.nan_to_num(bl.as_numbers(column), nan=0.0).astype("int64")


def epoch_ns(values) -> np.ndarray:
    """Timestamps (any unit, naive read as UTC) as int64 nanoseconds since the epoch."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.DatetimeTZDtype) or (dtype is not None and dtype.kind == "M"):
        # Already timestamps: their epoch nanoseconds (a naive column is UTC already).
        if isinstance(values, pd.Series | pd.Index):
            return np.array(values.array.as_unit("ns").asi8, dtype=np.int64)
        return np.array(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64").to_numpy()
