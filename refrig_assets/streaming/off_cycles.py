"""Ordinary off-cycles of each compressor, so that an idle rise whose shape cannot tell a lost
compressor from an off-cycle pages only once the compressor has stayed off longer than it did
in any ordinary off-cycle seen.

An off-cycle is an unbroken idle stretch (no gap, no reading without a running state) that ends
with a restart and never enters the defrost state; its length runs from its first idle reading
to the restart reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from refrig_assets.streaming.config import NO_TIME

if TYPE_CHECKING:
    from refrig_assets.streaming.rules import Readings

NS_PER_SECOND = 10**9
# Off-cycle lengths are compared in whole seconds; the per-device running maximum offsets each
# device's seconds by its code times this (far above any off-cycle).
_SECONDS_STRIDE = 10**10
# The per-device arrays of :class:`OffCycles`, as the state file names them.
OFF_CYCLE_PARTS = ("idle_since", "defrosted", "longest", "waiting_from", "waiting_rate")


@dataclass
class OffCycles:
    """Per device, carried from batch to batch and updated in place: when the idle stretch of
    its last evaluated reading began (NO_TIME: that reading was not idle, or the start is not
    known), whether that stretch has entered the defrost state, the longest ordinary off-cycle
    seen (ns; 0: none), and a lost-compressor firing waiting for the idle stretch to outlast it:
    the start of its rise (NO_TIME: none) and its rate."""

    idle_since: np.ndarray
    defrosted: np.ndarray
    longest: np.ndarray
    waiting_from: np.ndarray
    waiting_rate: np.ndarray

    @classmethod
    def empty(cls, n: int) -> OffCycles:
        return cls(
            np.full(n, NO_TIME, dtype=np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=np.int64),
            np.full(n, NO_TIME, dtype=np.int64),
            np.full(n, np.nan),
        )

    def grow(self, n: int) -> None:
        """Room for devices first seen now."""
        extra = OffCycles.empty(n - len(self.idle_since))
        for name in OFF_CYCLE_PARTS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(extra, name)]))


def outlasting(
    r: Readings,
    defrosting: np.ndarray,
    linked: np.ndarray,
    previous_new: np.ndarray,
    ended: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    cycles: OffCycles,
    cohort_longest: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lost-compressor firings due among the new readings: positions in ``r.new``, the
    start of each one's rise, its rate, and whether the firing is at the reading that ended
    the rise.

    ``ended`` holds the idle rises that ended unlike a defrost (positions in ``r.new``, rise
    start, rate; the fourth array is ignored). Each fires at the first reading of its idle
    stretch that has been idle longer than the device's longest ordinary off-cycle seen before
    it; where the device has shown none, than its cohort's median of those (``cohort_longest``
    per device, ns; 0 or None: none known, at once); at once where the stretch's start is not
    known; unless the compressor restarts or
    the coil enters the defrost state (``defrosting``, per reading of ``r``) first. ``linked``
    and ``previous_new`` are per new reading as :func:`rules.sustained_rise` has them.
    ``cycles`` is updated to the last new reading of each device."""
    new = r.new
    m = len(new)
    code, ts = r.code[new], r.ts[new]
    before = np.maximum(new - 1, 0)
    idle = r.running[new] == 0
    positions = np.arange(m)
    goes_on = idle & linked & (r.running[before] == 0)
    first = np.maximum.accumulate(np.where(goes_on & previous_new, 0, positions))
    carried = goes_on[first]  # the stretch began before this batch
    since = np.where(carried, cycles.idle_since[code[first]], ts[first])
    since = np.where(idle, since, NO_TIME)
    entered = defrosting[new].astype(np.int64)
    count = np.cumsum(entered)
    defrosted = count - (count[first] - entered[first]) > 0
    defrosted |= carried & cycles.defrosted[code[first]]
    defrosted &= idle

    # Off-cycles ending at this batch's restarts, and the longest seen by each reading.
    prev_since = np.where(previous_new, np.r_[NO_TIME, since[:-1]], cycles.idle_since[code])
    prev_defrosted = np.where(previous_new, np.r_[False, defrosted[:-1]], cycles.defrosted[code])
    restart = (r.running[new] == 1) & linked & (r.running[before] == 0)
    restart &= (prev_since != NO_TIME) & ~prev_defrosted
    seconds = np.where(restart, (ts - prev_since) // NS_PER_SECOND, 0)
    offset = code.astype(np.int64) * _SECONDS_STRIDE
    longest_seen = (np.maximum.accumulate(offset + seconds) - offset) * NS_PER_SECOND
    longest = np.maximum(cycles.longest[code], longest_seen)
    # A device that has shown no off-cycle yet waits as long as its cohort's typically do.
    bound = (
        longest if cohort_longest is None else np.where(longest > 0, longest, cohort_longest[code])
    )

    # Firings waiting in each idle stretch: an ended rise in it so far, or one carried over.
    event = np.zeros(m, dtype=bool)
    rise_from = np.full(m, NO_TIME, dtype=np.int64)
    rise_rate = np.full(m, np.nan)
    if ended is not None:
        at, start, rate, _ = ended
        event[at], rise_from[at], rise_rate[at] = True, start, rate
    last_event = np.maximum.accumulate(np.where(event, positions, -1))
    in_stretch = idle & (last_event >= first)
    carried_wait = idle & carried & (cycles.waiting_from[code[first]] != NO_TIME)
    waiting = in_stretch | carried_wait
    from_ = np.where(
        in_stretch, rise_from[np.maximum(last_event, 0)], cycles.waiting_from[code[first]]
    )
    rate_ = np.where(
        in_stretch, rise_rate[np.maximum(last_event, 0)], cycles.waiting_rate[code[first]]
    )
    known = since != NO_TIME
    due = waiting & ~defrosted & (~known | (ts - since > bound))
    was_due = np.r_[False, due[:-1]] & goes_on & previous_new
    fire = due & ~was_due

    last = np.ones(m, dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    devices = code[last]
    cycles.idle_since[devices] = since[last]
    cycles.defrosted[devices] = defrosted[last]
    cycles.longest[devices] = longest[last]
    still = waiting[last] & ~due[last]
    cycles.waiting_from[devices] = np.where(still, from_[last], NO_TIME)
    cycles.waiting_rate[devices] = np.where(still, rate_[last], np.nan)
    at = np.flatnonzero(fire)
    return at, from_[at], rate_[at], event[at]
