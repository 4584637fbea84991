"""Probable cause of every window: the signature table evaluated against device baselines.

:func:`diagnose` is pure and vectorised: each condition of each signature is one array
operation over all windows, signatures are tried in table order and the first that matches a
window names its cause; a window no signature matches is ``unknown`` with confidence 0 and no
evidence. Evidence is what an engineer checks: per condition the feature, measured value with
its unit, the baseline (or limit) it was compared with and where that came from (device,
cohort, fleet), how far off it is (σ for sigma conditions, the multiple for ratio
conditions), the direction and whether it held.

:func:`diagnose_partition` is what the ``device_incidents`` asset calls: it adds each window's
cohort, finds or builds the baselines (:mod:`refrig_assets.incidents.causes_store`) and the
derived features, then calls :func:`diagnose`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.incidents import baselines as bl
from refrig_assets.incidents import stops
from refrig_assets.incidents.causes_store import (
    STOP_COLUMNS,
    STOP_NUMBERS,
    CauseStore,
    epoch_ns,
    quality_bits,
    uses_stops,
)
from refrig_assets.incidents.signatures import (
    UNKNOWN,
    Condition,
    Signature,
    SignatureTable,
    load_signatures,
)

OUTPUT_COLUMNS = [
    "device_id",
    "window_start",
    "window_end",
    "cause",
    "cause_kind",
    "confidence",
    "base_severity",
    "standalone",
    "evidence",
]
LEVELS = {2: "device", 1: "cohort", 0: "fleet", -1: None}
# Windows per batch when the hour's available required features are looked for.
REQUIREMENT_BATCH_ROWS = 65_536
DERIVED_UNITS = {"hours_since_defrost": "h", bl.DEFROST_INTERVAL: "h", stops.STOPPED: "min"}


@cache
def feature_unit(feature: str) -> str | None:
    """Unit of a feature (device_features contract; derived features: their own)."""
    if feature in DERIVED_UNITS:
        return DERIVED_UNITS[feature]
    try:
        return load_contract("device_features").column(feature).unit
    except KeyError:
        return None


class Windows:
    """The windows a diagnosis reads, as arrays (entry i of each is window i): the device ids
    and cohorts as text, the times, the numeric columns as floats, the quality mask as flag
    bits and the other columns it reads as they are. :meth:`from_frame` takes them from a
    device_features frame once; a service diagnosing a few windows builds no other frame."""

    def __init__(
        self,
        device_id: np.ndarray,
        cohort: np.ndarray,
        start: Any,
        end: Any,
        numbers: dict[str, np.ndarray],
        other: dict[str, np.ndarray],
        quality_mask: np.ndarray | None,
    ):
        self.device_id = device_id
        self.cohort = cohort
        # Window starts and ends as given (None: unknown); read as int64 ns when first needed.
        self.start = start
        self.end = end
        self.numbers = numbers
        self.other = other
        self.quality_mask = quality_mask
        self._ns: dict[str, np.ndarray] = {}
        # The devices' windows of the hour before, for persistence tests only (never
        # diagnosed), and their usable feature values (set by diagnose_windows).
        self.earlier: Windows | None = None
        self.usable: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.device_id)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, table: SignatureTable, cohort: bool = True) -> Windows:
        """The columns of device_features rows ``frame`` that :func:`diagnose_windows` and the
        defrost derivation read for ``table``; ``cohort=False`` ignores a ``cohort`` column
        (every window ``unknown`` until the caller sets them)."""
        n = len(frame)
        devices = frame["device_id"].astype(str).to_numpy() if n else np.zeros(0, dtype=object)
        cohorts = (
            frame["cohort"].fillna("unknown").astype(str).to_numpy()
            if cohort and "cohort" in frame
            else np.full(n, "unknown", dtype=object)
        )
        plan = _plan(table)
        numbers = {f: bl.as_numbers(frame[f]) for f in plan.numbers if f in frame}
        other = {f: frame[f].to_numpy() for f in plan.other if f in frame}
        mask = quality_bits(frame["quality_mask"]) if "quality_mask" in frame else None
        return cls(
            devices,
            cohorts,
            frame["window_start"] if "window_start" in frame else None,
            frame["window_end"] if "window_end" in frame else None,
            numbers,
            other,
            mask,
        )

    def ns(self, which: str) -> np.ndarray:
        """Window starts (``which`` ``start``) or ends as int64 ns UTC."""
        if which not in self._ns:
            self._ns[which] = epoch_ns(getattr(self, which))
        return self._ns[which]

    def take(self, rows: np.ndarray) -> Windows:
        """The windows at positions ``rows`` (their times as int64 ns UTC)."""
        times = {k: self.ns(k)[rows] for k in ("start", "end") if getattr(self, k) is not None}
        part = Windows(
            self.device_id[rows],
            self.cohort[rows],
            times.get("start"),
            times.get("end"),
            {k: v[rows] for k, v in self.numbers.items()},
            {k: v[rows] for k, v in self.other.items()},
            None if self.quality_mask is None else self.quality_mask[rows],
        )
        part._ns = times
        return part


class _Evaluated:
    """One condition over all windows: value, reference, deviation, held, strength."""

    def __init__(self, cond: Condition, value, reference, deviation, held, strength, level, n):
        self.cond = cond
        self.value = value
        self.reference = reference
        self.deviation = deviation
        self.evaluated = (
            ~np.isnan(value) & ~np.isnan(reference)
            if cond.reference != "flags"
            else np.ones(n, bool)
        )
        self.held = held & self.evaluated
        self.strength = np.where(self.held, strength, 0.0)
        self.level = level
        self.members: list[_Evaluated] = []
        # A persistence test's result (sigma conditions with ``persistent``), else None.
        self.persistent: _Persistence | None = None

    def without_scale(self, unscaled: np.ndarray) -> _Evaluated:
        """The windows ``unscaled`` (a σ condition whose spread is zero) left unevaluated."""
        self.evaluated = self.evaluated & ~unscaled
        self.held = self.held & self.evaluated
        self.strength = np.where(self.held, self.strength, 0.0)
        self.deviation = np.where(unscaled, np.nan, self.deviation)
        return self


def _flags_held(windows: Windows, flags: tuple[str, ...]) -> np.ndarray:
    if windows.quality_mask is not None:
        from refrig_assets.quality.rules import quality_flag_names

        names = quality_flag_names()
        bits = sum(1 << names.index(f) for f in flags if f in names)
        return (windows.quality_mask & bits) != 0
    if "quality_flags" in windows.other:
        text = pd.Series(windows.other["quality_flags"]).fillna("").astype(str)
        pattern = "|".join(rf"(?:^|,){f}(?:,|$)" for f in flags)
        return text.str.contains(pattern, regex=True).to_numpy()
    return np.zeros(len(windows), dtype=bool)


def _over_trailing_minutes(windows: Windows, value: np.ndarray, minutes: float) -> np.ndarray:
    """``value`` of windows of at least ``minutes``; for a shorter window (a 1 Hz fleet's
    one-minute windows), the time-weighted mean of ``value`` over its device's windows that end
    within the ``minutes`` up to its own end (itself included): for a rate such as starts per
    hour, the events of that span over its length. NaN where those windows cover less than
    ``minutes`` (the first minutes of an hour, a gap), so the condition is not evaluated."""
    end = windows.ns("end")
    span = (end - windows.ns("start")) / 1e9 / 60
    short = span < minutes
    if not short.any():
        return value
    known = ~np.isnan(value)
    parts = pd.DataFrame(
        {
            "device": windows.device_id,
            "end": pd.to_datetime(end, utc=True),
            "weighted": np.where(known, value * span, 0.0),
            "covered": np.where(known, span, 0.0),
        }
    ).sort_values(["device", "end"], kind="stable")
    # The frame is sorted by device, so the groups' rolling sums come back in its row order.
    sums = (
        parts.groupby("device", sort=False)
        .rolling(pd.Timedelta(minutes=minutes), on="end", closed="right")[["weighted", "covered"]]
        .sum()
    )
    weighted, covered = np.empty(len(parts)), np.empty(len(parts))
    weighted[parts.index.to_numpy()] = sums["weighted"].to_numpy()
    covered[parts.index.to_numpy()] = sums["covered"].to_numpy()
    with np.errstate(all="ignore"):
        trailing = np.where(covered >= minutes - 1e-9, weighted / covered, np.nan)
    return np.where(short, trailing, value)


class _Persistence:
    """The persistence test of a sigma condition over all windows: whether it held, its
    per-stretch threshold in σ, the least deviation (σ, signed as the condition) of the
    stretches and the strength of the test."""

    def __init__(self, held: np.ndarray, threshold: float, least: np.ndarray):
        self.held = held
        self.threshold = threshold
        self.least = least
        self.strength = _strength((least - threshold) / threshold)


def persistent_threshold(sigma: float, samples: int) -> float:
    """The deviation (σ) that ``samples`` independent normal stretches all pass, on one side,
    as rarely as one passes ``sigma``: the tail probability of ``sigma`` to the power
    1/``samples`` (5σ over 4 stretches: each beyond 1.99σ)."""
    normal = NormalDist()
    return -normal.inv_cdf(normal.cdf(-sigma) ** (1.0 / samples))


def _persistent(
    cond: Condition,
    windows: Windows,
    values: dict[str, np.ndarray],
    center: np.ndarray,
    spread: np.ndarray,
    sign: float,
) -> _Persistence:
    """Whether a shift of ``cond``'s feature persists: the device's last
    ``persistent_samples`` stretches of ``persistent_minutes`` (its windows ending that many
    minutes apart, the window itself the last; windows shorter than that are first pooled over
    the minutes up to their end, time-weighted, as ``min_window_minutes`` pools them) each lie
    beyond :func:`persistent_threshold` of the condition's ``sigma``, against the window's own
    baseline. One window against the within-device spread cannot tell a lasting shift from a
    window's scatter (the pull-down after each start in a 15-minute window of a fleet read
    every 30 s or more spreads a suction mean by 8 %, so a 20 % leak stays at 2.6σ); a run of
    stretches each beyond a lower threshold is as unlikely by chance and holds for it. A
    stretch without a value (the compressor barely ran) or outside the windows diagnosed and
    their ``earlier`` windows (the hour before) leaves the test unevaluated (not held)."""
    assert cond.persistent_samples is not None and cond.persistent_minutes is not None
    samples, minutes = cond.persistent_samples, cond.persistent_minutes
    n = len(windows)
    value = values[cond.feature] if cond.feature in values else np.full(n, np.nan)
    span = _with_earlier(windows, cond.feature, value, center, spread)
    pooled = _over_trailing_minutes(span.windows, span.value, minutes)
    deviation = sign * (pooled - span.center) / span.spread
    end = span.windows.ns("end")
    step = np.maximum(end - span.windows.ns("start"), int(minutes * 60e9))
    keys = pd.MultiIndex.from_arrays([span.windows.device_id, end])
    first = np.flatnonzero(~keys.duplicated())
    keys = keys[first]
    own = slice(len(span.windows) - n, None)  # the windows diagnosed come last
    least = deviation[own].copy()
    for lag in range(1, samples):
        lagged = pd.MultiIndex.from_arrays([windows.device_id, end[own] - lag * step[own]])
        at = keys.get_indexer(lagged)
        before = np.where(at >= 0, deviation[first[np.maximum(at, 0)]], np.nan)
        least = np.minimum(least, before)  # NaN (a stretch missing) leaves it unevaluated
    threshold = persistent_threshold(float(cond.sigma or 0.0), samples)
    held = least >= threshold
    return _Persistence(held, threshold, least)


class _Span:
    """The windows a persistence test reads: the hour's earlier windows (``Windows.earlier``)
    followed by the windows diagnosed, with the feature's value and each window's baseline."""

    def __init__(self, windows: Windows, value, center, spread):
        self.windows, self.value, self.center, self.spread = windows, value, center, spread


def _with_earlier(
    windows: Windows, feature: str, value: np.ndarray, center: np.ndarray, spread: np.ndarray
) -> _Span:
    """``windows`` preceded by their devices' earlier windows (the hour before, where the
    caller gave them), each judged against its device's baseline in ``windows``."""
    earlier = windows.earlier
    if earlier is None or not len(earlier) or earlier.end is None or earlier.start is None:
        return _Span(windows, value, center, spread)
    devices, first = np.unique(windows.device_id, return_index=True)
    at = pd.Index(devices).get_indexer(earlier.device_id)
    row = np.where(at >= 0, first[np.maximum(at, 0)], 0)
    known = at >= 0
    before = earlier.usable.get(feature, np.full(len(earlier), np.nan))
    times = {k: np.concatenate([earlier.ns(k), windows.ns(k)]) for k in ("start", "end")}
    both = Windows(
        np.concatenate([earlier.device_id, windows.device_id]),
        np.concatenate([earlier.cohort, windows.cohort]),
        times["start"],
        times["end"],
        {},
        {},
        None,
    )
    both._ns = times
    return _Span(
        both,
        np.concatenate([np.where(known, before, np.nan), value]),
        np.concatenate([np.where(known, center[row], np.nan), center]),
        np.concatenate([np.where(known, spread[row], np.nan), spread]),
    )


def _strength(share: np.ndarray) -> np.ndarray:
    """0.5 + 0.5 × ``share`` clipped to [0, 1] (NaN stays NaN): the values of ``np.clip``,
    whose wrapper costs a few windows more than the two ufuncs."""
    return 0.5 + 0.5 * np.minimum(np.maximum(share, 0.0), 1.0)


def _evaluate(
    cond: Condition,
    windows: Windows,
    values: dict[str, np.ndarray],
    baselines: bl.BaselineLookup,
    fallback_sigma: float,
    cohorts: tuple[np.ndarray, np.ndarray],
) -> _Evaluated:
    """``cond`` over ``windows`` (``cohorts``: their cohorts factorized); the caller ignores
    floating-point warnings (NaN values and baselines leave a condition unevaluated)."""
    n = len(windows)
    if cond.any_of:
        members = [
            _evaluate(m, windows, values, baselines, fallback_sigma, cohorts) for m in cond.any_of
        ]
        out = members[0]
        held = np.any([m.held for m in members], axis=0)
        strength = np.max([m.strength for m in members], axis=0)
        nan = np.full(n, np.nan)
        result = _Evaluated(cond, nan, nan, nan, held, strength, out.level, n)
        result.evaluated = np.any([m.evaluated for m in members], axis=0)
        result.held = held
        # Its strength is its strongest member's (the NaN value of the group itself would
        # leave it 0).
        result.strength = np.where(held, strength, 0.0)
        result.members = members
        return result
    if cond.reference == "flags":
        held = _flags_held(windows, cond.flags)
        nan = np.full(n, np.nan)
        return _Evaluated(cond, nan, nan, nan, held, np.ones(n), np.full(n, -1, np.int8), n)
    value = values[cond.feature] if cond.feature in values else np.full(n, np.nan)
    if cond.min_window_minutes is not None and windows.end is not None:
        value = _over_trailing_minutes(windows, value, cond.min_window_minutes)
    sign = 1.0 if cond.direction == "up" else -1.0
    if cond.reference == "limit":
        codes, uniques = cohorts
        per = np.array([cond.limit_for(str(c)) for c in uniques] + [cond.limit_for("")], float)
        reference = per[codes] if len(codes) else np.zeros(0)
        excess = sign * (value - reference)
        strength = _strength(excess / np.maximum(np.abs(reference), bl.TINY))
        held = excess >= 0
        return _Evaluated(
            cond, value, reference, excess, held, strength, np.full(n, -1, np.int8), n
        )
    center, scale, level, between = baselines.get(
        cond.baseline_feature, own=cond.reference == "baseline"
    )
    if cond.sigma is not None:
        # Against a cohort (a device without its own baseline), the spread between the
        # cohort's devices counts too.
        spread = np.maximum(scale, between)
        deviation = (value - center) / spread
        excess = sign * deviation - cond.sigma
        strength = _strength(excess / cond.sigma)
        held = excess >= 0
        persistent = None
        if cond.persistent_samples is not None and windows.end is not None:
            persistent = _persistent(cond, windows, values, center, spread, sign)
            lasting = persistent.held & ~held
            held = held | persistent.held
            strength = np.where(lasting, persistent.strength, strength)
        # A spread of zero is no scale to count σ in: more than half of the windows sat on
        # their device's median (a quantised feature, such as the duty cycle of windows a few
        # readings long: every window fully on or off), so any step off it would read as
        # 1e9σ. Such a condition is not evaluated, as one without a baseline.
        evaluated = _Evaluated(cond, value, center, deviation, held, strength, level, n)
        evaluated.persistent = persistent
        return evaluated.without_scale(spread <= bl.TINY)
    else:
        assert cond.ratio is not None
        deviation = value / center
        threshold = cond.ratio * center
        excess = sign * (value - threshold)
        strength = _strength(excess / np.maximum(np.abs(threshold), bl.TINY))
        # ... and a ratio to a cohort's centre must also leave the spread between devices.
        outside = sign * (value - center) >= fallback_sigma * between
        held = (excess >= 0) & outside
    return _Evaluated(cond, value, center, deviation, held, strength, level, n)


def _any_value(column: Any) -> bool:
    if isinstance(column, np.ndarray) and column.dtype.kind == "f":
        return not np.isnan(column).all()
    return bool(pd.notna(column).any())


def available_requirements(
    frame: pd.DataFrame | Mapping[str, Any],
    values: pd.DataFrame | Mapping[str, np.ndarray],
    table: SignatureTable,
) -> set[str]:
    """The features some signature ``requires`` that the data has: a usable value (in
    ``values``, :func:`~refrig_assets.incidents.baselines.usable_values`) or, for features no
    condition compares, any value (in ``frame``: device_features rows, or their columns) in at
    least one window."""
    out = set()
    for f in {f for sig in table for f in sig.requires}:
        if f in values:
            if _any_value(values[f]):
                out.add(f)
        elif f in frame and _any_value(frame[f]):
            out.add(f)
    return out


def _skip(sig: Signature, available: set[str]) -> bool:
    """A signature whose required features the data lacks (no such sensor) is skipped."""
    return any(f not in available for f in sig.requires)


def _wanted(table: SignatureTable) -> list[str]:
    """The features the conditions compare (all but the quality-flag conditions)."""
    return sorted(
        {f for s in table for c in s.conditions if c.reference != "flags" for f in c.features}
    )


class _Plan:
    """What a table's diagnosis reads, worked out once per table: the features compared
    (:func:`_wanted`), the columns read as numbers and the others read as they are."""

    def __init__(self, table: SignatureTable):
        self.table = table
        self.wanted = _wanted(table)
        self.numbers = list(dict.fromkeys([*self.wanted, "duty_cycle", bl.DEFROST_MINUTES]))
        if uses_stops(table):  # what a service derives the stop features from
            self.numbers += [c for c in STOP_NUMBERS if c not in self.numbers]
        read = {"quality_flags", *(f for sig in table for f in sig.requires)}
        self.other = sorted(read - set(self.wanted))


_LAST_PLAN: list[_Plan] = []


def _plan(table: SignatureTable) -> _Plan:
    """The :class:`_Plan` of ``table`` (the last table's is kept: a service or an hour's shards
    diagnose with one table)."""
    last = _LAST_PLAN[-1] if _LAST_PLAN else None
    if last is None or last.table is not table:
        last = _Plan(table)
        _LAST_PLAN[:] = [last]
    return last


# Columns the diagnosis reads besides the signature table's features: the window keys, the
# cohort, the duty cycle that conditions running features, the defrost minutes behind the derived
# defrost features and the quality mask that flag conditions and the defrost state test.
_FRAME_COLUMNS = ("device_id", "window_start", "window_end", "cohort", "duty_cycle", "quality_mask")


def diagnosis_columns(table: SignatureTable, names: list[str]) -> list[str]:
    """Of a device_features file's column ``names`` (in their order), those
    :func:`diagnose` and :func:`~refrig_assets.incidents.causes_store.derive_defrost` read for
    the signatures of ``table``: reading only these diagnoses every window as the whole file
    does."""
    used = {*_FRAME_COLUMNS, bl.DEFROST_MINUTES, *(f for sig in table for f in sig.features)}
    if uses_stops(table):
        used |= set(STOP_COLUMNS)
    return [c for c in names if c in used]


def _number(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _evidence(
    results: list[_Evaluated], rows: np.ndarray, windows: Windows
) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[] for _ in rows]
    for r in (m for res in results for m in (res.members or [res])):
        cond = r.cond
        if cond.reference == "flags":
            text = (
                windows.other["quality_flags"][rows]
                if "quality_flags" in windows.other
                else np.full(len(rows), "")
            )
            for k, i in enumerate(rows):
                if r.held[i]:
                    out[k].append(
                        {
                            "feature": "quality_flags",
                            "value": str(text[k]),
                            "unit": None,
                            "reference": "flags",
                            "baseline": list(cond.flags),
                            "direction": None,
                            "sigma": None,
                            "held": True,
                        }
                    )
            continue
        unit = feature_unit(cond.feature)
        for k, i in enumerate(rows):
            if not r.evaluated[i]:
                continue
            item: dict[str, Any] = {
                "feature": cond.feature,
                "value": _number(r.value[i]),
                "unit": unit,
                "reference": cond.reference
                if cond.reference == "limit"
                else LEVELS[int(r.level[i])],
                "baseline": _number(r.reference[i]),
                "direction": cond.direction,
                "sigma": _number(r.deviation[i]) if cond.sigma is not None else None,
                "held": bool(r.held[i]),
            }
            if cond.of:
                item["baseline_of"] = cond.of
            if cond.sigma is not None:
                item["threshold_sigma"] = cond.sigma
            if r.persistent is not None and not np.isnan(r.persistent.least[i]):
                item["persistent"] = {
                    "samples": cond.persistent_samples,
                    "minutes": cond.persistent_minutes,
                    "least_sigma": _number(r.persistent.least[i]),
                    "threshold_sigma": _number(r.persistent.threshold),
                    "held": bool(r.persistent.held[i]),
                }
            elif cond.ratio is not None:
                item["ratio"] = _number(r.deviation[i])
                item["threshold_ratio"] = cond.ratio
            out[k].append(item)
    return out


class Diagnosis:
    """What :func:`diagnose_windows` finds per window: cause, kind, confidence (rounded to
    3 places), base severity, standalone and the evidence (a list of dicts, one per condition
    evaluated, kept for the windows a signature matched)."""

    def __init__(self, n: int):
        self.cause = np.full(n, UNKNOWN, dtype=object)
        self.kind = np.full(n, UNKNOWN, dtype=object)
        self.severity = np.full(n, None, dtype=object)
        self.standalone = np.zeros(n, dtype=bool)
        self.confidence = np.zeros(n)
        self.evidence: dict[int, list[dict[str, Any]]] = {}

    def evidence_of(self, row: int) -> list[dict[str, Any]]:
        """The evidence of window ``row`` (a new empty list where no signature matched)."""
        return self.evidence.get(row, [])

    def frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """The :data:`OUTPUT_COLUMNS` frame: the window keys of ``features`` (the rows
        diagnosed, numbered 0..n-1) and the evidence as JSON."""
        n = len(features)
        evidence = np.full(n, "[]", dtype=object)
        for row, items in self.evidence.items():
            evidence[row] = json.dumps(items, separators=(",", ":"))
        out = pd.DataFrame(
            {
                "device_id": features["device_id"] if n else pd.Series(dtype=object),
                "window_start": features["window_start"]
                if n
                else pd.Series(dtype="datetime64[ns, UTC]"),
                "window_end": features["window_end"]
                if n
                else pd.Series(dtype="datetime64[ns, UTC]"),
                "cause": self.cause,
                "cause_kind": self.kind,
                "confidence": self.confidence,
                "base_severity": self.severity,
                "standalone": self.standalone,
                "evidence": evidence,
            }
        )
        return out[OUTPUT_COLUMNS]


def diagnose_windows(
    windows: Windows,
    baselines: pd.DataFrame | bl.IndexedBaselines,
    table: SignatureTable,
    available: set[str] | None = None,
) -> Diagnosis:
    """:func:`diagnose` of ``windows``: the signatures tried in table order, the first whose
    conditions hold naming a window's cause (see :func:`diagnose` for ``available``)."""
    n = len(windows)
    plan = _plan(table)
    values = bl.usable_arrays(windows.numbers, n, plan.wanted, table.baseline["running_min_duty"])
    if available is None:
        available = available_requirements(windows.other, values, table)
    if windows.earlier is not None:
        before = windows.earlier
        before.usable = bl.usable_arrays(
            before.numbers, len(before), plan.wanted, table.baseline["running_min_duty"]
        )
    found = Diagnosis(n)
    open_rows = np.ones(n, dtype=bool)
    fallback = table.baseline["fallback_between_sigma"]
    aligned = bl.BaselineLookup(baselines, windows.device_id, windows.cohort)
    cohorts = pd.factorize(windows.cohort)
    for sig in table:
        if not open_rows.any():
            break
        if _skip(sig, available):
            continue
        with np.errstate(all="ignore"):
            results = [
                _evaluate(c, windows, values, aligned, fallback, cohorts) for c in sig.conditions
            ]
        held = np.vstack([r.held for r in results])
        required = np.all(
            [r.held for r, c in zip(results, sig.conditions, strict=True) if c.required]
            or [np.ones(n, bool)],
            axis=0,
        )
        match = open_rows & required & (held.sum(axis=0) >= sig.min_conditions)
        if not match.any():
            continue
        rows = np.flatnonzero(match)
        found.cause[rows], found.kind[rows] = sig.cause, sig.kind
        found.standalone[rows] = sig.standalone
        strength = np.vstack([r.strength for r in results]).sum(axis=0) / len(results)
        found.confidence[rows] = np.clip(strength[rows], 0.0, 1.0)
        sev = np.full(len(rows), sig.severity, dtype=object)
        if sig.escalate_severity:
            by_id = {c.id: r for c, r in zip(sig.conditions, results, strict=True) if c.id}
            up = np.all([by_id[i].held[rows] for i in sig.escalate_when], axis=0)
            sev[up] = sig.escalate_severity
        found.severity[rows] = sev
        found.evidence.update(zip(rows.tolist(), _evidence(results, rows, windows), strict=True))
        open_rows &= ~match
    found.confidence = found.confidence.round(3)
    return found


def diagnose(
    features: pd.DataFrame,
    baselines: pd.DataFrame,
    table: SignatureTable | None = None,
    available: set[str] | None = None,
    indexed: bl.IndexedBaselines | None = None,
    earlier: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per window of ``features``: probable cause, kind, confidence, base severity,
    standalone and the evidence (JSON list), from the signatures of ``table``.

    ``features``: device_features rows (device_id, window_start, window_end, ``cohort`` when
    known, any feature columns; missing columns make their conditions unevaluated and
    signatures that ``require`` them skipped). ``baselines``: from
    :func:`~refrig_assets.incidents.baselines.build_baselines`. ``available``: the required
    features the data has (:func:`available_requirements`), when ``features`` is one part of
    the data (a device shard of the hour); by default, those of ``features``. ``indexed``:
    ``baselines`` already indexed, for a caller that keeps them between calls (a service
    diagnosing a few windows at a time). ``earlier``: device_features rows of the same devices
    before ``features`` (:func:`earlier_windows`), which persistence tests look back at and
    which are not diagnosed.
    """
    table = table or load_signatures()
    frame = bl.numbered(features)
    windows = Windows.from_frame(frame, table)
    if earlier is not None and len(earlier):
        windows.earlier = Windows.from_frame(bl.numbered(earlier), table, cohort=False)
    return diagnose_windows(windows, indexed or baselines, table, available).frame(frame)


def cause_for_streaming_rule(rule_name: str, table: SignatureTable | None = None) -> str | None:
    """The cause a streaming rule's alerts mean (the signature listing it), or None."""
    return (table or load_signatures()).cause_for_streaming_rule(rule_name)


def persistent_features(table: SignatureTable) -> list[str]:
    """The features of the table's conditions with a persistence test."""
    return sorted(
        {
            m.feature
            for sig in table
            for c in sig.conditions
            for m in (c.any_of or (c,))
            if m.persistent_samples is not None
        }
    )


def earlier_windows(
    store: CauseStore, partition_key: str, table: SignatureTable
) -> pd.DataFrame | None:
    """The device_features windows of the hour before ``partition_key`` that persistence tests
    look back at (keys, duty cycle and the persistent conditions' features); None where no
    condition tests persistence or that hour is not stored."""
    from refrig_assets.core.storage import read_parquet_table
    from refrig_assets.incidents.causes_store import FEATURES, HOUR, hour_of, stem_of

    features = persistent_features(table)
    path = store.store.root / FEATURES / f"{stem_of(hour_of(partition_key) - HOUR)}.parquet"
    if not features or not path.exists():
        return None
    names = set(pq.ParquetFile(path).schema_arrow.names)
    wanted = ["device_id", "window_start", "window_end", "duty_cycle", *features]
    return read_parquet_table(path, columns=[c for c in wanted if c in names]).to_pandas()


def diagnose_partition(
    refrig_settings_or_home, partition_key: str, features: pd.DataFrame
) -> pd.DataFrame:
    """:func:`diagnose` for one hourly partition of device_features, with the cohort from the
    stored device registry, the baselines of the hours before it (cached) and the derived
    features (hours since the last defrost)."""
    store = CauseStore.open(refrig_settings_or_home)
    table = load_signatures()
    frame = store.with_cohort(features)
    baselines = store.baselines(partition_key, table)
    frame = store.with_derived(partition_key, frame, table)
    earlier = earlier_windows(store, partition_key, table)
    return diagnose(frame, baselines, table, earlier=earlier)


class HourDiagnosis:
    """:func:`diagnose_partition` for an hour diagnosed one device shard at a time.

    The hour's fleet-wide context (the signature table, the baselines, the defrost state of the
    hour before) is loaded once; each call diagnoses one group of devices' windows, and
    :meth:`finish` stores the defrost state after the hour for every device at once. Shards of
    disjoint devices, called in device order, give the rows and the stored state of
    :func:`diagnose_partition` over the whole hour."""

    def __init__(
        self,
        refrig_settings_or_home,
        partition_key: str,
        *,
        store: CauseStore | None = None,
        table: SignatureTable | None = None,
    ):
        """``store`` and ``table``: a :class:`CauseStore` of that data folder and the signature
        table, when the caller keeps them for many hours (a backfill run's); by default opened
        and loaded for this hour."""
        self.key = partition_key
        self.store = CauseStore.open(refrig_settings_or_home) if store is None else store
        self.table = load_signatures() if table is None else table
        self.baselines = self.store.baselines(partition_key, self.table)
        self.available = self._hour_requirements()
        self._before: pd.Series | None = None
        self._states: list[pd.DataFrame] = []
        # The compressor stop state of the hour before and each shard's after it.
        self._stops_before: pd.DataFrame | None = None
        self._stop_states: list[pd.DataFrame] = []
        # The registry's cohorts, read once for all shards (None: not read yet).
        self._cohorts: tuple[pd.Series | None] | None = None
        # The hour before's windows persistence tests look back at, read once for all shards.
        self._earlier: tuple[pd.DataFrame | None] | None = None

    def _hour_requirements(self) -> set[str]:
        """The required features the whole hour has (a shard lacking a sensor its neighbours
        have must not skip a signature the hour would not skip)."""
        from refrig_assets.incidents.causes_store import FEATURES

        path = self.store.store.path(FEATURES, self.key)
        if not path.exists():
            return set()
        file = pq.ParquetFile(path)
        names = set(file.schema_arrow.names)
        required = {f for sig in self.table for f in sig.requires}
        columns = [c for c in {*required, "duty_cycle", bl.DEFROST_MINUTES} if c in names]
        compared = [f for f in _wanted(self.table) if f in required]
        found: set[str] = set()
        # Batch by batch (a feature is available when any window has it): the hour is never
        # in memory at once, and the reading stops once every required feature is found.
        for batch in file.iter_batches(REQUIREMENT_BATCH_ROWS, columns=sorted(columns)):
            frame = batch.to_pandas()
            if bl.DEFROST_MINUTES in frame and len(frame):
                # The derived feature has a value in every window wherever defrost is measured.
                frame["hours_since_defrost"] = 0.0
            values = bl.usable_values(frame, compared, self.table.baseline["running_min_duty"])
            found |= available_requirements(frame, values, self.table)
            if found >= required:
                break
        return found

    def columns(self, names: list[str]) -> list[str]:
        """Of the hour's device_features columns ``names``, those a call reads
        (:func:`diagnosis_columns`): the shards need not read the others."""
        return diagnosis_columns(self.table, names)

    def __call__(self, features: pd.DataFrame) -> pd.DataFrame:
        """The diagnosis of one shard's windows (device_features rows)."""
        from refrig_assets.incidents.causes_store import derive_defrost, with_cohorts, with_stops

        frame = features
        if "cohort" not in frame:
            if self._cohorts is None:
                self._cohorts = (self.store.cohorts(),)
            frame = with_cohorts(frame, self._cohorts[0])
        if bl.DEFROST_MINUTES in frame and not frame.empty:
            if self._before is None:
                self._before = self.store.state_before(self.key, self.table)
            frame, state = derive_defrost(frame, self._before)
            self._states.append(state)
        if uses_stops(self.table) and stops.DUTY in frame and not frame.empty:
            if self._stops_before is None:
                self._stops_before = self.store.stops_before(self.key, self.table)
            frame, after = with_stops(frame, self._stops_before, self.table)
            self._stop_states.append(after)
        indexed = self.store.indexed(self.baselines)
        if self._earlier is None:
            self._earlier = (earlier_windows(self.store, self.key, self.table),)
        earlier = self._earlier[0]
        if earlier is not None:
            earlier = earlier[earlier["device_id"].isin(frame["device_id"].unique())]
        return diagnose(frame, self.baselines, self.table, self.available, indexed, earlier=earlier)

    def finish(self) -> None:
        """Store the defrost and stop states after the hour (nothing when no shard had
        windows)."""
        if self._states and self._before is not None:
            self.store.write_state(self.key, self._states, self._before)
        if self._stop_states and self._stops_before is not None:
            self.store.write_stops(self.key, self._stop_states, self._stops_before)
