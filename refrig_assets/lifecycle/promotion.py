"""Promotion through gates, forced promotion, pinning, rollback and pausing — each one audited.

:func:`evaluate_candidate` scores a candidate and the champion on the same recent feature windows
(no alerts are written), runs the canary criteria, the candidate's absolute thresholds and the
labelled backtest of both, and returns the gate report. :class:`ModelLifecycle` applies
decisions: it is the only code that moves the ``production`` alias or edits a pin, and it writes
an audit record for every change.

A version is *deployable* when it passed the gates or was the first version of its model; any
other version reaches production only with ``force`` (recorded as forced).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from refrig_assets.alerts.generation import generate_alerts
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.storage import ParquetStore
from refrig_assets.evaluation.backtest import backtest
from refrig_assets.lifecycle import audit as events
from refrig_assets.lifecycle.audit import AuditTrail, LifecycleEvent
from refrig_assets.lifecycle.canary import CanaryResult, compare_scores
from refrig_assets.lifecycle.gates import (
    GateReport,
    GateResult,
    absolute_gates,
    champion_gates,
)
from refrig_assets.lifecycle.pinning import model_file, write_pin
from refrig_assets.scoring.score import score_windows, with_cohort
from refrig_assets.training.registry import ModelRegistry

GATE_STATUS_TAG = "gate_status"
GATE_SUMMARY_TAG = "gate_summary"
FIRST_VERSION = "first_version"
PENDING = "pending"
PASSED = "passed"
BLOCKED = "blocked"
FORCED = "forced"
DEPLOYABLE = (FIRST_VERSION, PASSED)
_TAG_LIMIT = 4000  # MLflow tag values are bounded; the audit trail keeps the full results


class LifecycleError(RuntimeError):
    """A lifecycle action that is not allowed (or not possible) in the current state."""


def default_actor() -> str:
    """Who acts when nobody says: ``REFRIG_ACTOR`` or the login name."""
    try:
        return os.environ.get("REFRIG_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


# -- evaluation ---------------------------------------------------------------------------------


def recent_features(store: ParquetStore, hours: int) -> tuple[pd.DataFrame, list[str]]:
    """The newest ``hours`` device_features partitions with each device's cohort."""
    stems = store.partitions("device_features")[-int(hours) :]
    if not stems:
        raise FileNotFoundError(f"no device_features partitions under {store.root}")
    frame = pd.concat(
        [pd.read_parquet(store.root / "device_features" / f"{s}.parquet") for s in stems],
        ignore_index=True,
    )
    return with_cohort(frame, store.read("device_registry")), stems


def read_labels(path: Path) -> pd.DataFrame | None:
    """Labelled faults when the file exists (Parquet or CSV), else None."""
    path = Path(path)
    if not path.exists():
        return None
    labels = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    for col in ("onset", "end"):
        labels[col] = pd.to_datetime(labels[col], utc=True)
    return labels


@dataclass
class Evaluation:
    """A candidate against the champion: gate report, canary result and both backtests."""

    model_id: str
    candidate: str
    champion: str
    report: GateReport
    canary: CanaryResult
    backtests: dict[str, dict[str, float]] = field(default_factory=dict)
    features_span: str = ""
    evaluated_at: datetime | None = None

    @property
    def passed(self) -> bool:
        return self.report.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what the promotion step and the audit trail keep)."""
        return {
            "model_id": self.model_id,
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "summary": self.report.summary(),
            "gates": [g.to_dict() for g in self.report.gates],
            "canary_metrics": self.canary.metrics,
            "backtests": self.backtests,
            "features_span": self.features_span,
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
        }


def _backtest_totals(
    scores: pd.DataFrame, device_registry: pd.DataFrame, labels: pd.DataFrame, features
) -> dict[str, float]:
    """Recall/precision of one version's own alerts over the span of ``features``."""
    previous = load_contract("device_alerts").empty_frame()
    alerts = generate_alerts(scores, device_registry, previous, "canary", "canary")
    start, end = features["window_start"].min(), features["window_end"].max()
    in_span = labels[(labels["onset"] < end) & (labels["end"] > start)]
    device_hours = features["device_id"].nunique() * (end - start).total_seconds() / 3600
    _, totals = backtest(alerts, in_span, device_hours)
    return {k: float(v) for k, v in totals.items()}


def evaluate_candidate(
    registry: ModelRegistry,
    model_id: str,
    candidate: str,
    champion: str,
    features: pd.DataFrame,
    device_registry: pd.DataFrame,
    labels: pd.DataFrame | None,
    policy: dict[str, Any],
    now: datetime | None = None,
) -> Evaluation:
    """Score both versions on the same ``features`` and run every gate of ``policy`` (the
    lifecycle policy merged for ``model_id``). Nothing is written anywhere."""
    now = now or datetime.now(UTC)
    cand_scores = score_windows(registry.load(model_id, candidate), candidate, features, now)
    champ_scores = score_windows(registry.load(model_id, champion), champion, features, now)
    canary = compare_scores(cand_scores, champ_scores, policy["canary"])
    s = cand_scores["anomaly_score"].astype(float)
    tags = registry.version_tags(model_id, candidate)
    measured: dict[str, float | None] = {
        "training_windows": float(tags["training_rows"]) if "training_rows" in tags else None,
        "flag_rate": float(cand_scores["anomaly_flag"].mean()) if len(s) else None,
        "invalid_score_share": float((s.isna() | (s < 0) | (s > 1)).mean()) if len(s) else None,
    }
    backtests: dict[str, dict[str, float]] = {}
    if labels is not None and len(features):
        backtests = {
            "candidate": _backtest_totals(cand_scores, device_registry, labels, features),
            "champion": _backtest_totals(champ_scores, device_registry, labels, features),
        }
        measured |= {
            k: backtests["candidate"][k]
            for k in ("recall", "precision", "false_alerts_per_1000_device_days")
        }
    promotion = policy["promotion"]
    report = GateReport(model_id, candidate, champion)
    report.gates += canary.gates
    report.gates += absolute_gates(measured, promotion["absolute"])
    report.gates += champion_gates(
        backtests.get("candidate", {}), backtests.get("champion", {}), promotion["vs_champion"]
    )
    span = (
        f"{features['window_start'].min():%Y-%m-%d %H:%M}..{features['window_end'].max():%Y-%m-%d %H:%M}"
        if len(features)
        else ""
    )
    return Evaluation(model_id, candidate, champion, report, canary, backtests, span, now)


def unreadable_champion_report(
    model_id: str, candidate: str, champion: str, problem: Exception
) -> GateReport:
    """The gate report of a candidate whose champion cannot be loaded (corrupt, missing): one
    failed gate saying so, so the promotion is recorded as blocked, or as forced with a reason
    (the way to replace a corrupt production version), never silently passed."""
    report = GateReport(model_id, candidate, champion)
    report.gates.append(
        GateResult(
            name="champion_loads",
            kind="vs_champion",
            passed=False,
            value=None,
            rule="loads",
            margin=None,
            detail=(
                f"production v{champion} cannot be compared ({problem}); replace it with "
                "--force and a --reason, or pin a version"
            ),
        )
    )
    return report


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingState:
    """The versions of one model right now."""

    production: str | None
    pinned: str | None
    paused: bool

    @property
    def serving(self) -> str | None:
        """What the next scoring run uses: the pin when set, else the production alias."""
        return self.pinned or self.production


class ModelLifecycle:
    """Moves the production alias and pins, and records each change in the audit trail."""

    def __init__(self, registry: ModelRegistry, audit: AuditTrail, models_dir: Path):
        self.registry = registry
        self.audit = audit
        self.models_dir = Path(models_dir)

    # -- state ------------------------------------------------------------------------------
    def state(self, model_id: str) -> ServingState:
        latest = self.audit.latest(model_id)
        return ServingState(
            production=self.registry.production_version(model_id),
            pinned=load_model_config(model_id, self.models_dir).pinned_version,
            paused=bool(latest.paused) if latest else False,
        )

    def gate_status(self, model_id: str, version: str) -> str | None:
        return self.registry.version_tags(model_id, version).get(GATE_STATUS_TAG)

    def deployable(self, model_id: str, version: str) -> bool:
        return self.gate_status(model_id, version) in DEPLOYABLE

    def _record(self, model_id: str, event: str, actor: str, reason: str, **kw) -> LifecycleEvent:
        st = self.state(model_id)
        return self.audit.append(
            LifecycleEvent(
                model_id=model_id,
                event=event,
                actor=actor,
                reason=reason,
                production_version=st.production,
                pinned_version=st.pinned,
                serving_version=st.serving,
                paused=kw.pop("paused", st.paused),
                **kw,
            )
        )

    def sync_file_pin(self, model_id: str) -> LifecycleEvent | None:
        """Record a pin edited by hand in ``models/<id>.yaml`` that the audit trail has not seen
        (stamped when noticed). Returns the new record, if any."""
        st = self.state(model_id)
        latest = self.audit.latest(model_id)
        recorded = latest.pinned_version if latest else None
        if st.pinned == recorded:
            return None
        where = f"models/{model_id}.yaml"
        if st.pinned is None:
            return self._record(
                model_id,
                events.UNPINNED,
                where,
                "pinned_version cleared in the models file (noticed by the lifecycle)",
                from_version=recorded,
                to_version=st.production,
            )
        unchecked = not self._exists(model_id, st.pinned) or not self.deployable(
            model_id, st.pinned
        )
        return self._record(
            model_id,
            events.PINNED,
            where,
            "pinned_version set in the models file (noticed by the lifecycle)"
            + (f"; version {st.pinned} has not passed the promotion gates" if unchecked else ""),
            from_version=recorded or st.production,
            to_version=st.pinned,
            forced=unchecked,
        )

    def _exists(self, model_id: str, version: str) -> bool:
        return any(v["version"] == str(version) for v in self.registry.versions(model_id))

    # -- registration -----------------------------------------------------------------------
    def record_registration(
        self, model_id: str, version: str, actor: str, checksums: dict[str, str], reason: str
    ) -> LifecycleEvent:
        """Audit a newly registered version with the sha256 of each of its artifact files (what
        serving verifies the artifact against, next to the registry's own tag)."""
        return self._record(
            model_id,
            events.REGISTERED,
            actor,
            reason,
            to_version=str(version),
            gates=[{"artifact": name, "sha256": sha} for name, sha in sorted(checksums.items())],
        )

    def record_not_trained(
        self, model_id: str, actor: str, reason: str, setting: str
    ) -> LifecycleEvent:
        """Audit a training that fitted nothing (``reason``: why, naming the models/
        ``setting`` the data fell short of). Nothing is registered; a production version, if
        the model has one, keeps serving."""
        return self._record(
            model_id, events.NOT_TRAINED, actor, reason, gates=[{"setting": setting}]
        )

    # -- promotion --------------------------------------------------------------------------
    def after_training(self, model_id: str, version: str, actor: str) -> LifecycleEvent | None:
        """A newly registered version: the first one of a model becomes production; any later
        one is a candidate that only the gates (or a forced promotion) can promote."""
        if self.registry.production_version(model_id) is None:
            self.registry.set_production(model_id, version)
            self.registry.set_version_tags(model_id, version, {GATE_STATUS_TAG: FIRST_VERSION})
            return self._record(
                model_id,
                events.PROMOTED,
                actor,
                "first version of the model: nothing to compare with",
                to_version=version,
            )
        self.registry.set_version_tags(model_id, version, {GATE_STATUS_TAG: PENDING})
        return None

    def apply(
        self, report: GateReport, actor: str, force: bool = False, reason: str = ""
    ) -> LifecycleEvent:
        """Promote a candidate whose gate report passed; otherwise record the blocked promotion
        — or, with ``force`` and a reason, promote it anyway as a forced promotion."""
        model_id, candidate = report.model_id, report.candidate
        current = self.registry.production_version(model_id)
        if current != report.champion:
            raise LifecycleError(
                f"{model_id}: the champion is now {current}, the evaluation compared with "
                f"{report.champion}; evaluate again"
            )
        self.sync_file_pin(model_id)
        summary = report.summary()
        gates = [g.to_dict() for g in report.gates]
        if report.passed:
            self.registry.set_production(model_id, candidate)
            self._tag(model_id, candidate, PASSED, summary)
            return self._record(
                model_id,
                events.PROMOTED,
                actor,
                (reason + "; " if reason else "") + summary,
                from_version=current,
                to_version=candidate,
                gates=gates,
            )
        if not force:
            self._tag(model_id, candidate, BLOCKED, summary)
            return self._record(
                model_id,
                events.PROMOTION_BLOCKED,
                actor,
                summary,
                from_version=current,
                to_version=candidate,
                gates=gates,
            )
        if not reason.strip():
            raise LifecycleError("a forced promotion needs a reason")
        self.registry.set_production(model_id, candidate)
        self._tag(model_id, candidate, FORCED, summary)
        return self._record(
            model_id,
            events.PROMOTED_FORCED,
            actor,
            f"{reason} (forced past: {summary})",
            from_version=current,
            to_version=candidate,
            gates=gates,
            forced=True,
        )

    def _tag(self, model_id: str, version: str, status: str, summary: str) -> None:
        self.registry.set_version_tags(
            model_id, version, {GATE_STATUS_TAG: status, GATE_SUMMARY_TAG: summary[:_TAG_LIMIT]}
        )

    # -- progressive rollout (refrig_assets.lifecycle.rollout drives these) ---------------------
    def record(self, model_id: str, event: str, actor: str, reason: str, **kw) -> LifecycleEvent:
        """Append an audit record that carries the serving state after ``event``."""
        return self._record(model_id, event, actor, reason, **kw)

    def set_gate_status(self, model_id: str, version: str, status: str, summary: str) -> None:
        """Tag a version's gate status (``passed`` makes it deployable)."""
        self._tag(model_id, version, status, summary)

    def move_production(
        self, model_id: str, version: str, actor: str, reason: str, event: str, **kw
    ) -> LifecycleEvent:
        """Move the production alias to ``version`` and record ``event`` (a rollout that
        reached all devices)."""
        current = self.registry.production_version(model_id)
        self.registry.set_production(model_id, version)
        return self._record(
            model_id, event, actor, reason, from_version=current, to_version=version, **kw
        )

    # -- pinning and rollback ---------------------------------------------------------------
    def pin(
        self,
        model_id: str,
        version: str,
        actor: str,
        reason: str,
        force: bool = False,
        event: str = events.PINNED,
    ) -> LifecycleEvent:
        """Pin a version in ``models/<id>.yaml``: the next scoring run uses it (no retraining).
        Only deployable versions, unless forced."""
        version = self.registry.find_version(model_id, version)
        self.sync_file_pin(model_id)
        before = self.state(model_id)
        deployable = self.deployable(model_id, version)
        if not deployable and not force:
            status = self.gate_status(model_id, version) or "never evaluated"
            raise LifecycleError(
                f"{model_id} version {version} has not passed the promotion gates ({status}); "
                "pin it with --force and a reason to deploy it anyway"
            )
        if not deployable and not reason.strip():
            raise LifecycleError("a forced pin needs a reason")
        write_pin(model_file(self.models_dir, model_id), version)
        return self._record(
            model_id,
            event,
            actor,
            reason or f"pinned to version {version}",
            from_version=before.serving,
            to_version=version,
            forced=not deployable,
        )

    def unpin(self, model_id: str, actor: str, reason: str = "") -> LifecycleEvent:
        """Clear the pin: scoring follows the production alias again."""
        self.sync_file_pin(model_id)
        before = self.state(model_id)
        if before.pinned is None:
            raise LifecycleError(f"{model_id} is not pinned")
        write_pin(model_file(self.models_dir, model_id), None)
        return self._record(
            model_id,
            events.UNPINNED,
            actor,
            reason or "pin cleared: scoring follows the production alias",
            from_version=before.pinned,
            to_version=before.production,
        )

    def rollback_target(self, model_id: str) -> str:
        """The most recent earlier serving version that is deployable."""
        current = self.state(model_id).serving
        for e in reversed(self.audit.events(model_id)):
            v = e.serving_version
            if v and v != current and self._exists(model_id, v) and self.deployable(model_id, v):
                return v
        older = [
            v["version"]
            for v in self.registry.versions(model_id)
            if current
            and int(v["version"]) < int(current)
            and v["tags"].get(GATE_STATUS_TAG) in (*DEPLOYABLE, None)
        ]
        if older:
            return older[-1]
        raise LifecycleError(f"{model_id}: no earlier deployable version to roll back to")

    def rollback(
        self, model_id: str, actor: str, reason: str, to: str | None = None, force: bool = False
    ) -> LifecycleEvent:
        """Pin the previous good version (or ``to``): the next scoring run uses it."""
        target = self.registry.find_version(model_id, to) if to else self.rollback_target(model_id)
        return self.pin(
            model_id,
            target,
            actor,
            reason or f"rolled back to version {target}",
            force=force,
            event=events.ROLLED_BACK,
        )

    # -- pausing ----------------------------------------------------------------------------
    def is_paused(self, model_id: str) -> bool:
        latest = self.audit.latest(model_id)
        return bool(latest.paused) if latest else False

    def pause(self, model_id: str, actor: str, reason: str) -> LifecycleEvent:
        """Stop scoring this model (its scoring asset writes nothing until resumed)."""
        return self._record(model_id, events.SCORING_PAUSED, actor, reason, paused=True)

    def resume(self, model_id: str, actor: str, reason: str = "") -> LifecycleEvent:
        if not self.is_paused(model_id):
            raise LifecycleError(f"{model_id} is not paused")
        return self._record(
            model_id, events.SCORING_RESUMED, actor, reason or "scoring resumed", paused=False
        )
