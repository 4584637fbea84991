"""Probable causes for served windows: the incidents package's diagnosis, read-only and cached.

:func:`refrig_assets.incidents.causes.diagnose_partition` is the batch step's entry point: it
reads the device registry, the baselines of the hours before a partition and the defrost state,
and it *keeps* what it derives (``cause_baselines/``, ``cause_state/``) for the next hour. A
request must not do that: its few windows are not the hour's, and the state it would write would
replace the batch step's. :class:`CauseDiagnosis` runs the same steps (``with_cohort``,
``baselines``, ``with_derived``, ``diagnose``) on a store that does not write, and keeps the
baselines, the defrost state and the registry in memory until the data folder changes under them
(a new features partition, baseline or state file, or registry), so a request pays for the
diagnosis of its own windows only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.config import config_path
from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents import baselines as bl
from refrig_assets.incidents import stops
from refrig_assets.incidents.causes import Diagnosis, Windows, diagnose_windows
from refrig_assets.incidents.causes_store import (
    BASELINES,
    FEATURES,
    STATE,
    CauseStore,
    DefrostState,
    defrost_hours,
    defrosting,
    stop_features,
    uses_stops,
)
from refrig_assets.incidents.signatures import SignatureTable, load_signatures
from refrig_assets.scoring.runs import HOUR_KEY

HOUR_NS = 3_600_000_000_000


class ReadOnlyStore(ParquetStore):
    """The data folder as the service sees it: partitions are read, never replaced. The
    incidents package's derived files stay the batch step's to keep."""

    def write(self, dataset: str, partition_key: str | None, data: Any) -> Path:
        return self.path(dataset, partition_key)


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class _CachedCauseStore(CauseStore):
    """A :class:`CauseStore` whose registry, baselines and defrost state are computed once per
    state of the files they come from."""

    def __init__(self, store: ParquetStore):
        super().__init__(store)
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._memo: dict[tuple, Any] = {}
        root = self.store.root
        registry = self.store.path("device_registry")
        self._paths = (root / FEATURES, root / BASELINES, root / STATE, registry)

    def refresh(self) -> tuple:
        """Look at the files once (a request does, before it reads anything cached): what was
        computed from files that changed since is dropped. Their stamps, the signature
        table's last."""
        files = tuple(_stamp(p) for p in (*self._paths, config_path("causes")))
        with self._lock:
            if files != self._seen:
                self._memo, self._seen = {}, files
        return files

    def _cached(self, key: tuple, compute):
        with self._lock:
            files = self._seen
        if files is None:
            files = self.refresh()
        with self._lock:
            if key in self._memo and self._seen == files:
                return self._memo[key]
        value = compute()
        with self._lock:
            if self._seen == files:
                self._memo[key] = value
        return value

    def registry(self) -> pd.DataFrame | None:
        return self._cached(("registry",), super().registry)

    def cohorts(self) -> pd.Series | None:
        return self._cached(("cohorts",), super().cohorts)

    def write_state(
        self, partition_key: str, states: list[pd.DataFrame], before: pd.Series
    ) -> None:
        """Nothing: the defrost state after an hour is the batch step's to keep (building it
        for the whole fleet only to drop it cost a request more than its own diagnosis)."""

    def baselines(self, partition_key: str, table: SignatureTable) -> pd.DataFrame:
        return self._cached(
            ("baselines", partition_key),
            lambda: super(_CachedCauseStore, self).baselines(partition_key, table),
        )

    def write_stops(
        self, partition_key: str, states: list[pd.DataFrame], before: pd.DataFrame
    ) -> None:
        """Nothing: the stop state after an hour is the batch step's to keep."""

    def stops_before(self, partition_key: str, table: SignatureTable) -> pd.DataFrame:
        return self._cached(
            ("stops", partition_key),
            lambda: super(_CachedCauseStore, self).stops_before(partition_key, table),
        )

    def _state_before(self, hour: pd.Timestamp, lookback: float) -> pd.Series:
        return self._cached(
            ("state", hour, lookback),
            lambda: super(_CachedCauseStore, self)._state_before(hour, lookback),
        )


class CauseDiagnosis:
    """:func:`~refrig_assets.incidents.causes.diagnose_partition` for a service: same result,
    nothing written, the hour's context loaded once, and a request's windows diagnosed as
    arrays (:func:`~refrig_assets.incidents.causes.diagnose_windows`: no frame is built for
    them, and the evidence stays objects)."""

    def __init__(self, data_dir: Path):
        self.store = _CachedCauseStore(ReadOnlyStore(data_dir))
        self._signatures: tuple[int | None, SignatureTable] | None = None
        self._indexed: bl.IndexedBaselines | None = None
        self._defrost: DefrostState | None = None
        self._stops: stops.StopState | None = None
        self._registry: tuple[pd.Series, np.ndarray, bl.KeyPositions] | None = None

    def _table(self, stamp: int | None) -> SignatureTable:
        """The signature table (``stamp``: its file's, from :meth:`_CachedCauseStore.refresh`)."""
        if self._signatures is None or self._signatures[0] != stamp:
            self._signatures = (stamp, load_signatures())
        return self._signatures[1]

    def _cohorts(self, devices: np.ndarray) -> np.ndarray:
        """Each device's cohort in the stored registry, as ``with_cohort`` gives it."""
        cohorts = self.store.cohorts()
        if cohorts is None:
            return np.full(len(devices), "unknown", dtype=object)
        memo = self._registry
        if memo is None or memo[0] is not cohorts:  # the store's memo changed
            memo = self._registry = (cohorts, cohorts.to_numpy(), bl.KeyPositions(cohorts.index))
        at = memo[2](devices)
        known = memo[1][np.maximum(at, 0)] if len(memo[1]) else np.full(len(at), None)
        missing = (at < 0) | pd.isna(known)
        return np.array(
            ["unknown" if m else str(c) for c, m in zip(known, missing, strict=True)],
            dtype=object,
        )

    def _indexed_baselines(self, hour_key: str, table: SignatureTable) -> bl.IndexedBaselines:
        baselines = self.store.baselines(hour_key, table)
        indexed = self._indexed
        if indexed is None or indexed.baselines is not baselines:  # the store's memo changed
            indexed = self._indexed = bl.IndexedBaselines(baselines)
        return indexed

    def _defrost_state(self, hour_key: str, table: SignatureTable) -> DefrostState:
        before = self.store.state_before(hour_key, table)
        state = self._defrost
        if state is None or state.before is not before:  # the store's memo changed
            state = self._defrost = DefrostState(before)
        return state

    def _stop_state(self, hour_key: str, table: SignatureTable) -> stops.StopState:
        before = self.store.stops_before(hour_key, table)
        state = self._stops
        if state is None or state.frame is not before:  # the store's memo changed
            state = self._stops = stops.StopState(before)
        return state

    def _derive_stops(self, hour_key: str, windows: Windows, table: SignatureTable) -> None:
        """The compressor stop features of ``windows`` from the stop state before the hour, as
        :func:`~refrig_assets.incidents.causes_store.with_stops` derives them in the batch."""
        stopped, over, _ = stop_features(
            windows.device_id.astype(str),
            windows.ns("start"),
            windows.ns("end"),
            windows.numbers,
            self._stop_state(hour_key, table),
            table,
        )
        windows.numbers[stops.STOPPED] = stopped
        windows.numbers[stops.OVER_LONGEST] = over

    def diagnose(self, hour_key: str, windows: Windows, table: SignatureTable) -> Diagnosis:
        """The diagnosis of ``windows`` (of the hour ``hour_key``; their cohorts set) as
        :func:`~refrig_assets.incidents.causes.diagnose_partition` makes it: the baselines of
        the hours before, hours since the last defrost and the compressor stop features
        (``with_derived``)."""
        indexed = self._indexed_baselines(hour_key, table)
        minutes = windows.numbers.get(bl.DEFROST_MINUTES)
        if minutes is not None and len(windows):
            since, _, _ = defrost_hours(
                windows.device_id,
                windows.ns("start"),
                windows.ns("end"),
                defrosting(minutes, windows.quality_mask),
                self._defrost_state(hour_key, table),
            )
            windows.numbers["hours_since_defrost"] = since
        if uses_stops(table) and stops.DUTY in windows.numbers and len(windows):
            self._derive_stops(hour_key, windows, table)
        return diagnose_windows(windows, indexed, table)

    def probable_causes(self, features: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
        """Probable cause of each window of ``features`` (device_features rows; a ``cohort``
        column is ignored, the stored registry's counts): ``(device_id, window_start)`` → cause,
        kind, confidence, evidence (a list of dicts), each window diagnosed with its hour's
        baselines and defrost state."""
        out: dict[tuple, dict[str, Any]] = {}
        if features.empty:
            return out
        table = self._table(self.store.refresh()[-1])
        windows = Windows.from_frame(features, table, cohort=False)
        windows.cohort = self._cohorts(windows.device_id)
        hours = windows.ns("start") // HOUR_NS
        keys = features["device_id"].tolist(), features["window_start"].tolist()
        for hour in pd.unique(hours):
            rows = np.flatnonzero(hours == hour)
            part = windows if len(rows) == len(windows) else windows.take(rows)
            key = pd.Timestamp(int(hour) * HOUR_NS, tz="UTC").strftime(HOUR_KEY)
            found = self.diagnose(key, part, table)
            confidence = found.confidence.tolist()
            for k, i in enumerate(rows.tolist()):
                out[(keys[0][i], pd.Timestamp(keys[1][i]))] = {
                    "cause": found.cause[k],
                    "kind": found.kind[k],
                    "confidence": confidence[k],
                    "evidence": found.evidence_of(k),
                }
        return out
