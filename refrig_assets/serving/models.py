"""The detector versions the online service scores with, and their hot reload.

For every hourly detector the service serves what its batch scoring asset would serve now: the
pin (``pinned_version`` in models/), else the audited production version with its artifact
verified (:func:`refrig_assets.lifecycle.integrity.resolve_serving`: a corrupt artifact gives way
to the last good version); during a progressive rollout the candidate serves the devices whose
stable hash (:meth:`refrig_assets.lifecycle.rollout_state.Rollout.serves`) puts them on its side,
exactly as the score assets split them. A paused model serves nothing, as in batch.

The service only reads the lifecycle: it never moves an alias, aborts a rollout or pauses a
model. :class:`ModelSet` holds an immutable :class:`ModelSnapshot`; :meth:`ModelSet.refresh`
compares a cheap fingerprint (pin, alias, newest audit event, rollout step) with the one it
holds, loads the new versions and swaps the snapshot in one assignment. A request takes the
snapshot once when it starts, so requests already running finish on the versions they began
with while the next one gets the new versions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.model_config import hourly_model_ids, load_model_config
from refrig_assets.core.settings import Settings
from refrig_assets.detectors.base import Detector
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.integrity import resolve_serving
from refrig_assets.lifecycle.promotion import ModelLifecycle
from refrig_assets.lifecycle.rollout import Rollout, RolloutManager
from refrig_assets.training.registry import ModelRegistry, RegistryError

LOG = logging.getLogger(__name__)
PINNED, PRODUCTION, FALLBACK = "pinned", "production", "fallback"
CANDIDATE, CHAMPION = "rollout_candidate", "rollout_champion"


@dataclass(frozen=True)
class Side:
    """One version serving some of a model's devices (deployment: pinned, production, fallback,
    rollout_candidate or rollout_champion)."""

    version: str
    detector: Detector
    deployment: str


@dataclass(frozen=True)
class ServedModel:
    """What scores one model now: one version, or two split by device during a rollout."""

    model_id: str
    sides: tuple[Side, ...]
    rollout: Rollout | None = None
    problems: tuple[str, ...] = ()

    def split(self, device_ids: pd.Series) -> list[tuple[Side, np.ndarray]]:
        """Each side with the mask of the devices it serves (the batch path's stable hash)."""
        if self.rollout is None:
            return [(self.sides[0], np.ones(len(device_ids), dtype=bool))]
        on_candidate = self.rollout.serves(device_ids)
        candidate, champion = self.sides
        return [(candidate, on_candidate), (champion, ~on_candidate)]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "versions": [{"version": s.version, "deployment": s.deployment} for s in self.sides],
        }
        if self.rollout is not None:
            out["rollout"] = {
                "candidate": self.rollout.candidate,
                "champion": self.rollout.champion,
                "share": self.rollout.share,
                "step": f"{self.rollout.step + 1}/{len(self.rollout.steps)}",
            }
        if self.problems:
            out["problems"] = list(self.problems)
        return out


@dataclass(frozen=True)
class ModelSnapshot:
    """The models serving at one moment, and the models that do not (paused, no version)."""

    models: dict[str, ServedModel]
    unavailable: dict[str, str]
    fingerprint: tuple
    loaded_at: datetime

    def describe(self) -> dict[str, Any]:
        return {
            "loaded_at": self.loaded_at.isoformat(),
            "models": [m.describe() for m in self.models.values()],
            "unavailable": dict(self.unavailable),
        }


@dataclass
class ModelSet:
    """The snapshot in use, refreshed when the lifecycle changes (see the module docstring)."""

    settings: Settings
    check_seconds: float
    clock: Callable[[], float] = time.monotonic
    on_reload: Callable[[ModelSnapshot], None] | None = None
    _snapshot: ModelSnapshot | None = None
    _checked: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.registry = ModelRegistry(
            self.settings.mlflow_tracking_uri, self.settings.mlflow_artifacts_dir
        )
        self.lifecycle = ModelLifecycle(
            self.registry,
            AuditTrail(lifecycle_db_url(self.settings.alerts_db_url)),
            self.settings.models_dir,
        )
        self.rollouts = RolloutManager(self.lifecycle)

    def current(self) -> ModelSnapshot:
        """The snapshot a request scores with (refreshed first when ``check_seconds`` is 0, or
        on first use)."""
        if self._snapshot is None or self.check_seconds == 0:
            self.refresh()
        assert self._snapshot is not None
        return self._snapshot

    def _fingerprint(self) -> tuple:
        parts = []
        for model_id in hourly_model_ids(self.settings.models_dir):
            latest = self.lifecycle.audit.latest(model_id)
            rollout = self.rollouts.active(model_id)
            parts.append(
                (
                    model_id,
                    load_model_config(model_id, self.settings.models_dir).pinned_version,
                    self.registry.production_version(model_id),
                    latest.id if latest is not None else None,
                    (rollout.id, rollout.step, rollout.status) if rollout is not None else None,
                )
            )
        return tuple(parts)

    def refresh(self) -> bool:
        """Reload when the pin, alias, audit trail or rollout changed; True when a new snapshot
        was swapped in. A failing reload keeps the snapshot in use (and raises only when there
        is none yet)."""
        with self._lock:
            self._checked = self.clock()
            fingerprint = self._fingerprint()
            if self._snapshot is not None and fingerprint == self._snapshot.fingerprint:
                return False
            snapshot = self._load(fingerprint)
            self._snapshot = snapshot
        if self.on_reload is not None:
            self.on_reload(snapshot)
        return True

    def _load(self, fingerprint: tuple) -> ModelSnapshot:
        models: dict[str, ServedModel] = {}
        unavailable: dict[str, str] = {}
        for model_id, pinned, *_ in fingerprint:
            if self.lifecycle.is_paused(model_id):
                unavailable[model_id] = "paused (refrig models resume to serve it again)"
                continue
            try:
                history = self.lifecycle.audit.events(model_id)
                resolution = resolve_serving(self.registry, history, model_id, pinned)
            except RegistryError as exc:
                unavailable[model_id] = str(exc)
                continue
            if resolution.version is None:
                unavailable[model_id] = resolution.summary()
                continue
            deployment = PINNED if pinned else PRODUCTION
            if resolution.fell_back:
                deployment = FALLBACK
            main = Side(resolution.version, resolution.detector, deployment)
            rollout = None
            if not pinned and not resolution.degraded:
                active = self.rollouts.active(model_id)
                # The batch path serves a rollout only while its champion is production (it
                # aborts it otherwise; the service leaves that to the batch path).
                if active is not None and active.champion == resolution.version:
                    rollout = active
            if rollout is not None:
                candidate = self.registry.load(model_id, rollout.candidate)
                sides: tuple[Side, ...] = (
                    Side(rollout.candidate, candidate, CANDIDATE),
                    Side(main.version, main.detector, CHAMPION),
                )
            else:
                sides = (main,)
            models[model_id] = ServedModel(model_id, sides, rollout, tuple(resolution.problems))
        return ModelSnapshot(models, unavailable, fingerprint, datetime.now(UTC))

    def watch(self) -> None:
        """Refresh every ``check_seconds`` until :meth:`stop` (run in a daemon thread); a failed
        check keeps the versions in use and is retried at the next tick."""
        while not self._stop.wait(self.check_seconds):
            try:
                self.refresh()
            except Exception:
                LOG.warning(
                    "model reload check failed; the loaded versions keep serving",
                    exc_info=True,
                )

    def start_watching(self) -> threading.Thread | None:
        """Start :meth:`watch` in a daemon thread (none when every request checks itself)."""
        if self.check_seconds == 0:
            return None
        thread = threading.Thread(target=self.watch, name="model-reload", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self.lifecycle.audit.close()
