"""How long each device's compressor has been stopped, carried across hours, against the
longest ordinary stop the device has shown.

A window's ``compressor_idle_longest_minutes`` restarts at every hourly partition (it reads 15,
30, 45, 60, then 15 again for a compressor that never restarts), and a stop is only unusual
against the device's own off-cycles and defrosts: a lightly loaded cabinet idles for an hour, a
low-temperature case defrosts for 45 minutes. :func:`derive_stops` follows each device's windows
in time order, continuing from the state after the hour before (:class:`StopState`), and gives
per window:

* ``compressor_stopped_minutes``: how long the compressor has been stopped at the window's end
  (0 where it ran in the window, NaN where the window has no duty cycle), counted from the
  first window of the stop (the previous hours' too); at least the window's own idle streak;
* ``compressor_stop_over_longest``: that stop over the longest the device has shown it can stop
  in order: its longest ended off-cycle plus its longest ended stop that held a defrost (a
  defrost may begin at any point of an off-cycle, so one defrost stop is as long as the two;
  at least one window long). NaN until the device has shown what its stops look like: a stop
  that held a defrost ended, or ``min_observed_hours`` of windows seen with a stop ended (a
  device without defrosts; one never seen to end a stop, say a current below the contract's
  running level, is never judged).

A stop is unbroken only over adjoining windows of the device with a duty cycle of 0: a window
missing (no readings) or without a duty cycle ends the count, so a silence never lengthens a
stop. The state is per device: the end of its last window, the start of the stop running at
that end (:data:`NO_TIME`: none), whether that stop held a defrost, the longest off-cycle and
the longest defrost stop ended (0: none yet), and when observation began.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NO_TIME = np.iinfo(np.int64).min
NS_PER_MINUTE = 60 * 10**9
HOUR_NS = 3600 * 10**9
DUTY = "duty_cycle"
IDLE_STREAK = "compressor_idle_longest_minutes"
STOPPED = "compressor_stopped_minutes"
OVER_LONGEST = "compressor_stop_over_longest"
STATE_COLUMNS = (
    "device_id",
    "last_end",
    "idle_since",
    "stop_defrosted",
    "tail_minutes",
    "tail_defrost",
    "longest_off_minutes",
    "longest_defrost_minutes",
    "observed_since",
)
# Minutes are offset per device by its code times this (far above any stop) for one running
# maximum over all devices.
_STRIDE = 1e9


def empty_state() -> pd.DataFrame:
    """A stop state without devices."""
    return pd.DataFrame(
        {
            "device_id": pd.Series(dtype=object),
            "last_end": pd.Series(dtype=np.int64),
            "idle_since": pd.Series(dtype=np.int64),
            "stop_defrosted": pd.Series(dtype=bool),
            "tail_minutes": pd.Series(dtype=float),
            "tail_defrost": pd.Series(dtype=bool),
            "longest_off_minutes": pd.Series(dtype=float),
            "longest_defrost_minutes": pd.Series(dtype=float),
            "observed_since": pd.Series(dtype=np.int64),
        }
    )


class StopState:
    """The stop state before an hour (a frame of :data:`STATE_COLUMNS`), indexed by device."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.index = pd.Index(frame["device_id"].astype(str))

    def take(self, devices: np.ndarray) -> dict[str, np.ndarray]:
        """Each column for ``devices`` (a device the state lacks: no window, no stop yet)."""
        at = self.index.get_indexer(devices)
        known = at >= 0
        pos = np.maximum(at, 0)
        out: dict[str, np.ndarray] = {}
        defaults = {
            "last_end": NO_TIME,
            "idle_since": NO_TIME,
            "stop_defrosted": False,
            "tail_minutes": 0.0,
            "tail_defrost": False,
            "longest_off_minutes": 0.0,
            "longest_defrost_minutes": 0.0,
            "observed_since": NO_TIME,
        }
        for name, default in defaults.items():
            values = self.frame[name].to_numpy()
            taken = values[pos] if len(values) else np.full(len(devices), default)
            out[name] = np.where(known, taken, default)
        return out


def streak_ns(minutes: np.ndarray) -> np.ndarray:
    """Streaks in minutes as int64 ns."""
    return (minutes * NS_PER_MINUTE).astype(np.int64)


def _group_cummax(values: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Running maximum of non-negative ``values`` restarting at every device (rows sorted by
    device ``code``)."""
    offset = code.astype(float) * _STRIDE
    return np.maximum.accumulate(values + offset) - offset


def derive_stops(
    devices: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    duty: np.ndarray,
    idle_streak: np.ndarray,
    defrost: np.ndarray,
    before: StopState,
    min_observed_hours: float,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per window (device ids, starts and ends as int64 ns UTC, duty cycle, the window's idle
    streak in minutes, whether it held defrost minutes): ``compressor_stopped_minutes`` and
    ``compressor_stop_over_longest`` (see the module docstring), and the state after the
    windows for their devices, continuing from ``before``. A device's values depend on its own
    windows only."""
    n = len(devices)
    if not n:
        return np.zeros(0), np.zeros(0), empty_state()
    order = np.lexsort((end, devices))
    d, s, e = devices[order], start[order], end[order]
    duty_o = duty[order]
    streak = np.nan_to_num(idle_streak[order], nan=0.0)
    heated = defrost[order].astype(bool)
    first_row = np.concatenate([[True], d[1:] != d[:-1]])
    code = np.cumsum(first_row) - 1
    first = np.flatnonzero(first_row)
    state = before.take(d[first])
    pos = np.arange(n)

    idle = duty_o == 0
    running = duty_o > 0
    prev_end = np.r_[NO_TIME, e[:-1]]
    prev_end[first] = state["last_end"]
    adjoins = (prev_end != NO_TIME) & (s <= prev_end)
    # The stop running before each window: the previous window's (idle) or the state's.
    prev_idle = np.r_[False, idle[:-1]]
    prev_idle[first] = state["idle_since"] != NO_TIME
    goes_on = idle & adjoins & prev_idle
    sizes = np.diff(np.r_[first, n])
    # Each idle window's stop began at its chain's first window, or before the hour where
    # that is the device's first window and goes on from the state.
    chain_start = np.maximum.accumulate(np.where(first_row | ~goes_on, pos, 0))
    carried = first_row & goes_on
    # The window's idle streak counts from the stop's start within its hour (the partition),
    # so a stop that began inside a window that ran reaches back to it; at an hour's first
    # window it restarts, and the stop reaches back at most the previous window's streak.
    hour = s - np.mod(s, HOUR_NS)
    prev_streak = np.r_[0.0, streak[:-1]]
    prev_streak[first] = state["tail_minutes"]
    prev_ran = np.r_[False, running[:-1]]
    prev_ran[first] = state["tail_defrost"] | (state["tail_minutes"] > 0)
    within = np.minimum(streak_ns(streak) - (e - s), streak_ns(prev_streak))
    head = np.where(s == hour, streak_ns(prev_streak), within)
    # Only a window read before it that ran can hold the stop's start (a streak that spans a
    # silence or a window without a duty cycle is not a stop seen).
    began = s - np.where(adjoins & prev_ran, np.maximum(head, 0), 0)
    since = np.where(
        carried[chain_start], np.repeat(state["idle_since"], sizes), began[chain_start]
    )
    since = np.where(idle, since, NO_TIME)
    stopped = np.where(idle, (e - since) / NS_PER_MINUTE, np.where(running, 0.0, np.nan))

    # Stops ended in each window with a run: the part of the stop before the window's hour
    # (a stop going on from an idle window before) and the window's streak (the whole stop
    # where it began in this hour, its rest where it began before; any stop inside the window).
    prev_since = np.r_[NO_TIME, since[:-1]]
    prev_since[first] = state["idle_since"]
    went_on = running & adjoins & prev_idle & (prev_since != NO_TIME)
    earlier = np.where(went_on, np.maximum(hour - prev_since, 0) / NS_PER_MINUTE, 0.0)
    # ... and at least as long as it was at the end of the window before.
    until_before = np.r_[0.0, stopped[:-1]]
    until_before[first] = (state["last_end"] - state["idle_since"]) / NS_PER_MINUTE
    until_before = np.where(went_on, until_before, 0.0)
    # A stop inside the window reaches back at most into a window before it that ran.
    length = (e - s) / NS_PER_MINUTE
    inside = np.minimum(streak, length + np.where(adjoins & prev_ran, prev_streak, 0.0))
    completed = np.where(
        running, np.where(went_on, np.maximum(earlier + streak, until_before), inside), 0.0
    )

    # Whether a stop that went on over whole idle windows held a defrost: in those windows, in
    # the window it began in (a run before it) or in the window it ended in. A stop inside a
    # window with a run counts as an off-cycle (its windows cannot tell more).
    h = heated.astype(float)
    carried_heat = np.zeros(n)
    carried_heat[first] = (carried | went_on)[first] & state["stop_defrosted"]
    total = np.cumsum(h + carried_heat)
    heat = total - np.repeat(total[first] - (h + carried_heat)[first], sizes)  # per device
    prev_h = np.r_[0.0, h[:-1]]
    prev_h[first] = state["tail_defrost"]
    head_heat = np.where(adjoins & prev_ran, prev_h, 0.0)
    from_state = first_row & (carried | went_on)  # the state's stop goes on into it
    base = np.where(from_state, 0.0, heat - h - head_heat)  # at each chain's first window
    chain_of = np.where(went_on & ~first_row, np.r_[0, chain_start[:-1]], chain_start)
    with_defrost = (idle | went_on) & (heat - base[chain_of] > 0)
    own = np.repeat(state["longest_off_minutes"], sizes)
    off_cycle = np.where(went_on & with_defrost, 0.0, completed)
    longest_off = _group_cummax(np.maximum(off_cycle, own), code)
    own = np.repeat(state["longest_defrost_minutes"], sizes)
    defrost_stop = np.where(went_on & with_defrost, completed, 0.0)
    longest_defrost = _group_cummax(np.maximum(defrost_stop, own), code)

    observed = np.repeat(state["observed_since"], sizes)
    observed = np.where(observed == NO_TIME, np.repeat(s[first], sizes), observed)
    # A device never seen to end a stop (a current below the contract's running level reads
    # as a compressor that never runs) shows nothing of its stops.
    seen_long = (e - observed) / 3.6e12 >= min_observed_hours
    known = (longest_defrost > 0) | (seen_long & (longest_off > 0))
    # The longest a device stops in order: its longest off-cycle running into its longest
    # defrost stop (a defrost may begin at any point of an off-cycle).
    longest = longest_off + longest_defrost
    window = (e - s) / NS_PER_MINUTE
    with np.errstate(invalid="ignore", divide="ignore"):
        over = np.where(known, stopped / np.maximum(longest, window), np.nan)
    over = np.where(running, 0.0, over)  # not stopped, whatever its reference

    tail = np.r_[first[1:] - 1, n - 1]
    after = pd.DataFrame(
        {
            "device_id": d[tail],
            "last_end": e[tail],
            "idle_since": since[tail],
            "stop_defrosted": with_defrost[tail] & idle[tail],
            "tail_minutes": np.where(running[tail], streak[tail], 0.0),
            "tail_defrost": running[tail] & heated[tail],
            "longest_off_minutes": longest_off[tail],
            "longest_defrost_minutes": longest_defrost[tail],
            "observed_since": observed[tail],
        }
    )
    out_stopped, out_over = np.empty(n), np.empty(n)
    out_stopped[order], out_over[order] = stopped, over
    return out_stopped, out_over, after


def merge_states(states: list[pd.DataFrame], before: pd.DataFrame) -> pd.DataFrame:
    """The state after an hour: ``states`` (disjoint devices) and, for devices absent this
    hour, their state before it."""
    parts = [p for p in states if len(p)]
    found = pd.concat(parts, ignore_index=True) if parts else empty_state()
    kept = before[~before["device_id"].astype(str).isin(found["device_id"])]
    parts = [p for p in (found, kept) if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else empty_state()
