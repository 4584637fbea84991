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

import pandas as pd

from refrig_assets.core.config import config_path
from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents import baselines as bl
from refrig_assets.incidents.causes import diagnose
from refrig_assets.incidents.causes_store import BASELINES, FEATURES, STATE, CauseStore
from refrig_assets.incidents.signatures import SignatureTable, load_signatures


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

    def _files(self) -> tuple:
        root = self.store.root
        return tuple(
            _stamp(p)
            for p in (
                root / FEATURES,
                root / BASELINES,
                root / STATE,
                self.store.path("device_registry"),
                config_path("causes"),
            )
        )

    def _cached(self, key: tuple, compute):
        files = self._files()
        with self._lock:
            if files != self._seen:
                self._memo, self._seen = {}, files
            if key in self._memo:
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

    def _state_before(self, hour: pd.Timestamp, lookback: float) -> pd.Series:
        return self._cached(
            ("state", hour, lookback),
            lambda: super(_CachedCauseStore, self)._state_before(hour, lookback),
        )


class CauseDiagnosis:
    """:func:`~refrig_assets.incidents.causes.diagnose_partition` for a service: same result,
    nothing written, the hour's context loaded once."""

    def __init__(self, data_dir: Path):
        self.store = _CachedCauseStore(ReadOnlyStore(data_dir))
        self._signatures: tuple[int | None, SignatureTable] | None = None
        self._indexed: bl.IndexedBaselines | None = None

    def _table(self) -> SignatureTable:
        stamp = _stamp(config_path("causes"))
        if self._signatures is None or self._signatures[0] != stamp:
            self._signatures = (stamp, load_signatures())
        return self._signatures[1]

    def partition(self, partition_key: str, features: pd.DataFrame) -> pd.DataFrame:
        """The diagnosis of ``features`` (windows of the hour ``partition_key``)."""
        table = self._table()
        frame = self.store.with_cohort(features)
        baselines = self.store.baselines(partition_key, table)
        frame = self.store.with_derived(partition_key, frame, table)
        indexed = self._indexed
        if indexed is None or indexed.baselines is not baselines:  # the store's memo changed
            indexed = self._indexed = bl.IndexedBaselines(baselines)
        return diagnose(frame, baselines, table, indexed=indexed)
