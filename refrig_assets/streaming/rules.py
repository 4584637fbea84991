"""The four rule kinds, vectorised over readings of many devices sorted by device, then time.

Older readings (from the state's buffer) are context only: each function evaluates the new
readings (``Readings.new``) and returns, for each of them, whether the rule fires and the
numbers an operator needs to read the firing (:class:`Hits`): the value, what it was compared
with and the time it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from refrig_assets.streaming.config import (
    DEFROST_ABOVE,
    HELD_FLOOR,
    NO_TIME,
    NS_PER_MINUTE,
    StreamingRule,
)
from refrig_assets.streaming.off_cycles import OffCycles, outlasting

UNKNOWN_STATE = -1
NS_PER_MS = 10**6
# Look-backs spanning at most this many readings use a loop over lags; longer ones (fleets that
# report every few seconds) a sparse table.
MAX_LAG_LOOP = 16


@dataclass
class Readings:
    """Readings sorted by ``code`` (device index) then ``ts`` (int64 ns UTC); ``new`` holds the
    positions of the readings to evaluate, in order."""

    code: np.ndarray
    ts: np.ndarray
    values: dict[str, np.ndarray]
    new: np.ndarray
    running: np.ndarray  # int8: 1 running, 0 idle, UNKNOWN_STATE without a current reading
    _key: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.code)

    def same_device_as_previous(self) -> np.ndarray:
        same = np.zeros(len(self), dtype=bool)
        same[1:] = self.code[1:] == self.code[:-1]
        return same

    def search_key(self) -> np.ndarray:
        """One sortable int64 per reading (device, then ms) for look-ups back in time; the
        stride leaves room to search back without reaching the previous device."""
        if self._key is None:
            if not len(self):
                self._key = np.zeros(0, dtype=np.int64)
            else:
                ms = (self.ts - self.ts.min()) // NS_PER_MS
                stride = int(ms.max()) + 1 + 10**9
                self._key = self.code.astype(np.int64) * stride + ms
        return self._key

    def last_at_or_before(self, rows: np.ndarray, back_ns: int) -> np.ndarray:
        """For each row, the last reading of its device at least ``back_ns`` earlier (-1: none).

        Walks back a few readings (regular cadences resolve in one or two steps) and binary
        searches only what is left."""
        out = np.full(len(rows), -1, dtype=np.int64)
        todo = np.arange(len(rows))
        for lag in range(1, MAX_LAG_LOOP + 1):
            i = rows[todo]
            j = i - lag
            gone = (j < 0) | (self.code[np.maximum(j, 0)] != self.code[i])
            found = ~gone & (self.ts[np.maximum(j, 0)] <= self.ts[i] - back_ns)
            out[todo[found]] = j[found]
            todo = todo[~(gone | found)]
            if not len(todo):
                return out
        key, i = self.search_key(), rows[todo]
        j = np.searchsorted(key, key[i] - back_ns // NS_PER_MS, side="right") - 1
        ok = (j >= 0) & (self.code[np.maximum(j, 0)] == self.code[i])
        out[todo] = np.where(ok, j, -1)
        return out

    def first_within(self, rows: np.ndarray, back_ns: int) -> np.ndarray:
        """For each row, the first reading of its device at most ``back_ns`` earlier (the row
        itself when there is none)."""
        out = rows.copy()
        todo = np.arange(len(rows))
        for lag in range(1, MAX_LAG_LOOP + 1):
            i = rows[todo]
            j = i - lag
            inside = (j >= 0) & (self.code[np.maximum(j, 0)] == self.code[i])
            inside &= self.ts[np.maximum(j, 0)] >= self.ts[i] - back_ns
            out[todo[inside]] = j[inside]
            todo = todo[inside]
            if not len(todo):
                return out
        key, i = self.search_key(), rows[todo]
        out[todo] = np.searchsorted(key, key[i] - back_ns // NS_PER_MS, side="left")
        return out


@dataclass
class Hits:
    """Per new reading: fires, observed value, what it was compared with, covered span (ns)
    and, where it differs from the reading's, the running state of the reference."""

    fires: np.ndarray
    observed: np.ndarray
    reference: np.ndarray
    span_ns: np.ndarray
    # The running state the reference belongs to, where not the reading's own (int8 like
    # Readings.running); None: the reading's state.
    state: np.ndarray | None = None
    # Per new reading, what to fold into the rule's moving average (NaN: nothing), where the
    # average is not of the sensor's values (sustained_rise: defrost warm-up rates).
    sample: np.ndarray | None = None


def above(
    r: Readings,
    rule: StreamingRule,
    threshold: np.ndarray,
    running_average: np.ndarray | None = None,
    unset: np.ndarray | None = None,
    max_gap_ns: int = 0,
    shown: np.ndarray | None = None,
) -> Hits:
    """Value above the device's threshold.

    A device whose registry leaves the threshold empty (``unset``, per device) is judged
    against its own draw where that is known: above ``running_multiplier`` ×
    ``running_average`` (per device, the moving average of the sensor while running, its
    cohort's typical before it has one). A large compressor's healthy draw can be above any one
    fleet-wide default. Before either is known (a fleet's first hour) the contract's default
    applies, raised to ``running_multiplier`` × ``shown`` (per new reading, the mean of the
    device's running readings before it; NaN: none yet) where that is higher: a first run
    climbing to its own level above the default is no overload, while a draw well above what
    the device has shown still is. Its first reading after an idle one is not judged: a start
    can be read during the motor's locked-rotor inrush (several times its running draw for
    under a second)."""
    new = r.new
    x = r.values[rule.sensor][new]
    code = r.code[new]
    limit = threshold[code]
    starting = np.zeros(len(new), dtype=bool)
    if running_average is not None and unset is not None:
        multiplier = rule.params["running_multiplier"]
        own = multiplier * running_average[code]
        own_draw = unset[code]
        judged = own_draw & np.isfinite(own)
        limit = np.where(judged, own, limit)
        if shown is not None:
            early = own_draw & ~judged & np.isfinite(shown)
            limit = np.where(early, np.fmax(limit, multiplier * shown), limit)
        before = np.maximum(new - 1, 0)
        linked = (new > 0) & (r.code[before] == code) & (r.ts[new] - r.ts[before] <= max_gap_ns)
        starting = own_draw & linked & (r.running[before] == 0)
    with np.errstate(invalid="ignore"):
        fires = (x > limit) & ~starting
    return Hits(fires, x, limit, np.zeros(len(x), dtype=np.int64))


def above_moving_average(
    r: Readings, rule: StreamingRule, multiplier: np.ndarray, baseline: np.ndarray
) -> Hits:
    """Value above multiplier × the device's moving average for its running state, and above
    multiplier × the other state's average too where that one is higher.

    ``baseline`` is (devices, 2): the average while idle (column 0) and while running (1); NaN
    where there is no trustworthy history. Without the average of the reading's own state the
    rule stays silent. The running state comes from another sensor (the compressor current),
    which can freeze, lag a start or stop, or drop out: a normal running value read in the idle
    state would be several times the idle average without anything being wrong, so a reading
    must also exceed what the device does in the other state. ``Hits.state`` names the state
    whose average was the reference.
    """
    x = r.values[rule.sensor][r.new]
    code, state = r.code[r.new], r.running[r.new]
    known = state != UNKNOWN_STATE
    own = np.full(len(x), np.nan)
    other = np.full(len(x), np.nan)
    own[known] = baseline[code[known], state[known]]
    other[known] = baseline[code[known], 1 - state[known]]
    higher = other > own  # False where either is NaN
    base = np.where(higher, other, own)
    ref_state = np.where(higher, 1 - state, state).astype(np.int8)
    with np.errstate(invalid="ignore"):
        fires = known & (base > 0) & (x > multiplier[code] * base)
    return Hits(fires, x, base, np.zeros(len(x), dtype=np.int64), ref_state)


def drop_within(
    r: Readings,
    rule: StreamingRule,
    fraction: np.ndarray,
    max_gap_ns: int,
    running_average: np.ndarray,
    restarted_at: np.ndarray,
) -> Hits:
    """Fall by more than ``fraction`` from an earlier reading within the window, comparing only
    readings of one unbroken stretch of the same running state (no gap above ``max_gap_ns``),
    taken at least ``settle_minutes`` after the state changed.

    A running stretch that began with a start seen in the readings pulls the suction down
    from the idle (equalised) pressure to the device's running level, for minutes on a large
    plant (a 10 s R717 fleet: 5 minutes, by more than the fraction) and from a warm coil's
    pressure after a defrost: there a reference counts no higher than ``running_average``
    (per device, the moving average of the sensor while running, the cohort's before it has
    one, else its own over the running minutes it has shown), so only a fall below the usual
    running level is a loss. Where none is known (NaN: a device not yet seen running, in a
    cohort too small to lend a level) such a stretch is not judged: its pull-down cannot be
    told from a loss. ``restarted_at`` (per device) carries, across batches, when the running
    stretch of the device's last evaluated reading began with a seen start (NO_TIME: it did
    not); it is updated in place."""
    n, new = len(r), r.new
    x = r.values[rule.sensor]
    window_ns = int(rule.minutes("window_minutes") * NS_PER_MINUTE)
    continues = r.same_device_as_previous()
    continues[1:] &= (r.running[1:] == r.running[:-1]) & (r.ts[1:] - r.ts[:-1] <= max_gap_ns)
    continues &= r.running != UNKNOWN_STATE
    stretch_start = np.maximum.accumulate(np.where(continues, 0, np.arange(n)))
    lo = np.maximum(r.first_within(new, window_ns), stretch_start[new])
    # Where the stretch began after a change of running state seen in the readings (not after a
    # gap or at the buffer's start): the reading just before it.
    s0 = stretch_start[new]
    before = np.maximum(s0 - 1, 0)
    changed = (s0 > 0) & (r.code[before] == r.code[s0])
    changed &= (r.ts[s0] - r.ts[before] <= max_gap_ns) & (r.running[before] != UNKNOWN_STATE)
    settle_ns = int(rule.params.get("settle_minutes", 0.0) * NS_PER_MINUTE)
    if settle_ns and len(new):
        # Readings within settle_minutes of a change of running state are no reference: the
        # suction pull-down right after a start, which a 1 Hz fleet samples and a minute-level
        # one does not. Where the stretch began unseen (a gap, the buffer's start), nothing is
        # left out.
        key = r.search_key()
        ahead_ms = -((r.ts[s0] - r.ts[before] - settle_ns) // NS_PER_MS)  # ceil, in ms
        settled = np.searchsorted(key, key[s0] + ahead_ms, side="left")
        lo = np.where(changed, np.maximum(lo, settled), lo)
    earlier = range_max(np.where(np.isfinite(x), x, -np.inf), lo, new)
    if len(new):
        after_start = _after_start(r, stretch_start, before, changed, restarted_at)
        cap = running_average[r.code[new]]
        # No running level known (a device's first run, in a cohort too small to lend one):
        # a pull-down cannot be told from a loss, so the stretch has no reference.
        capped = np.where(np.isnan(cap), np.nan, np.minimum(cap, earlier))
        earlier = np.where(after_start, capped, earlier)
    now = x[new]
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = (earlier - now) / earlier
        fires = (r.running[new] != UNKNOWN_STATE) & (earlier > 0) & (drop > fraction[r.code[new]])
    return Hits(fires, now, earlier, np.full(len(new), window_ns, dtype=np.int64))


def _after_start(
    r: Readings,
    stretch_start: np.ndarray,
    before: np.ndarray,
    changed: np.ndarray,
    restarted_at: np.ndarray,
) -> np.ndarray:
    """Per new reading: it is running, in a stretch that began when the compressor started
    after an idle stretch seen in the readings. A stretch that began before the readings at
    hand and goes on from the device's last evaluated reading takes that reading's flag from
    ``restarted_at``, which then moves to each device's last new reading."""
    new = r.new
    code = r.code[new]
    running = r.running[new] == 1
    restarted = changed & running & (r.running[before] == 0)
    out = restarted.copy()
    # The device's last evaluated reading: the one before its first new reading of the batch.
    first_new = np.ones(len(new), dtype=bool)
    first_new[1:] = code[1:] != code[:-1]
    last_old = new[np.maximum.accumulate(np.where(first_new, np.arange(len(new)), 0))] - 1
    goes_on = ~changed & running & (last_old >= 0)
    goes_on &= r.code[np.maximum(last_old, 0)] == code
    goes_on &= stretch_start[new] <= last_old
    out |= goes_on & (restarted_at[code] != NO_TIME)
    since = np.where(restarted, r.ts[stretch_start[new]], restarted_at[code])
    last = np.ones(len(new), dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    restarted_at[code[last]] = np.where(out[last], since[last], NO_TIME)
    return out


def sustained_rise(
    r: Readings,
    rule: StreamingRule,
    rate_limit: np.ndarray,
    max_gap_ns: int,
    streak_from: np.ndarray,
    own_rise: np.ndarray,
    cycled: np.ndarray,
    stays: DefrostStays | None = None,
    cycles: OffCycles | None = None,
    cohort_off_cycle: np.ndarray | None = None,
    cohort_fast: np.ndarray | None = None,
) -> Hits:
    """Rate of rise above the limit per minute at every reading for ``sustain_minutes``.

    The rate at a reading is measured against the last reading at least ``rate_window_minutes``
    earlier (and at most ``max_gap_ns`` earlier). The streak of consecutive readings whose rate
    exceeds the limit must cover the sustain time, counted from the first rate's reference.
    ``streak_from`` (per device) carries the streak of the device's last evaluated reading
    across batches (NO_TIME: that reading was not rising); it is updated in place.

    The limit is ``rate_limit`` with the compressor running (a running compressor over a warming
    coil is no cooling) or its state unknown. With it idle, the coil also warms when the device
    defrosts, as fast as its heater or hot gas drives it; so an idle reading must also outpace
    ``own_rise`` (per device, NaN: unknown), the fastest defrost warm-up of the device and its
    cohort: a rise as fast as the device's defrosts is no lost compressor. A reading of unknown
    state (no current: a device without a current sensor) may be such a defrost too: where
    ``own_rise`` is known, its rise fires at the sustain time only at a reading that outpaces
    it, and is otherwise judged by its shape as below (where none is known, the limit alone).

    A running rise that rests on one reading interval covering the sustain time, on a device
    seen idle by then (``cycled``, per reading of ``r``), may be an off-cycle hidden between
    two readings: it fires at the next reading if that one confirms it
    (:func:`_confirmed_running_rise`).

    ``Hits.sample`` holds the warm-up of each defrost (:func:`_defrost_warm_ups`), which the
    engine folds into ``own_rise``, at the reading that shows the coil has stayed in the
    defrost state (idle, above the rule's ``defrost_above``) for the sustain time; ``stays``
    carries each device's stay across batches. At a slow cadence, a rise resting on its own
    reading interval into the defrost state of a device whose defrosts are known to outpace
    the limit is that defrost (:func:`_enters`), and so is one of a device that has seen no
    defrost of its own where ``cohort_fast`` (per device; None: never) says a device of its
    cohort has shown such a defrost without the rule paging it.
    """
    new = r.new
    x = r.values[rule.sensor]
    window_ns = int(rule.minutes("rate_window_minutes") * NS_PER_MINUTE)
    sustain_ns = int(rule.minutes("sustain_minutes") * NS_PER_MINUTE)
    learns = DEFROST_ABOVE in rule.params
    rows = np.arange(len(r)) if learns else new
    rate_at, ref_at = _rates(r, x, rows, window_ns, max_gap_ns)
    rate = rate_at[new] if learns else rate_at
    ref = ref_at[new] if learns else ref_at
    ts, code = r.ts[new], r.code[new]
    idle = r.running[new] == 0
    limit = np.where(idle, np.fmax(rate_limit[code], own_rise[code]), rate_limit[code])
    with np.errstate(invalid="ignore"):
        rising = rate > limit
    # Nothing learnt yet (a fleet's first hours): an idle rise may be a defrost as well as a
    # lost compressor, so it is held and judged when it ends (:func:`_unlike_a_defrost`), and
    # pages once the stop has outlasted the device's ordinary off-cycles (``cycles``,
    # :func:`off_cycles.outlasting`; None: at once).
    # A reading of unknown state (no current reading: a cold store without a current sensor)
    # may be idle in a defrost as well as running. Where defrosts faster than the limit are
    # known (its cohort's), its rise is judged by its shape too; where none is known, by the
    # limit alone.
    unknown = r.running[new] == UNKNOWN_STATE
    held = learns & np.where(unknown, ~np.isnan(own_rise[code]), idle & np.isnan(own_rise[code]))
    # The reading before each new one: a new one of the same batch, or the device's last
    # evaluated reading (the end of the buffer), whose streak the state remembers.
    before = np.maximum(new - 1, 0)
    linked = (new > 0) & (r.code[before] == code) & (ts - r.ts[before] <= max_gap_ns)
    previous_new = np.zeros(len(new), dtype=bool)
    previous_new[1:] = new[1:] - 1 == new[:-1]
    previous_rising = np.where(
        previous_new, np.r_[False, rising[:-1]], streak_from[code] != NO_TIME
    )
    continues = rising & linked & previous_rising
    within = continues & previous_new  # goes on from a reading of this batch
    first = np.maximum.accumulate(np.where(within, 0, np.arange(len(new))))
    carried = continues[first]  # the run's first reading goes on from the last batch
    start = np.where(carried, streak_from[code[first]], r.ts[np.maximum(ref[first], 0)])
    covered = ts - start
    # A running rise whose one reading interval covers the sustain time by itself (a slow
    # cadence) may hide an off-cycle: the compressor stopped and restarted between two readings
    # and the restart reading still carries the warm coil. It fires only once the next reading
    # confirms it (:func:`_confirmed_running_rise`).
    unconfirmed = (r.running[new] == 1) & cycled[new] & (ref >= 0)
    unconfirmed &= start >= r.ts[np.maximum(ref, 0)]
    fires = rising & (covered >= sustain_ns) & ~held & ~unconfirmed
    # Held with its state unknown, a rise that also outpaces the defrosts pages at once.
    with np.errstate(invalid="ignore"):
        fires |= rising & (covered >= sustain_ns) & held & unknown & (rate > own_rise[code])
    defrosting = np.zeros(len(r), dtype=bool)
    if learns:
        with np.errstate(invalid="ignore"):
            defrosting = (r.running == 0) & (x > rule.params[DEFROST_ABOVE])
        alone = (ref >= 0) & (start >= r.ts[np.maximum(ref, 0)])
        outpaced = own_rise[code] > 0
        if cohort_fast is not None:
            outpaced |= cohort_fast[code]
        fires &= ~(alone & _enters(defrosting, new, before, linked) & outpaced)
    observed = rate
    confirmed = _confirmed_running_rise(
        r,
        x,
        rising,
        linked,
        previous_new,
        start,
        streak_from,
        cycled,
        window_ns,
        max_gap_ns,
        sustain_ns,
    )
    if confirmed is not None:
        at, streak_start, rise_rate = confirmed
        fires[at] = True
        covered[at] = ts[at] - streak_start
        observed = rate.copy()
        observed[at] = rise_rate
    lost: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    if learns and held.any():
        ended = _unlike_a_defrost(
            r,
            x,
            rule.params[DEFROST_ABOVE],
            held,
            rising,
            linked,
            previous_new,
            start,
            streak_from,
            sustain_ns,
        )
        if ended is not None:
            at, streak_start = ended
            lost = at, streak_start, rate_at[new[at] - 1], np.ones(len(at), dtype=bool)
    if cycles is not None and learns:
        # A rise that ended unlike a defrost pages once the compressor has stayed off longer
        # than in any ordinary off-cycle of the device: an off-cycle's coil rises as fast and
        # slows the same way, and only the restart tells it. With the state unknown no
        # off-cycle is seen: it pages at once.
        at_once = None
        if lost is not None:
            blind = unknown[lost[0]]
            lost, at_once = _pick(lost, ~blind), _pick(lost, blind)
        lost = outlasting(r, defrosting, linked, previous_new, lost, cycles, cohort_off_cycle)
        if at_once is not None:
            lost = _joined(lost, at_once)
    if lost is not None and len(lost[0]):
        at, streak_start, rise_rate, at_its_end = lost
        fires[at] = True
        # At the reading that ended the rise: the rise's span, as it was; later: to the page.
        covered[at] = np.where(at_its_end, r.ts[new[at] - 1], ts[at]) - streak_start
        observed = observed.copy()
        observed[at] = rise_rate
    last = np.ones(len(new), dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    streak_from[code[last]] = np.where(rising[last], start[last], NO_TIME)
    sample = None
    if learns:
        sample = _defrost_warm_ups(
            r, rule, rate_at, defrosting, linked, previous_new, sustain_ns, stays
        )
    return Hits(fires, observed, limit, covered, sample=sample)


_Lost = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _pick(lost: _Lost, mask: np.ndarray) -> _Lost:
    """The lost-compressor firings (positions, rise start, rate, at the rise's end) in mask."""
    return lost[0][mask], lost[1][mask], lost[2][mask], lost[3][mask]


def _joined(a: _Lost, b: _Lost) -> _Lost:
    """Two sets of lost-compressor firings as one."""
    return np.r_[a[0], b[0]], np.r_[a[1], b[1]], np.r_[a[2], b[2]], np.r_[a[3], b[3]]


@dataclass
class DefrostStays:
    """Per device, the stay in the defrost state of its last evaluated reading that has not
    yet lasted the sustain time: when it began (NO_TIME: none pending) and the warm-up that
    carried the coil there (NaN: unknown). Updated in place."""

    since: np.ndarray
    warm_up: np.ndarray


def _enters(
    defrosting: np.ndarray, new: np.ndarray, before: np.ndarray, linked: np.ndarray
) -> np.ndarray:
    """Per new reading: it enters the defrost state (``defrosting``, per reading) from the
    reading before it.

    Where the rise into it rests on one reading interval (a slow cadence: the interval alone
    covers the sustain time), the interval holds the end of a run, the stop and part of the
    heating: its mean rate depends on when in it the heater started and says nothing of the
    heater's pace. On a device whose defrosts are known to warm the coil faster than the limit
    such a rise is read as the defrost it ends in; where its defrosts are known to be slower,
    a rise faster than the limit is still no defrost of its, and fires."""
    return defrosting[new] & linked & ~defrosting[before]


def _defrost_warm_ups(
    r: Readings,
    rule: StreamingRule,
    rate_at: np.ndarray,
    defrosting: np.ndarray,
    linked: np.ndarray,
    previous_new: np.ndarray,
    sustain_ns: int,
    stays: DefrostStays | None,
) -> np.ndarray:
    """Per new reading, the warm-up of a defrost to learn there (NaN: none).

    A defrost's warm-up is the fastest rate in the rule's span before the reading that enters
    the defrost state. It is learnt once the coil has stayed in the state (every reading idle
    and above ``defrost_above``, no gap) for the sustain time: a heater holds the coil there
    for its whole defrost, while the idle coil of a case whose thermostat cuts in at about
    ``defrost_above`` crosses it for a reading or two in ordinary off-cycles, which are no
    defrosts (counted as ones, they taught such a case that its defrosts warm slower than the
    limit). ``stays`` (None: a stay is learnt only within one batch) carries a stay that has
    not yet lasted the sustain time across batches."""
    new = r.new
    ts, code = r.ts[new], r.code[new]
    before = np.maximum(new - 1, 0)
    inside = defrosting[new]
    enters = _enters(defrosting, new, before, linked)
    warm_up = np.full(len(new), np.nan)
    if enters.any():
        at = new[enters]
        lo = r.first_within(at, rule.span_ns)
        fastest = range_max(np.where(np.isfinite(rate_at), rate_at, -np.inf), lo, at + 1)
        warm_up[enters] = np.where(np.isfinite(fastest), fastest, np.nan)
    goes_on = inside & linked & defrosting[before]
    first = np.maximum.accumulate(np.where(goes_on & previous_new, 0, np.arange(len(new))))
    carried = goes_on[first]  # the stay began before this batch
    since = np.where(inside, ts[first], NO_TIME)
    stay_warm_up = warm_up[first]
    if stays is not None:
        since = np.where(carried, stays.since[code[first]], since)
        stay_warm_up = np.where(carried, stays.warm_up[code[first]], stay_warm_up)
    elif carried.any():
        since = np.where(carried, NO_TIME, since)
    pending = inside & (since != NO_TIME)
    lasted = pending & (ts - since >= sustain_ns)
    was_short = ~goes_on | (r.ts[before] - since < sustain_ns)
    sample = np.where(lasted & was_short, stay_warm_up, np.nan)
    if stays is not None:
        last = np.ones(len(new), dtype=bool)
        last[:-1] = code[1:] != code[:-1]
        waiting = pending & ~lasted
        stays.since[code[last]] = np.where(waiting[last], since[last], NO_TIME)
        stays.warm_up[code[last]] = np.where(waiting[last], stay_warm_up[last], np.nan)
    return sample


def _unlike_a_defrost(
    r: Readings,
    x: np.ndarray,
    defrost_above: float,
    held: np.ndarray,
    rising: np.ndarray,
    linked: np.ndarray,
    previous_new: np.ndarray,
    start: np.ndarray,
    streak_from: np.ndarray,
    sustain_ns: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The held idle rises that ended unlike a defrost: positions in ``r.new`` and the start of
    each one's streak (None: none ended so).

    With no defrost warm-up learnt for a device or its cohort, an idle rise is judged by its
    shape. A defrost's heater carries the coil into the contract's defrost state (idle, above
    ``defrost_above``) and the compressor restarts when it ends; a lost compressor lets the
    coil drift towards the cabinet air, so its fast rise ends with the compressor still idle
    and the coil short of the defrost state. The alert comes at the first reading that no
    longer rises, once the held rise before it had covered the sustain time. ``streak_from``
    still holds the streak of each device's last reading of the previous batch."""
    new = r.new
    code = r.code[new]
    before = np.maximum(new - 1, 0)
    carried = streak_from[code]
    earlier_start = np.where(previous_new, np.r_[NO_TIME, start[:-1]], carried)
    earlier_held = np.where(previous_new, np.r_[False, held[:-1]], r.running[before] != 1)
    earlier_rising = np.where(previous_new, np.r_[False, rising[:-1]], carried != NO_TIME)
    with np.errstate(invalid="ignore"):
        short_of_defrost = (x[before] <= defrost_above) & (x[new] <= defrost_above)
    ended = held & ~rising & linked & earlier_rising & earlier_held & short_of_defrost
    ended &= r.ts[before] - earlier_start >= sustain_ns
    if not ended.any():
        return None
    at = np.flatnonzero(ended)
    return at, earlier_start[at]


def _confirmed_running_rise(
    r: Readings,
    x: np.ndarray,
    rising: np.ndarray,
    linked: np.ndarray,
    previous_new: np.ndarray,
    start: np.ndarray,
    streak_from: np.ndarray,
    cycled: np.ndarray,
    window_ns: int,
    max_gap_ns: int,
    sustain_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The readings that confirm a running rise left unconfirmed at the reading before them:
    positions in ``r.new``, the start of the rise's streak and its rate (None: none).

    That reading was running on a device seen idle by then, rising faster than the limit, and
    its own reading interval alone covered the sustain time. A hidden off-cycle ends in a running compressor that pulls the
    coil down by the next reading; a running compressor that does not cool leaves it as warm
    or warmer. So the next reading, not idle, whose coil is no colder confirms the loss (still
    rising faster than the limit it fires through the streak as any rise). ``streak_from``
    still holds the streak of each device's last reading of the previous batch."""
    new = r.new
    code = r.code[new]
    before = np.maximum(new - 1, 0)
    earlier_start = np.where(previous_new, np.r_[NO_TIME, start[:-1]], streak_from[code])
    earlier_rising = np.where(previous_new, np.r_[False, rising[:-1]], earlier_start != NO_TIME)
    with np.errstate(invalid="ignore"):
        no_colder = x[new] >= x[before]
    candidate = ~rising & linked & earlier_rising & no_colder
    candidate &= (r.running[before] == 1) & cycled[before] & (r.running[new] != 0)
    candidate &= r.ts[before] - earlier_start >= sustain_ns
    if not candidate.any():
        return None
    at = np.flatnonzero(candidate)
    rate, ref = _rates(r, x, before[at], window_ns, max_gap_ns)
    # The rise rested on the earlier reading's own interval: its streak began at its reference.
    alone = (ref >= 0) & (earlier_start[at] >= r.ts[np.maximum(ref, 0)])
    if not alone.any():
        return None
    return at[alone], earlier_start[at[alone]], rate[alone]


def _rates(
    r: Readings, x: np.ndarray, rows: np.ndarray, window_ns: int, max_gap_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the rate of change per minute since the last reading at least ``window_ns``
    earlier (NaN without one within ``max_gap_ns``), and that reading (-1: none)."""
    ref = r.last_at_or_before(rows, window_ns)
    has_ref = ref >= 0
    safe = np.maximum(ref, 0)
    has_ref &= r.ts[rows] - r.ts[safe] <= max_gap_ns
    minutes = np.where(has_ref, (r.ts[rows] - r.ts[safe]) / NS_PER_MINUTE, 1.0)
    with np.errstate(invalid="ignore"):
        rate = np.where(has_ref, (x[rows] - x[safe]) / minutes, np.nan)
    return rate, np.where(has_ref, ref, -1)


def _held(
    r: Readings, cond: np.ndarray, need_ns: np.ndarray, max_gap_ns: int, streak_from: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per new reading: whether ``cond`` has held at every reading of its device for at least
    ``need_ns`` (no gap above ``max_gap_ns``), and for how long. ``streak_from`` (per device)
    carries the start of a streak across batches (NO_TIME: none) and is updated in place."""
    new = r.new
    ts, code = r.ts[new], r.code[new]
    before = np.maximum(new - 1, 0)
    linked = (new > 0) & (r.code[before] == code) & (ts - r.ts[before] <= max_gap_ns)
    previous_new = np.zeros(len(new), dtype=bool)
    previous_new[1:] = new[1:] - 1 == new[:-1]
    previous_held = np.where(previous_new, np.r_[False, cond[:-1]], streak_from[code] != NO_TIME)
    continues = cond & linked & previous_held
    within = continues & previous_new
    first = np.maximum.accumulate(np.where(within, 0, np.arange(len(new))))
    carried = continues[first]
    start = np.where(carried, streak_from[code[first]], ts[first])
    covered = np.where(cond, ts - start, 0)
    fires = cond & (covered >= need_ns)
    last = np.ones(len(new), dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    streak_from[code[last]] = np.where(cond[last], start[last], NO_TIME)
    return fires, covered


def state_held(
    r: Readings, rule: StreamingRule, limit_minutes: np.ndarray, max_gap_ns: int, streak: np.ndarray
) -> Hits:
    """A state (e.g. door_open) on at every reading for longer than the device's limit, and
    never less than the rule's ``min_held_minutes`` (``min_readings_held`` reading intervals:
    at a slow cadence a few consecutive readings that caught a busy door open prove little)."""
    x = r.values[rule.sensor][r.new]
    code = r.code[r.new]
    with np.errstate(invalid="ignore"):
        on = np.nan_to_num(x, nan=0.0) > 0.5
    limit = np.maximum(limit_minutes[code], rule.params.get(HELD_FLOOR, 0.0))
    fires, covered = _held(r, on, (limit * NS_PER_MINUTE).astype(np.int64), max_gap_ns, streak)
    fires &= covered > limit * NS_PER_MINUTE
    return Hits(fires, covered / NS_PER_MINUTE, limit, covered)


def below_moving_average_held(
    r: Readings,
    rule: StreamingRule,
    fraction: np.ndarray,
    baseline: np.ndarray,
    max_gap_ns: int,
    streak: np.ndarray,
) -> Hits:
    """Below ``fraction`` × the device's moving average with the compressor idle, at every
    reading for ``sustain_minutes``: not even the idle draw (the supply is gone). A device
    whose idle average is 0 (its sensor reads 0 when idle) or unknown cannot tell and stays
    silent."""
    x = r.values[rule.sensor][r.new]
    code = r.code[r.new]
    idle = baseline[code, 0]
    with np.errstate(invalid="ignore"):
        cond = (idle > 0) & (x < fraction[code] * idle)
    need = np.full(len(x), int(rule.minutes("sustain_minutes") * NS_PER_MINUTE), dtype=np.int64)
    fires, covered = _held(r, cond, need, max_gap_ns, streak)
    return Hits(fires, x, idle, covered)


def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo[i]:hi[i]]) for every i; -inf for an empty range."""
    out = np.full(len(lo), -np.inf)
    length = hi - lo
    if not len(length) or int(length.max()) <= 0:
        return out
    longest = int(length.max())
    if longest <= MAX_LAG_LOOP:
        for lag in range(1, longest + 1):
            inside = length >= lag
            np.maximum(out, np.where(inside, values[np.maximum(hi - lag, 0)], -np.inf), out=out)
        return out
    levels = [values.astype(float)]  # sparse table: levels[j][i] = max(values[i : i + 2**j])
    while (1 << len(levels)) <= longest:
        prev, step = levels[-1], 1 << (len(levels) - 1)
        nxt = prev.copy()
        nxt[:-step] = np.maximum(prev[:-step], prev[step:])
        levels.append(nxt)
    ok = length > 0
    k = np.floor(np.log2(length[ok])).astype(np.int64)
    table = np.stack(levels)
    out[ok] = np.maximum(table[k, lo[ok]], table[k, hi[ok] - (np.int64(1) << k)])
    return out
