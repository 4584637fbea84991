"""Device and cohort baselines the probable-cause signatures compare windows with.

A baseline of a feature is a centre and a spread:

* centre: the device's median over its recent windows (``baseline.lookback_hours`` of
  device_features before the partition); a device with fewer than ``min_device_windows``
  values uses its cohort's centre (median of the device medians), a cohort without any the
  fleet's;
* spread: the cohort's pooled within-device spread (MAD x 1.4826 of value - device median),
  at least ``min_scale_share_of_fleet`` of the fleet's. One device's own spread over a day is
  too noisy to divide by; the cohort's is not.

These are the same robust statistics the statistical_baseline detector keeps for its model
features (``detectors/normalise.DeviceBaseline``), computed here for the cause features, which
are not model inputs (starts per hour, door streaks, reading counts, idle current, ...), and
without waiting for a training run. ``defrost_interval_hours`` is the median time between the
device's defrosts (with at least ``derived.defrost.min_defrosts`` of them); its cohort and fleet
values are the median gap over all their devices' gaps, the open ones (no defrost yet, or not
again) counted as at least as long as seen (Kaplan-Meier), not the median over the devices that
already defrosted often enough, which early in a history are those with the shortest interval.

The result is one wide frame: ``scope`` (device | cohort | fleet), ``key`` (device id, cohort
name, ``*``), ``windows`` and ``center:<feature>`` / ``scale:<feature>`` per feature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents.signatures import SignatureTable

MAD_TO_SIGMA = 1.4826
FLEET = "*"
DEFROST_INTERVAL = "defrost_interval_hours"
DEFROST_COUNT = "defrost_count"
DEFROST_MINUTES = "defrost_minutes"
TINY = 1e-9


def running_features() -> set[str]:
    """device_features columns computed over running readings only."""
    return {
        c.name
        for c in load_contract("device_features").columns
        if c.extra.get("condition") == "running"
    }


def numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its rows numbered 0..n-1: itself when they already are (no copy of a
    shard's windows), else ``reset_index(drop=True)``."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _numbers(column: pd.Series) -> pd.Series | np.ndarray:
    """A feature column as float: numpy numbers as they are (``to_numeric`` would return them
    unchanged, at a cost that dominates a few windows), anything else through ``to_numeric``."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu":
        return column.to_numpy(dtype=float)
    return pd.to_numeric(column, errors="coerce")


def as_numbers(column: pd.Series) -> np.ndarray:
    """A column as a float64 array, anything that is not a number NaN."""
    x = _numbers(column)
    return x if isinstance(x, np.ndarray) else x.astype(float).to_numpy()


def usable_arrays(
    numbers: Mapping[str, np.ndarray], n: int, features: list[str], running_min_duty: float
) -> dict[str, np.ndarray]:
    """The feature values a baseline or a condition may use, from the columns of ``n`` windows
    as float arrays (:func:`as_numbers`; ``duty_cycle`` among them where known; a feature
    without a column is NaN): running-conditioned features only where the compressor ran for
    at least ``running_min_duty`` of the window. The arrays of ``numbers`` are not changed."""
    names = list(dict.fromkeys(features))
    nan = np.full(n, np.nan)
    out = {f: numbers[f] if f in numbers else nan for f in names}
    conditioned = running_features()
    running = [f for f in names if f in conditioned]
    if running and "duty_cycle" in numbers:
        short = ~(numbers["duty_cycle"] >= running_min_duty)
        if short.any():
            for f in running:
                out[f] = np.where(short, np.nan, out[f])
    return out


def usable_values(
    frame: pd.DataFrame, features: list[str], running_min_duty: float
) -> pd.DataFrame:
    """:func:`usable_arrays` of the columns of ``frame``, as a frame of ``features``."""
    names = list(dict.fromkeys(features))
    numbers = {f: as_numbers(frame[f]) for f in [*names, "duty_cycle"] if f in frame}
    usable = usable_arrays(numbers, len(frame), names, running_min_duty)
    # One float block filled feature by feature: no frame of the raw columns to convert and
    # consolidate first (a device shard holds a few hundred thousand windows).
    block = np.empty((len(names), len(frame)))
    for i, f in enumerate(names):
        block[i] = usable[f]
    return pd.DataFrame(block.T, index=frame.index, columns=names)


def empty_baselines(features: list[str]) -> pd.DataFrame:
    """A baselines frame without rows (every condition needing a baseline stays unevaluated)."""
    cols = ["scope", "key", "windows"]
    cols += [f"{p}:{f}" for f in features for p in ("center", "scale", "between")]
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("scope", "key") else float) for c in cols}
    )


def build_baselines(history: pd.DataFrame, table: SignatureTable) -> pd.DataFrame:
    """Baselines of every feature the table compares with, from ``history`` (device_features
    rows with ``cohort``; rows without a cohort count as cohort ``unknown``)."""
    features = table.baseline_features()
    computed = [f for f in features if f != DEFROST_INTERVAL]
    if history.empty:
        return empty_baselines(features)
    settings = table.baseline
    cohort = (
        history["cohort"].fillna("unknown").astype(str)
        if "cohort" in history
        else pd.Series("unknown", index=history.index)
    )
    values = usable_values(history, computed, settings["running_min_duty"])
    values[DEFROST_INTERVAL] = np.nan
    devices = history["device_id"].astype(str).to_numpy()
    grouped = values.groupby(devices)
    median = grouped.median()
    enough = grouped.count() >= settings["min_device_windows"]
    median = median.where(enough)
    own_interval, gaps = _defrost_interval(history, devices, table)
    median[DEFROST_INTERVAL] = own_interval.reindex(median.index)
    device_cohort = cohort.groupby(devices).first().reindex(median.index)
    residual = values.to_numpy() - median.reindex(devices).to_numpy()
    fleet_scale = _mad(residual)
    scale = {}
    for name in pd.unique(cohort.to_numpy()):
        rows = (cohort == name).to_numpy()
        scale[name] = np.maximum(
            np.nan_to_num(_mad(residual[rows]), nan=0.0),
            settings["min_scale_share_of_fleet"] * np.nan_to_num(fleet_scale, nan=0.0),
        )
        scale[name] = np.maximum(scale[name], TINY)
    fleet_scale = np.maximum(np.nan_to_num(fleet_scale, nan=0.0), TINY)
    columns = list(median.columns)
    # A cohort baseline needs enough devices with their own (else the fleet's is used).
    cohort_center = median.groupby(device_cohort.to_numpy()).median()
    contributors = median.notna().groupby(device_cohort.to_numpy()).sum()
    cohort_center = cohort_center.where(contributors >= settings["min_cohort_devices"])
    # The usual interval of a cohort counts the devices without enough defrosts yet too.
    gap_cohort = device_cohort.reindex(gaps["device"]).to_numpy()
    pooled = {c: _median_gap(gaps[gap_cohort == c]) for c in cohort_center.index}
    members = device_cohort.value_counts()
    cohort_center[DEFROST_INTERVAL] = [
        pooled[c] if members.get(c, 0) >= settings["min_cohort_devices"] else np.nan
        for c in cohort_center.index
    ]
    fleet_center = median.median()
    fleet_center[DEFROST_INTERVAL] = _median_gap(gaps)
    counts = grouped.size()

    # Spread between the devices of a cohort (of the fleet): a device judged against its cohort
    # is judged within it, not within one device's swing.
    offsets = median.to_numpy() - cohort_center.reindex(device_cohort.to_numpy()).to_numpy()
    between = {c: _mad(offsets[(device_cohort == c).to_numpy()]) for c in cohort_center.index}
    fleet_between = _mad(median.to_numpy() - fleet_center.to_numpy())

    def block(
        scope: str, keys, centers: np.ndarray, scales: np.ndarray, windows, spread=None
    ) -> pd.DataFrame:
        data = {"scope": scope, "key": list(keys), "windows": np.asarray(windows, dtype=float)}
        spread = np.zeros_like(centers) if spread is None else np.nan_to_num(spread, nan=0.0)
        for j, f in enumerate(columns):
            data[f"center:{f}"] = centers[:, j]
            data[f"scale:{f}"] = scales[:, j]
            data[f"between:{f}"] = spread[:, j]
        return pd.DataFrame(data)

    dev_scales = np.vstack([scale[c] for c in device_cohort.to_numpy()])
    parts = [
        block("device", median.index, median.to_numpy(), dev_scales, counts.to_numpy()),
        block(
            "cohort",
            cohort_center.index,
            cohort_center.to_numpy(),
            np.vstack([scale[c] for c in cohort_center.index]),
            device_cohort.value_counts().reindex(cohort_center.index).to_numpy(),
            np.vstack([between[c] for c in cohort_center.index]),
        ),
        block(
            "fleet",
            [FLEET],
            fleet_center.to_numpy()[None, :],
            fleet_scale[None, :],
            [len(median)],
            fleet_between[None, :],
        ),
    ]
    out = pd.concat(parts, ignore_index=True)
    # The spread of the interval is not used (conditions on it are ratios).
    return out[empty_baselines(features).columns]


def _mad(residual: np.ndarray) -> np.ndarray:
    if not len(residual):
        return np.full(residual.shape[1], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.abs(residual), axis=0) * MAD_TO_SIGMA


def _median_gap(gaps: pd.DataFrame) -> float:
    """The median of defrost gaps (hours) some of which are open (``seen``: False, at least
    that long): the Kaplan-Meier median, NaN while the gaps seen cannot place it. A device that
    has not defrosted (again) yet is counted, not left out: leaving it out would make the
    devices that defrost most often the measure of every device in a short history."""
    seen = gaps["seen"].to_numpy(dtype=bool)
    if not seen.any():
        return float("nan")
    hours = np.sort(gaps["hours"].to_numpy(dtype=float))
    times, ended = np.unique(gaps["hours"].to_numpy(dtype=float)[seen], return_counts=True)
    at_risk = len(hours) - np.searchsorted(hours, times, side="left")
    survival = np.cumprod(1.0 - ended / at_risk)
    below = np.flatnonzero(survival <= 0.5)
    return float(times[below[0]]) if len(below) else float("nan")


def _defrost_interval(
    history: pd.DataFrame, devices: np.ndarray, table: SignatureTable
) -> tuple[pd.Series, pd.DataFrame]:
    """Each device's usual defrost interval: the median time between the starts of its
    defrosts (NaN with fewer than ``derived.defrost.min_defrosts``). A defrost is a run of
    windows with defrost minutes; windows of one defrost (or a coil flickering around the
    defrost threshold) count once. The median of the gaps, unlike hours / defrosts, is not
    biased by a history that is no multiple of the interval, nor by one odd gap.

    Also every device's gaps (``device``, ``hours``, ``seen``) for the cohort's interval: the
    gaps between its defrosts, and the open ones at the ends of its history (from its first
    window to its first defrost, from its last defrost to its last window; its whole history
    without a defrost), which are at least as long as seen."""
    unique = pd.unique(devices)
    if DEFROST_MINUTES not in history:
        empty = pd.DataFrame({"device": [], "hours": [], "seen": []})
        return pd.Series(np.nan, index=unique), empty.astype({"seen": bool})
    frame = pd.DataFrame(
        {
            "device": devices,
            "start": _ns(history["window_start"]),
            "end": _ns(history["window_end"]),
            "minutes": pd.to_numeric(history[DEFROST_MINUTES], errors="coerce")
            .fillna(0)
            .to_numpy(),
        }
    ).sort_values(["device", "start"], kind="stable")
    on = frame[frame["minutes"] > 0]
    same = on["device"].eq(on["device"].shift())
    gap_before = on["start"] - on["end"].shift()
    # A defrost window right after another defrost window (within one window) continues it.
    joined = same & (gap_before <= (on["end"] - on["start"]))
    events = _defrosts(on, joined, table.derived["defrost"]["min_share_of_longest"])
    gaps = events.groupby("device")["start"].diff() / 3.6e12
    count = events.groupby("device").size()
    interval = gaps.groupby(events["device"]).median()
    enough = count.reindex(interval.index) >= table.derived["defrost"]["min_defrosts"]
    span = frame.groupby("device").agg(first=("start", "min"), last=("end", "max"))
    firsts = events.groupby("device")["start"].agg(["min", "max"]).reindex(span.index)
    lead = (firsts["min"] - span["first"]).dropna()
    tail = (span["last"] - firsts["max"]).where(firsts["max"].notna(), span["last"] - span["first"])
    gaps = pd.concat(
        [
            pd.DataFrame({"device": events["device"], "hours": gaps, "seen": True}).dropna(),
            pd.DataFrame({"device": lead.index, "hours": lead / 3.6e12, "seen": False}),
            pd.DataFrame({"device": tail.index, "hours": tail / 3.6e12, "seen": False}),
        ],
        ignore_index=True,
    )
    gaps = gaps[gaps["seen"] | (gaps["hours"] > 0)]
    return interval.where(enough).reindex(unique).astype(float), gaps


def _defrosts(on: pd.DataFrame, joined: pd.Series, share: float) -> pd.DataFrame:
    """The first window of each defrost among the runs of defrost windows ``on`` (``joined``:
    the window continues the run before it): the runs that last at least ``share``
    (``derived.defrost.min_share_of_longest``) of the device's longest. A medium-temperature case's idle
    coil drifts up to its cabinet's air and crosses the defrost threshold for a reading or two
    in many off-cycles; those blips are no defrost, and counting them made its usual interval
    the off-cycle's (an hour), so every ordinary gap between its real defrosts (and any fault
    that stopped the blips: a dead evaporator fan, a leak) read as a defrost overdue. A
    device's defrosts are all about as long (its controller ends them by time or by coil
    temperature); a device whose runs are all blips keeps them all."""
    run = (~joined).cumsum()
    minutes = on["minutes"].groupby(run.to_numpy()).transform("sum")
    longest = minutes.groupby(on["device"].to_numpy()).transform("max")
    starts = on[~joined]
    return starts[(minutes >= share * longest)[~joined]]


class KeyPositions:
    """Where keys sit in a fixed index of unique keys (``Index.get_indexer``, -1 for a key it
    lacks). A few keys at a time (a service's request) are looked up in a dict made once:
    ``get_indexer`` makes an index of the keys first, which costs a small request more than
    the lookup."""

    # Above this many keys, get_indexer's hash join is the cheaper way.
    FEW = 64

    def __init__(self, index: pd.Index):
        self.index = index
        self._positions: dict | None = None

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        if len(keys) > self.FEW:
            return self.index.get_indexer(keys)
        positions = self._positions
        if positions is None:
            if not self.index.is_unique:  # as get_indexer refuses to
                return self.index.get_indexer(keys)
            positions = self._positions = {k: i for i, k in enumerate(self.index.tolist())}
        return np.array([positions.get(k, -1) for k in keys], dtype=np.intp)


class IndexedBaselines:
    """A baselines frame split by scope (fleet, cohort, device), each part's keys indexed once:
    aligning rows to it is then a lookup per scope, not a pass over every baseline. A caller
    aligning a few rows at a time (a service) keeps one between calls: the parts' columns are
    converted to arrays once too."""

    def __init__(self, baselines: pd.DataFrame):
        self.baselines = baselines
        self.levels: list[tuple[int, str, pd.DataFrame, KeyPositions]] = []
        self._columns: dict[tuple[int, str], np.ndarray | None] = {}
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # The features with a centre, in the frame's order.
        self.features = [c[len("center:") :] for c in baselines.columns if c.startswith("center:")]
        if baselines.empty:
            return
        for code, scope in ((0, "fleet"), (1, "cohort"), (2, "device")):
            part = baselines[baselines["scope"] == scope]
            if not part.empty:
                keys = pd.Index(part["key"].astype(str))
                self.levels.append((code, scope, part, KeyPositions(keys)))

    def column(self, level: int, name: str) -> np.ndarray | None:
        """Column ``name`` of the ``level``-th part as floats (None: no such column); the
        spread between devices (``between:``) with NaN as 0, as every lookup takes it."""
        key = (level, name)
        if key not in self._columns:
            part = self.levels[level][2]
            values = part[name].to_numpy(dtype=float) if name in part else None
            if values is not None and name.startswith("between:"):
                values = np.nan_to_num(values)
            self._columns[key] = values
        return self._columns[key]

    def block(self, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres, spreads and spreads between devices (:meth:`column`) of every feature of
        :attr:`features` in the ``level``-th part: one row per feature, one column per key."""
        if level not in self._blocks:
            rows: list[list[np.ndarray]] = [[], [], []]
            width = len(self.levels[level][2])
            for f in self.features:
                for j, prefix in enumerate(("center", "scale", "between")):
                    values = self.column(level, f"{prefix}:{f}")
                    if values is None and prefix == "scale":
                        raise KeyError(f"scale:{f}")
                    rows[j].append(np.zeros(width) if values is None else values)
            self._blocks[level] = (np.vstack(rows[0]), np.vstack(rows[1]), np.vstack(rows[2]))
        return self._blocks[level]


class BaselineLookup:
    """Baselines aligned to a set of rows: where each row's device, cohort and the fleet sit in
    the baselines (a frame, or one already :class:`IndexedBaselines`) is found once, then every
    feature is a few array takes (each feature once: conditions share features)."""

    def __init__(
        self,
        baselines: pd.DataFrame | IndexedBaselines,
        device_ids: np.ndarray,
        cohorts: np.ndarray,
    ):
        if not isinstance(baselines, IndexedBaselines):
            baselines = IndexedBaselines(baselines)
        self.indexed = baselines
        self.n = len(device_ids)
        # Per level: its position, code, each row's position in it, and which rows it has
        # (None: every row).
        self.levels: list[tuple[int, int, np.ndarray, np.ndarray | None]] = []
        self._found: dict[tuple[str, bool], tuple[np.ndarray, ...]] = {}
        keys = {
            "fleet": np.full(self.n, FLEET, dtype=object),
            "cohort": cohorts,
            "device": device_ids,
        }
        for k, (code, scope, _part, positions) in enumerate(baselines.levels):
            at = positions(keys[scope])
            found = at >= 0
            self.levels.append((k, code, np.maximum(at, 0), None if found.all() else found))

    def get(
        self, feature: str, *, own: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centre, spread, level (2 device, 1 cohort, 0 fleet, -1 none) and the spread between
        devices at that level (0 for a device's own baseline) of ``feature`` for each row.
        ``own=False`` skips the device level. The arrays are shared: do not change them."""
        key = (feature, own)
        if key not in self._found:
            if self.n <= KeyPositions.FEW and self.indexed.features:
                # A few rows: every feature at once costs about what one feature does.
                self._found.update(self._get_all(own))
            if key not in self._found:
                self._found[key] = self._get(feature, own)
        center, scale, level, between = self._found[key]
        return center, scale, level, between

    def _get_all(self, own: bool) -> dict[tuple[str, bool], tuple[np.ndarray, ...]]:
        """:meth:`_get` of every feature of the baselines in one pass over their blocks."""
        features = self.indexed.features
        center, scale, level, between = self._resolve(
            (len(features), self.n), self.indexed.block, own
        )
        return {
            (f, own): (center[i], scale[i], level[i], between[i]) for i, f in enumerate(features)
        }

    def _get(self, feature: str, own: bool) -> tuple[np.ndarray, ...]:
        def columns(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
            centers = self.indexed.column(k, f"center:{feature}")
            if centers is None:
                return None
            scales = self.indexed.column(k, f"scale:{feature}")
            if scales is None:
                raise KeyError(f"scale:{feature}")
            spreads = self.indexed.column(k, f"between:{feature}")
            return centers, scales, np.zeros(len(centers)) if spreads is None else spreads

        return self._resolve((self.n,), columns, own)

    def _resolve(
        self,
        shape: tuple[int, ...],
        parts: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray] | None],
        own: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centre, spread, level and spread between of each row (the last axis of ``shape``)
        from each level's ``parts`` (centres, spreads, spreads between, by key on the last axis;
        None: the level lacks them): the most specific level with a centre wins."""
        center = np.full(shape, np.nan)
        scale = np.full(shape, np.nan)
        between = np.zeros(shape)
        level = np.full(shape, -1, dtype=np.int8)
        for k, code, take, found in self.levels:
            got = None if code == 2 and not own else parts(k)
            if got is None:
                continue
            c, sc, b = (values[..., take] for values in got)
            if found is not None:
                c, sc = np.where(found, c, np.nan), np.where(found, sc, np.nan)
            use = ~np.isnan(c)
            center[use], level[use], between[use] = c[use], code, b[use]
            # A device's spread is its cohort's; keep the cohort's where the device lacks one.
            s_use = ~np.isnan(sc)
            scale[s_use] = sc[s_use]
        return center, scale, level, between


def lookup(
    baselines: pd.DataFrame, device_ids: np.ndarray, cohorts: np.ndarray, feature: str, *, own: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`BaselineLookup.get` for one feature."""
    return BaselineLookup(baselines, device_ids, cohorts).get(feature, own=own)


def _ns(values) -> np.ndarray:
    """Timestamps (any unit; naive ones read as UTC) as int64 nanoseconds since the epoch."""
    stamps = pd.to_datetime(pd.Series(values).reset_index(drop=True), utc=True)
    return stamps.astype("datetime64[ns, UTC]").astype("int64").to_numpy()
