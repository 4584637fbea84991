"""Evaluate every streaming rule on one batch of readings and carry the state forward.

A batch is merged with the buffered last minutes of its devices, sorted by device and time,
and each rule is evaluated on the new readings only. A firing opens an episode unless the same
rule fired on the device within ``episode_gap_minutes``; only episode openings become alerts.
Then moving averages, watermarks and the buffer move on. Everything is numpy over flat arrays:
no Python loop over devices or readings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from refrig_assets.streaming import rules as kinds
from refrig_assets.streaming.config import (
    NS_PER_MINUTE,
    RUNNING_STATE_KINDS,
    StreamingRule,
    StreamingSettings,
)
from refrig_assets.streaming.rules import UNKNOWN_STATE, Hits, Readings
from refrig_assets.streaming.state import NO_TIME, MovingAverage, StreamState

# How far the data moves on before a cohort's typical moving average is recomputed.
COHORT_REFRESH_NS = 15 * NS_PER_MINUTE
FIRING_COLUMNS = [
    "device_id",
    "rule",
    "kind",
    "sensor",
    "ts",
    "observed",
    "reference",
    "threshold",
    "span_minutes",
    "running",
]


class DeviceThresholds:
    """Per-device thresholds and cohorts from the device registry; contract defaults elsewhere.

    ``given``: the registry as its file gives it, defaults not filled in
    (``load_device_registry(path, fill_defaults=False)``), where ``registry`` has them filled
    (the materialised asset); None: ``registry`` itself tells (an empty value or a missing
    column is a threshold not given)."""

    def __init__(
        self,
        registry: pd.DataFrame | None,
        settings: StreamingSettings,
        given: pd.DataFrame | None = None,
    ):
        self.settings = settings
        self._registry = _by_device(registry)
        self._given = self._registry if given is None else _by_device(given)
        self._cache: tuple[int, dict[str, np.ndarray], np.ndarray, list[str]] | None = None
        self._unset: dict[str, np.ndarray] = {}

    def for_devices(self, devices: pd.Index) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
        """Threshold arrays by registry column, cohort code per device and cohort names."""
        if self._cache is not None and self._cache[0] == len(devices):
            return self._cache[1:]
        rows = self._registry.index.get_indexer(devices)
        found = rows >= 0
        values = {}
        for column, default in self.settings.threshold_defaults.items():
            out = np.full(len(devices), default, dtype=float)
            if column in self._registry.columns:
                given = self._registry[column].to_numpy(dtype=float, na_value=np.nan)[rows[found]]
                out[found] = np.where(np.isfinite(given), given, default)
            values[column] = out
            self._unset[column] = ~np.isfinite(_column(self._given, column, devices))
        cohort = np.full(len(devices), "unknown", dtype=object)
        if "cohort" in self._registry.columns:
            cohort[found] = self._registry["cohort"].to_numpy(dtype=object)[rows[found]]
        codes, names = pd.factorize(pd.Series(cohort).fillna("unknown"))
        self._cache = (len(devices), values, codes.astype(np.int64), list(names))
        return values, codes.astype(np.int64), list(names)

    def unset(self, column: str) -> np.ndarray:
        """Per device of the last :meth:`for_devices`: the registry gives no value of
        ``column`` (the device is not listed, or its row leaves the value empty)."""
        return self._unset[column]


def _by_device(frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = frame if frame is not None else pd.DataFrame(columns=["device_id"])
    return frame.drop_duplicates("device_id", keep="last").set_index("device_id")


def _column(frame: pd.DataFrame, column: str, devices: pd.Index) -> np.ndarray:
    """``column`` of ``frame`` per device (NaN: not listed, empty, or no such column)."""
    if column not in frame.columns:
        return np.full(len(devices), np.nan)
    return frame[column].reindex(devices).to_numpy(dtype=float, na_value=np.nan)


@dataclass
class BatchResult:
    """What one batch did: the episode-opening firings (one alert each) and counts."""

    firings: pd.DataFrame
    readings: int
    late: int
    duplicates: int
    devices: int
    firing_readings: dict[str, int]


class StreamingEngine:
    """Stateful evaluator: feed it batches of readings in arrival order."""

    def __init__(
        self, settings: StreamingSettings, state: StreamState, thresholds: DeviceThresholds
    ):
        self.settings = settings
        self.state = state
        self.thresholds = thresholds

    def process(
        self, device_id: np.ndarray, ts: np.ndarray, values: dict[str, np.ndarray]
    ) -> BatchResult:
        """Evaluate one batch: ``device_id`` (str), ``ts`` (int64 ns UTC), a float array per
        sensor in ``settings.sensors`` (NaN for missing values)."""
        s, state = self.settings, self.state
        device_id = np.asarray(device_id, dtype=object)
        ts = np.asarray(ts, dtype=np.int64)
        total = len(ts)
        values = {k: np.asarray(values[k], dtype=float) for k in s.sensors}
        usable = pd.notna(device_id) & (ts != NO_TIME)
        if not usable.all():
            device_id, ts = device_id[usable], ts[usable]
            values = {k: v[usable] for k, v in values.items()}
        code = state.codes_for(device_id)

        fresh = ts > np.maximum(state.watermark[code], self._held_until()[code])
        late = int((~fresh).sum()) + (total - len(ts))
        if not fresh.all():
            code, ts = code[fresh], ts[fresh]
            values = {k: v[fresh] for k, v in values.items()}
        code, ts, values = _sorted_unique(code, ts, values)
        duplicates = int(fresh.sum()) - len(ts)

        readings, held = self._merge_with_buffer(code, ts, values)
        thresholds, cohorts, _ = self.thresholds.for_devices(state.devices)
        firings, counts, samples = [], {}, {}
        never_ran = self._never_ran(readings, held)
        for rule in s.rules:
            hits = self._evaluate(rule, readings, thresholds, cohorts)
            if rule.kind in RUNNING_STATE_KINDS and never_ran.any():
                hits = replace(hits, fires=hits.fires & ~never_ran)
            counts[rule.name] = int(hits.fires.sum())
            opened = self._open_episodes(rule, readings, hits, thresholds[rule.threshold])
            if len(opened):
                firings.append(opened)
            if hits.sample is not None:
                samples[rule.name] = hits.sample
        last = _last_of_device(readings.code[readings.new])
        newest = np.full(len(state), NO_TIME)
        newest[readings.code[readings.new][last]] = readings.ts[readings.new][last]
        self._update_averages(readings, newest, samples, thresholds)
        self._advance(readings, newest)
        frame = (
            pd.concat(firings, ignore_index=True)
            if firings
            else pd.DataFrame(columns=FIRING_COLUMNS)
        )
        return BatchResult(frame, len(ts), late, duplicates, int(last.sum()), counts)

    # -- steps ------------------------------------------------------------------------------

    def _held_until(self) -> np.ndarray:
        """Per device, its newest buffered reading held back unevaluated (NO_TIME: none): a
        later file's readings of the device begin after it."""
        st = self.state
        out = np.full(len(st), NO_TIME)
        held = st.buffer_ts > st.watermark[st.buffer_code]
        if held.any():
            np.maximum.at(out, st.buffer_code[held], st.buffer_ts[held])
        return out

    def _merge_with_buffer(
        self, code: np.ndarray, ts: np.ndarray, values: dict[str, np.ndarray]
    ) -> tuple[Readings, np.ndarray]:
        """Buffered and new readings in one device-then-time order, and the mask of those held
        back unevaluated (:func:`_unsettled_starts`). New readings are later than every
        buffered reading of their device, so each goes right after its device's buffer. The
        readings to evaluate are the new ones and the buffered ones held back last time (later
        than their device's watermark), less those held back again."""
        st = self.state
        n = len(st.buffer_ts) + len(ts)
        new = np.searchsorted(st.buffer_code, code, side="right") + np.arange(len(ts))
        old = np.ones(n, dtype=bool)
        old[new] = False

        def merge(buffered: np.ndarray, fresh: np.ndarray, dtype) -> np.ndarray:
            out = np.empty(n, dtype=dtype)
            out[old] = buffered
            out[new] = fresh
            return out

        merged = {}
        for k, v in values.items():
            buffered = st.buffer_values.get(k)
            if buffered is None:  # a sensor a newly added rule reads
                buffered = np.full(len(st.buffer_ts), np.nan)
            merged[k] = merge(buffered, v, float)
        current = merged[self.settings.running_sensor]
        running = np.where(
            np.isnan(current), UNKNOWN_STATE, current > self.settings.running_above
        ).astype(np.int8)
        all_code = merge(st.buffer_code, code, np.int64)
        all_ts = merge(st.buffer_ts, ts, np.int64)
        _blips_as_idle(all_code, all_ts, running, self.settings.least_run_ns)
        was_held = st.buffer_ts > st.watermark[st.buffer_code]
        if was_held.any():
            new = np.union1d(new, np.flatnonzero(old)[was_held])
        held = _unsettled_starts(all_code, all_ts, running, self.settings.least_run_ns)
        if held.any():
            new = new[~held[new]]
        return Readings(all_code, all_ts, merged, new, running), held

    def _evaluate(
        self,
        rule: StreamingRule,
        r: Readings,
        thresholds: dict[str, np.ndarray],
        cohorts: np.ndarray,
    ) -> Hits:
        limit = thresholds[rule.threshold]
        gap = self.settings.max_gap_ns
        if rule.kind == "above":
            if not rule.judges_own_draw:
                return kinds.above(r, rule, limit)
            running_average = self._baseline(rule, cohorts, r.code[r.new])[:, 1]
            unset = self.thresholds.unset(rule.threshold)
            shown = self._running_draw_shown(rule, r)
            return kinds.above(r, rule, limit, running_average, unset, gap, shown)
        if rule.kind == "drop_within":
            return kinds.drop_within(
                r,
                rule,
                limit,
                gap,
                self._running_level(rule, cohorts, r.code[r.new]),
                self.state.streaks[rule.name],
            )
        if rule.kind == "state_held":
            return kinds.state_held(r, rule, limit, gap, self.state.streaks[rule.name])
        if rule.kind == "sustained_rise":
            own_rise = self._defrost_warm_up(rule, cohorts)
            return kinds.sustained_rise(
                r,
                rule,
                limit,
                gap,
                self.state.streaks[rule.name],
                own_rise,
                self._cycled(r),
                self.state.defrost_stays.get(rule.name),
                self.state.off_cycles.get(rule.name),
                self._cohort_off_cycle(rule, cohorts),
                self._cohort_fast_defrosts(rule, cohorts),
            )
        baseline = self._baseline(rule, cohorts, r.code[r.new])
        if rule.kind == "below_moving_average_held":
            hits = kinds.below_moving_average_held(
                r, rule, limit, baseline, gap, self.state.streaks[rule.name]
            )
        else:
            hits = kinds.above_moving_average(r, rule, limit, baseline)
        return hits

    def _never_ran(self, r: Readings, held: np.ndarray) -> np.ndarray:
        """Per new reading: its device has not shown the running state, neither in the history
        the moving-average rules keep nor among the readings at hand. Such a device (a motor
        smaller than the contract's ``running_above``) has no visible starts, runs or idle
        level: every reading counts as idle, runs and stops alike. The rules that read them
        (RUNNING_STATE_KINDS) stay silent for it until it first runs. False for every device
        without a moving-average rule (no history to tell). Readings ``held`` back unevaluated
        (a start that may yet prove a blip) show nothing."""
        code = r.code[r.new]
        n = len(self.state)
        ran = self._seen_in_history(1)
        if ran is None:
            return np.zeros(len(code), dtype=bool)
        ran |= np.bincount(r.code[(r.running == 1) & ~held], minlength=n)[:n] > 0
        return ~ran[code]

    def _seen_in_history(self, state: int) -> np.ndarray | None:
        """Per device: the history the moving-average rules keep holds minutes in this running
        state (0 idle, 1 running). None: no moving-average rule keeps one."""
        n = len(self.state)
        seen = np.zeros(n, dtype=bool)
        kept = False
        for rule in self.settings.rules:
            if rule.keeps_average and rule.kind != "sustained_rise":
                seen |= self.state.averages[rule.name].minutes[:n, state] > 0
                kept = True
        return seen if kept else None

    def _cycled(self, r: Readings) -> np.ndarray:
        """Per reading of ``r``: its device has been seen idle by then, in the history the
        moving-average rules keep or among the readings at hand up to this one. A compressor
        that stops can stop and restart between two readings; one never seen stopping gives
        no reason to think so. False for every device without a moving-average rule."""
        idle = self._seen_in_history(0)
        if idle is None:
            return np.zeros(len(r), dtype=bool)
        at = np.arange(len(r))
        device_first = np.maximum.accumulate(np.where(r.same_device_as_previous(), 0, at))
        last_idle = np.maximum.accumulate(np.where(r.running == 0, at, -1))
        return idle[r.code] | (last_idle >= device_first)

    def _baseline(self, rule: StreamingRule, cohorts: np.ndarray, needed: np.ndarray) -> np.ndarray:
        """(devices, 2) moving average per running state: the device's own once it has
        ``min_history_minutes`` in that state (sustained_rise: ``min_defrosts`` defrosts), else
        its cohort's median over devices that have
        (when at least ``cohort_min_devices`` do), else NaN. ``needed``: devices to evaluate."""
        avg = self.state.averages[rule.name]
        trusted = avg.minutes >= rule.history_needed
        own = np.where(trusted, avg.mean(), np.nan)
        if trusted[needed].all():
            return own
        typical = self._cohort_typical(rule, cohorts, trusted, own)
        fill = np.flatnonzero(~trusted.all(axis=1))
        own[fill] = np.where(trusted[fill], own[fill], typical[cohorts[fill]])
        return own

    def _running_draw_shown(self, rule: StreamingRule, r: Readings) -> np.ndarray:
        """Per new reading, the mean of the rule's sensor over the device's running readings
        before it: those already folded into its moving average (however few) and the earlier
        new ones of this batch. NaN: the device has not yet been seen running."""
        avg = self.state.averages[rule.name]
        code = r.code[r.new]
        x = r.values[rule.sensor][r.new]
        use = (r.running[r.new] == 1) & np.isfinite(x)
        value = np.where(use, x, 0.0)
        count = use.astype(float)
        # Sums over the earlier new readings of the same device (new is sorted by device).
        before_sum = np.cumsum(value) - value
        before_count = np.cumsum(count) - count
        first = np.ones(len(code), dtype=bool)
        first[1:] = code[1:] != code[:-1]
        group = np.cumsum(first) - 1
        before_sum -= before_sum[first][group]
        before_count -= before_count[first][group]
        total = avg.total[code, 1] + before_sum
        weight = avg.weight[code, 1] + before_count
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 0, total / weight, np.nan)

    def _running_level(
        self, rule: StreamingRule, cohorts: np.ndarray, needed: np.ndarray
    ) -> np.ndarray:
        """Per device, the level a running stretch after a start pulls the sensor down to
        (drop_within): the running-state moving average as :meth:`_baseline` gives it, else the
        device's own over whatever running minutes it has shown. Pull-downs lie above the
        running level, so an average of few minutes, which holds some of them, is if anything
        higher than the level it stands for. NaN: the device has not yet been seen running."""
        level = self._baseline(rule, cohorts, needed)[:, 1]
        return np.where(np.isnan(level), self.state.averages[rule.name].mean()[:, 1], level)

    def _defrost_warm_up(self, rule: StreamingRule, cohorts: np.ndarray) -> np.ndarray:
        """Per device, the warm-up an idle rise must outpace (sustained_rise): the faster of
        its own (the fastest of its defrosts' warm-ups, :meth:`_learn_warm_ups`, 0 where it
        has seen ``min_defrosts`` defrosts but none faster than the limit) and its cohort's
        median of those (from ``cohort_min_devices`` devices that have). How fast a heater
        warms the coil depends on how cold the coil was when it started (right after the
        compressor stopped, or late in an off-cycle), so a device's first few defrosts need
        not show its fastest; its cohort's do. NaN: nothing known, the limit alone."""
        avg = self.state.averages[rule.name]
        seen = avg.minutes[:, 1] >= rule.history_needed
        fast = np.where(avg.minutes[:, 0] > 0, avg.mean()[:, 0], 0.0)
        own = np.where(seen, fast, np.nan)
        trusted = np.stack([seen, np.zeros(len(seen), dtype=bool)], axis=1)
        typical = self._cohort_typical(rule, cohorts, trusted, np.stack([own, own], axis=1))
        return np.fmax(own, typical[cohorts, 0]) if len(typical) else own

    def _cohort_fast_defrosts(self, rule: StreamingRule, cohorts: np.ndarray) -> np.ndarray:
        """Per device that has not yet seen ``min_defrosts`` defrosts of its own: a device of its
        cohort has shown a defrost that warmed the coil faster than the limit, and the rule has
        never paged that device. Its cohort's defrosts can then outpace the limit even where
        the typical device's have not (:meth:`_defrost_warm_up` is 0). A device the rule has
        paged is no witness: a lost compressor's coil also stays in the defrost state, so its
        rise is learnt as a defrost's warm-up."""
        n = len(self.state)
        avg = self.state.averages[rule.name]
        witness = (avg.minutes[:n, 0] > 0) & (self.state.last_fired[rule.name][:n] == NO_TIME)
        if not witness.any() or not len(cohorts):
            return np.zeros(n, dtype=bool)
        shown = np.bincount(cohorts[witness], minlength=int(cohorts.max()) + 1) > 0
        return (avg.minutes[:n, 1] < rule.history_needed) & shown[cohorts]

    def _cohort_off_cycle(self, rule: StreamingRule, cohorts: np.ndarray) -> np.ndarray | None:
        """Per device, its cohort's median of the longest ordinary off-cycle each device has
        shown (ns; 0 with fewer than ``cohort_min_devices`` that have shown one): what a device
        that has shown none yet must outlast before an idle rise unlike a defrost pages. None:
        the rule keeps no off-cycles."""
        cycles = self.state.off_cycles.get(rule.name)
        if cycles is None or not len(cohorts):
            return None
        seen = cycles.longest > 0
        longest = cycles.longest.astype(float)
        typical = self._cohort_typical(
            rule,
            cohorts,
            np.stack([seen, np.zeros(len(seen), dtype=bool)], axis=1),
            np.stack([longest, longest], axis=1),
            key=f"{rule.name}/off_cycle",
        )[cohorts, 0]
        return np.where(np.isnan(typical), 0, typical).astype(np.int64)

    def _cohort_typical(
        self,
        rule: StreamingRule,
        cohorts: np.ndarray,
        trusted: np.ndarray,
        own: np.ndarray,
        key: str | None = None,
    ) -> np.ndarray:
        """(cohorts, 2) median of the trusted device averages per cohort and running state (NaN
        with fewer than ``cohort_min_devices``). A fleet's typical value moves slowly: it is kept
        in memory (under ``key``, the rule's name by default) and recomputed once the data has
        moved on by COHORT_REFRESH_NS."""
        key = key or rule.name
        now = int(self.state.watermark.max()) if len(self.state) else 0
        cached = self.state.cohort_cache.get(key)
        if cached is not None:
            at, devices, typical = cached
            if devices == len(self.state) and now - at < COHORT_REFRESH_NS:
                return typical
        need = int(rule.params["cohort_min_devices"])
        typical = np.full((int(cohorts.max()) + 1 if len(cohorts) else 0, 2), np.nan)
        for state_col in (0, 1):
            have = trusted[:, state_col]
            frame = pd.DataFrame({"cohort": cohorts[have], "mean": own[have, state_col]})
            stats = frame.groupby("cohort")["mean"].agg(["median", "count"])
            stats = stats[stats["count"] >= need]
            typical[stats.index.to_numpy(dtype=np.int64), state_col] = stats["median"].to_numpy()
        self.state.cohort_cache[key] = (now, len(self.state), typical)
        return typical

    def _open_episodes(
        self, rule: StreamingRule, r: Readings, hits: Hits, limit: np.ndarray
    ) -> pd.DataFrame:
        """Firings that start a new episode; the rule's episode state moves to the last one."""
        pos = np.flatnonzero(hits.fires)
        if not len(pos):
            return pd.DataFrame(columns=FIRING_COLUMNS)
        idx = r.new[pos]
        last_fired = self.state.last_fired[rule.name]
        code, ts = r.code[idx], r.ts[idx]
        previous = last_fired[code].copy()
        same = np.zeros(len(idx), dtype=bool)
        same[1:] = code[1:] == code[:-1]
        previous[1:][same[1:]] = ts[:-1][same[1:]]
        opens = (previous == NO_TIME) | (ts - previous > self.settings.episode_gap_ns)
        last = _last_of_device(code)
        last_fired[code[last]] = ts[last]
        chosen, hit = idx[opens], pos[opens]
        return pd.DataFrame(
            {
                "device_id": self.state.devices.to_numpy()[r.code[chosen]],
                "rule": rule.name,
                "kind": rule.kind,
                "sensor": rule.sensor,
                "ts": pd.to_datetime(r.ts[chosen], utc=True),
                "observed": hits.observed[hit],
                "reference": hits.reference[hit],
                "threshold": limit[r.code[chosen]],
                "span_minutes": hits.span_ns[hit] / NS_PER_MINUTE,
                "running": r.running[chosen] if hits.state is None else hits.state[hit],
            },
            columns=FIRING_COLUMNS,
        )

    def _update_averages(
        self,
        r: Readings,
        newest: np.ndarray,
        samples: dict[str, np.ndarray],
        limits: dict[str, np.ndarray],
    ) -> None:
        """Fold the new readings into each moving average (exponential weights with the mean age
        of a plain ``average_hours`` window: time constant half of it). A sustained_rise rule
        learns its devices' defrost warm-ups instead (:meth:`_learn_warm_ups`)."""
        n = len(self.state)
        if not len(r.new):
            return
        touched = newest != NO_TIME
        new = r.new
        previous = np.maximum(new - 1, 0)
        continues = (new > 0) & (r.code[previous] == r.code[new])
        gap = np.where(continues, r.ts[new] - r.ts[previous], 0)
        step_minutes = np.minimum(gap, self.settings.max_gap_ns) / NS_PER_MINUTE
        code, ts, state_col = r.code[new], r.ts[new], r.running[new].astype(np.int64)
        for rule in self.settings.rules:
            if rule.kind == "sustained_rise":
                if rule.name in samples:
                    limit = limits[rule.threshold][code]
                    self._learn_warm_ups(
                        self.state.averages[rule.name], code, samples[rule.name], limit
                    )
                continue
            if not rule.keeps_average:
                continue
            avg: MovingAverage = self.state.averages[rule.name]
            tau_ns = rule.minutes("average_hours") * 60 * NS_PER_MINUTE / 2.0
            t_new = newest[touched]
            since = np.where(avg.updated[touched] == NO_TIME, t_new, avg.updated[touched])
            decay = np.exp(-np.maximum(t_new - since, 0) / tau_ns)
            avg.total[touched] *= decay[:, None]
            avg.weight[touched] *= decay[:, None]
            x = r.values[rule.sensor][new]
            use = np.isfinite(x) & (state_col >= 0)
            slot = code[use] * 2 + state_col[use]
            w = np.exp(-(newest[code[use]] - ts[use]) / tau_ns)
            for part, weights in (
                (avg.total, x[use] * w),
                (avg.weight, w),
                (avg.minutes, step_minutes[use]),
            ):
                part += np.bincount(slot, weights=weights, minlength=2 * n).reshape(n, 2)
            avg.updated[touched] = t_new

    @staticmethod
    def _learn_warm_ups(
        avg: MovingAverage, code: np.ndarray, sample: np.ndarray, limit: np.ndarray
    ) -> None:
        """Per device, the fastest defrost warm-up seen (column 0: ``total`` / ``weight``, the
        count of those faster than the limit in ``minutes``) and the count of defrosts seen
        (column 1's ``minutes``). Every defrost counts, whether or not the rule fired on it: a
        rise that carried the idle coil into the defrost state is a defrost by the contract.
        A warm-up no faster than the limit adds nothing to the fastest (an idle coil that
        settles at about defrost_above crosses it slowly, back and forth)."""
        n = len(avg.updated)
        seen = np.isfinite(sample)
        avg.minutes[:, 1] += np.bincount(code[seen], minlength=n)
        faster = seen & (sample > limit)
        if not faster.any():
            return
        fastest = np.full(n, -np.inf)
        np.maximum.at(fastest, code[faster], sample[faster])
        hit = np.isfinite(fastest)
        known = avg.weight[hit, 0] > 0
        before = np.where(
            known, avg.total[hit, 0] / np.where(known, avg.weight[hit, 0], 1.0), -np.inf
        )
        avg.total[hit, 0] = np.maximum(before, fastest[hit])
        avg.weight[hit, 0] = 1.0
        avg.minutes[:, 0] += np.bincount(code[faster], minlength=n)

    def _advance(self, r: Readings, newest: np.ndarray) -> None:
        """Move watermarks to the newest readings evaluated and keep only what later windows
        need: the readings within the longest rule span of the watermark, plus the one just
        before, and those held back unevaluated (later than the watermark)."""
        st = self.state
        touched = newest != NO_TIME
        st.watermark[touched] = newest[touched]
        keep = r.ts > st.watermark[r.code] - self.settings.buffer_ns
        before = np.zeros(len(r), dtype=bool)
        before[:-1] = keep[1:] & ~keep[:-1] & (r.code[1:] == r.code[:-1])
        keep |= before
        st.buffer_code = r.code[keep]
        st.buffer_ts = r.ts[keep]
        st.buffer_values = {k: v[keep] for k, v in r.values.items()}


def _blips_as_idle(code: np.ndarray, ts: np.ndarray, running: np.ndarray, least_ns: int) -> None:
    """Read as idle, in place, each running stretch that lies between idle readings of its
    device and lasts less than ``least_ns`` from its first reading to the idle reading after
    it: a noisy idle current crossing running_above for a reading or two, no start (as the
    start count of the features). A stretch next to a reading of unknown state stays running;
    one still running at the device's last reading is told later (:func:`_unsettled_starts`).
    ``code``/``ts``: device-then-time order."""
    n = len(running)
    if least_ns <= 0 or n < 3:
        return
    first = np.flatnonzero(np.r_[True, (running[1:] != running[:-1]) | (code[1:] != code[:-1])])
    after = np.r_[first[1:], n]  # the reading after each stretch
    inner = (first > 0) & (after < n)
    first, after = first[inner], after[inner]
    blip = (
        (running[first] == 1)
        & (code[first - 1] == code[first])
        & (running[first - 1] == 0)
        & (code[after] == code[first])
        & (running[after] == 0)
        & (ts[after] - ts[first] < least_ns)
    )
    if blip.any():
        running[_spans(n, first[blip], after[blip])] = 0


def _unsettled_starts(
    code: np.ndarray, ts: np.ndarray, running: np.ndarray, least_ns: int
) -> np.ndarray:
    """Mask of the readings of each device's last stretch where it may yet prove a blip
    (:func:`_blips_as_idle`): running, right after an idle reading, and shorter than
    ``least_ns`` so far. Whether it was a start or a noisy idle current crossing
    running_above is told by the readings after it, in a later file; until then they are
    held back unevaluated. ``code``/``ts``: device-then-time order."""
    n = len(running)
    out = np.zeros(n, dtype=bool)
    if least_ns <= 0 or n < 2:
        return out
    first = np.flatnonzero(np.r_[True, (running[1:] != running[:-1]) | (code[1:] != code[:-1])])
    ends = np.flatnonzero(_last_of_device(code))
    begins = first[np.searchsorted(first, ends, side="right") - 1]
    before = np.maximum(begins - 1, 0)
    open_start = (
        (running[ends] == 1)
        & (begins > 0)
        & (code[before] == code[ends])
        & (running[before] == 0)
        & (ts[ends] - ts[begins] < least_ns)
    )
    return _spans(n, begins[open_start], ends[open_start] + 1) if open_start.any() else out


def _spans(n: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Mask of ``n`` positions: each ``starts[i]`` up to, not including, ``stops[i]``."""
    mark = np.zeros(n + 1, dtype=np.int64)
    np.add.at(mark, starts, 1)
    np.add.at(mark, stops, -1)
    return np.cumsum(mark[:n]) > 0


def _last_of_device(code: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal codes."""
    last = np.ones(len(code), dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    return last


def _sorted_unique(
    code: np.ndarray, ts: np.ndarray, values: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Sorted by device then time; of repeated (device, ts) the last row wins."""
    ordered = len(code) < 2 or bool(
        np.all((code[1:] > code[:-1]) | ((code[1:] == code[:-1]) & (ts[1:] > ts[:-1])))
    )
    if not ordered:
        order = np.lexsort((np.arange(len(ts)), ts, code))
        code, ts = code[order], ts[order]
        values = {k: v[order] for k, v in values.items()}
        unique = np.ones(len(ts), dtype=bool)
        unique[:-1] = (code[1:] != code[:-1]) | (ts[1:] != ts[:-1])
        if not unique.all():
            code, ts = code[unique], ts[unique]
            values = {k: v[unique] for k, v in values.items()}
    return code, ts, values
