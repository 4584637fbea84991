"""What the streaming rules remember between files, per device, in one small file.

* ``watermark``: the newest reading time evaluated (older readings arriving later are the batch
  path's business, so re-reading a file never fires twice);
* moving averages per rule that keeps one (``keeps_average``) and running state (exponentially weighted,
  bias-corrected, so a short history is a plain mean rather than a skewed one), with the minutes
  of history behind each;
* per rule, when it last fired on the device (a firing within the episode gap continues the
  episode);
* per sustained-rise rule, since when the device's readings have been rising, and the stay in
  the defrost state not yet long enough to count as a defrost (when it began, its warm-up);
* a buffer of the last minutes of readings, so a window can span two files.

Stored as one file of ``.npy`` records written to a temporary name and renamed (atomic); device
ids index every per-device array.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from refrig_assets.core.storage import durable_replace
from refrig_assets.streaming.config import (
    DEFROST_ABOVE,
    STREAK_KINDS,
    StreamingSettings,
)
from refrig_assets.streaming.off_cycles import OFF_CYCLE_PARTS, OffCycles
from refrig_assets.streaming.rules import NO_TIME, DefrostStays

FORMAT_VERSION = 1


log = logging.getLogger(__name__)


def backup_path(path: Path) -> Path:
    """Where the previous state is kept: ``<name>.bak`` next to it."""
    return path.with_name(f"{path.name}.bak")


@dataclass
class MovingAverage:
    """Per device and running state (column 0 idle, 1 running): weighted sum, weight, minutes."""

    total: np.ndarray
    weight: np.ndarray
    minutes: np.ndarray
    updated: np.ndarray  # int64 ns of the last reading folded in

    @classmethod
    def empty(cls, n: int) -> MovingAverage:
        return cls(np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2)), np.full(n, NO_TIME))

    def grow(self, n: int) -> None:
        extra = n - len(self.updated)
        self.total = np.concatenate([self.total, np.zeros((extra, 2))])
        self.weight = np.concatenate([self.weight, np.zeros((extra, 2))])
        self.minutes = np.concatenate([self.minutes, np.zeros((extra, 2))])
        self.updated = np.concatenate([self.updated, np.full(extra, NO_TIME)])

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight > 0, self.total / self.weight, np.nan)


@dataclass
class StreamState:
    """Everything the rules carry from one batch of readings to the next."""

    devices: pd.Index
    watermark: np.ndarray
    averages: dict[str, MovingAverage]
    last_fired: dict[str, np.ndarray]  # per rule: when it last fired on the device
    streaks: dict[str, np.ndarray]  # per streak rule (STREAK_KINDS): start of the running streak
    buffer_code: np.ndarray
    buffer_ts: np.ndarray
    buffer_values: dict[str, np.ndarray]
    # Per sustained_rise rule that learns defrosts: a stay in the defrost state still too short
    # to count as one.
    defrost_stays: dict[str, DefrostStays] = field(default_factory=dict)
    # Per sustained_rise rule that learns defrosts: each device's ordinary off-cycles.
    off_cycles: dict[str, OffCycles] = field(default_factory=dict)
    # Derived in memory, never saved: per rule (data time, devices, cohort typical values).
    cohort_cache: dict[str, tuple[int, int, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def empty(cls, settings: StreamingSettings) -> StreamState:
        return cls(
            devices=pd.Index([], dtype=object),
            watermark=np.zeros(0, dtype=np.int64),
            averages={r.name: MovingAverage.empty(0) for r in settings.rules if r.keeps_average},
            last_fired={r.name: np.zeros(0, dtype=np.int64) for r in settings.rules},
            streaks={
                r.name: np.zeros(0, dtype=np.int64)
                for r in settings.rules
                if r.kind in STREAK_KINDS
            },
            buffer_code=np.zeros(0, dtype=np.int64),
            buffer_ts=np.zeros(0, dtype=np.int64),
            buffer_values={s: np.zeros(0) for s in settings.sensors},
            defrost_stays={
                r.name: DefrostStays(np.zeros(0, dtype=np.int64), np.zeros(0))
                for r in settings.rules
                if r.kind == "sustained_rise" and DEFROST_ABOVE in r.params
            },
            off_cycles={
                r.name: OffCycles.empty(0)
                for r in settings.rules
                if r.kind == "sustained_rise" and DEFROST_ABOVE in r.params
            },
        )

    def __len__(self) -> int:
        return len(self.devices)

    def codes_for(self, device_ids: np.ndarray) -> np.ndarray:
        """Device index of each id, adding devices never seen before."""
        codes = self._codes_in_known_order(device_ids)
        if codes is not None:
            return codes
        codes = self.devices.get_indexer(device_ids)
        unseen = codes < 0
        if unseen.any():
            new_ids = pd.unique(device_ids[unseen])
            self.devices = self.devices.append(pd.Index(new_ids, dtype=object))
            n = len(self.devices)
            self.watermark = np.concatenate(
                [self.watermark, np.full(n - len(self.watermark), NO_TIME)]
            )
            for avg in self.averages.values():
                avg.grow(n)
            for per_rule in (self.last_fired, self.streaks):
                for name, times in per_rule.items():
                    per_rule[name] = np.concatenate([times, np.full(n - len(times), NO_TIME)])
            for stays in self.defrost_stays.values():
                extra = n - len(stays.since)
                stays.since = np.concatenate([stays.since, np.full(extra, NO_TIME)])
                stays.warm_up = np.concatenate([stays.warm_up, np.full(extra, np.nan)])
            for cycles in self.off_cycles.values():
                cycles.grow(n)
            codes[unseen] = self.devices.get_indexer(device_ids[unseen])
        return codes.astype(np.int64)

    def _codes_in_known_order(self, device_ids: np.ndarray) -> np.ndarray | None:
        """Fast path for the usual file: its devices in the order first seen, one reading or a
        run of readings each. Returns None when the file is laid out otherwise."""
        n, known = len(device_ids), self.devices.to_numpy()
        if not n:
            return np.zeros(0, dtype=np.int64)
        if n <= len(known) and device_ids[-1] == known[n - 1]:  # one reading per device?
            if np.array_equal(device_ids, known[:n]):
                return np.arange(n, dtype=np.int64)
            return None
        if n < 2 or device_ids[0] != device_ids[1]:
            return None
        heads = np.flatnonzero(np.r_[True, device_ids[1:] != device_ids[:-1]])
        if len(heads) > len(known) or device_ids[-1] != known[len(heads) - 1]:
            return None
        if not np.array_equal(device_ids[heads], known[: len(heads)]):
            return None
        return np.repeat(np.arange(len(heads), dtype=np.int64), np.diff(np.r_[heads, n]))

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically (temporary file in the same directory, then rename)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "devices": np.asarray(self.devices, dtype=str),
            "watermark": self.watermark,
            "buffer/code": self.buffer_code.astype(np.int32),
            "buffer/ts": self.buffer_ts,
        }
        for sensor, values in self.buffer_values.items():
            # float32 keeps a sensor's precision and halves the file a tick rewrites.
            arrays[f"buffer/value/{sensor}"] = values.astype(np.float32)
        for name, avg in self.averages.items():
            for part in ("total", "weight", "minutes", "updated"):
                arrays[f"average/{name}/{part}"] = getattr(avg, part)
        for name, times in self.last_fired.items():
            arrays[f"last_fired/{name}"] = times
        for name, times in self.streaks.items():
            arrays[f"streak/{name}"] = times
        for name, stays in self.defrost_stays.items():
            arrays[f"defrost_stay/{name}/since"] = stays.since
            arrays[f"defrost_stay/{name}/warm_up"] = stays.warm_up
        for name, cycles in self.off_cycles.items():
            for part in OFF_CYCLE_PARTS:
                arrays[f"off_cycle/{name}/{part}"] = getattr(cycles, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            # Plain .npy records one after the other (names first): no zip checksum to compute.
            with open(tmp, "wb") as fh:
                np.save(fh, np.array(list(arrays)), allow_pickle=False)
                for values in arrays.values():
                    np.save(fh, values, allow_pickle=False)
            durable_replace(tmp, path, backup=backup_path(path))
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, settings: StreamingSettings) -> StreamState:
        """The saved state; its backup when the file is damaged; an empty one (rebuilt from
        the next readings, with a warning) when both are, or when there is none. Rules added
        since the file was written start empty; removed rules are dropped."""
        for candidate in (path, backup_path(path)):
            if not candidate.exists():
                continue
            try:
                return cls._read(candidate, settings)
            except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
                log.warning(
                    "streaming state %s is unreadable (%s): trying the backup, then starting empty",
                    candidate,
                    exc,
                )
        return cls.empty(settings)

    @classmethod
    def _read(cls, path: Path, settings: StreamingSettings) -> StreamState:
        state = cls.empty(settings)
        with open(path, "rb") as fh:
            names = [str(n) for n in np.load(fh, allow_pickle=False)]
            data = {name: np.load(fh, allow_pickle=False) for name in names}
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: streaming state format {int(data['format_version'])}")
        n = len(data["devices"])
        state.devices = pd.Index(data["devices"].astype(object), dtype=object)
        state.watermark = data["watermark"]
        state.buffer_code = data["buffer/code"].astype(np.int64)
        state.buffer_ts = data["buffer/ts"]
        for sensor in state.buffer_values:
            key = f"buffer/value/{sensor}"
            state.buffer_values[sensor] = (
                data[key].astype(float) if key in data else np.full(len(state.buffer_ts), np.nan)
            )
        for name in state.averages:
            if f"average/{name}/total" in data:
                parts = (data[f"average/{name}/{p}"] for p in ("total", "weight", "minutes"))
                state.averages[name] = MovingAverage(*parts, data[f"average/{name}/updated"])
            else:
                state.averages[name] = MovingAverage.empty(n)
        for name in state.last_fired:
            state.last_fired[name] = data.get(f"last_fired/{name}", np.full(n, NO_TIME))
        for name in state.streaks:
            state.streaks[name] = data.get(f"streak/{name}", np.full(n, NO_TIME))
        for name in state.defrost_stays:
            state.defrost_stays[name] = DefrostStays(
                data.get(f"defrost_stay/{name}/since", np.full(n, NO_TIME)),
                data.get(f"defrost_stay/{name}/warm_up", np.full(n, np.nan)),
            )
        for name in state.off_cycles:
            cycles = OffCycles.empty(n)  # a file written before off-cycles were kept: none
            for part in OFF_CYCLE_PARTS:
                key = f"off_cycle/{name}/{part}"
                if key in data:
                    setattr(cycles, part, data[key])
            state.off_cycles[name] = cycles
        return state
