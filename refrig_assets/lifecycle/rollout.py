"""Progressive rollout: a candidate that passed its gates serves a growing share of devices.

The candidate first serves the first share of ``rollout.steps`` (10 % → 50 % → 100 % by default,
``config/lifecycle.yaml``) while the other devices stay on the champion. Which devices is
stable: a device's bucket is the sha256 hash of the model id and its device id mapped to
[0, 1), and it is on the candidate while its bucket is below the share — so a device on the
candidate at 10 % stays on it at 50 %. Its scores are the ones its alerts are built from (every
score row carries the version that scored it).

Each scored partition records, per side (candidate / champion), the devices, input windows,
valid and invalid scores, flags, whether scoring raised and how long it took. The health gates
compare the candidate's devices with the champion's over the partitions of the current step:
error rate, empty-prediction rate, flag rate and flag volume against the champion, scoring
latency against the champion. A failing gate rolls the rollout back at once (all devices on the
champion, the candidate tagged ``rollout_failed``); a step whose gates held over
``partitions_per_step`` partitions advances; reaching 1.0 moves the production alias. Each
change is a row in the lifecycle audit trail, written through :class:`ModelLifecycle`.

The rollout state (:mod:`.rollout_state`) lives next to the audit trail, in the same database.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.lifecycle import audit as events
from refrig_assets.lifecycle.audit import LifecycleEvent
from refrig_assets.lifecycle.gates import GateReport, GateResult, judge, parse_rule
from refrig_assets.lifecycle.policy import PolicyError, load_policy, setting
from refrig_assets.lifecycle.promotion import PASSED, LifecycleError, ModelLifecycle
from refrig_assets.lifecycle.rollout_state import (  # noqa: F401 - the rollout's public names
    ABORTED,
    ACTIVE,
    CANDIDATE,
    CHAMPION,
    COMPLETED,
    ROLLED_BACK,
    ArmObservation,
    Rollout,
    RolloutStore,
    device_bucket,
    device_buckets,
    serves_candidate,
)

ROLLOUT = "rollout"  # the kind of its gates
ROLLOUT_FAILED = "rollout_failed"  # gate status of a candidate whose rollout rolled back
WAIT, ADVANCE, COMPLETE, ROLL_BACK = "wait", "advance", "complete", "roll_back"
GATES = (
    "error_rate",
    "empty_prediction_rate_increase",
    "flag_rate",
    "flag_volume_ratio_high",
    "flag_volume_ratio_low",
    "latency_ratio",
)
# Gates a step needs judged (not merely "not judged yet") before it may advance.
EVIDENCE_NEEDED = ("error_rate", "empty_prediction_rate_increase", "flag_rate")


# -- policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutPolicy:
    """The ``rollout:`` section of the lifecycle policy (merged for one model)."""

    enabled: bool
    steps: tuple[float, ...]
    partitions_per_step: int
    gates: dict[str, Any]
    min_candidate_windows: int
    min_expected_flags: float
    latency_min_windows: int

    @staticmethod
    def from_policy(policy: dict[str, Any]) -> RolloutPolicy:
        """Read and check the section; errors name the file and the setting."""
        where = f"{policy.get('path', 'config/lifecycle.yaml')}: rollout"
        steps = tuple(float(s) for s in setting(policy, "rollout.steps"))
        if (
            not steps
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False))
            or steps[0] <= 0
            or steps[-1] != 1.0
        ):
            raise PolicyError(f"{where}.steps must increase within (0, 1] and end at 1.0: {steps}")
        gates = dict(setting(policy, "rollout.gates"))
        unknown = set(gates) - set(GATES)
        if unknown:
            raise PolicyError(f"{where}.gates: unknown gate(s) {sorted(unknown)} (known: {GATES})")
        for name, rule in gates.items():
            try:
                parse_rule(rule, f"{where}.gates.{name}")
            except ValueError as exc:
                raise PolicyError(str(exc)) from exc
        partitions = int(setting(policy, "rollout.partitions_per_step"))
        if partitions < 1:
            raise PolicyError(f"{where}.partitions_per_step must be at least 1")
        return RolloutPolicy(
            enabled=bool(setting(policy, "rollout.enabled")),
            steps=steps,
            partitions_per_step=partitions,
            gates=gates,
            min_candidate_windows=int(setting(policy, "rollout.min_candidate_windows")),
            min_expected_flags=float(setting(policy, "rollout.min_expected_flags")),
            latency_min_windows=int(setting(policy, "rollout.latency_min_windows")),
        )

    @staticmethod
    def load(models_dir, model_id: str) -> RolloutPolicy:
        return RolloutPolicy.from_policy(load_policy(models_dir, model_id))


# -- health gates -------------------------------------------------------------------------------


def _not_judged(name: str, why: str, value: float | None = None) -> GateResult:
    return GateResult(name, ROLLOUT, True, value, "n/a", None, f"{name}: not judged yet — {why}")


def _judged(name: str, value: float, rules: dict[str, Any], context: str) -> GateResult:
    result = judge(name, ROLLOUT, value, rules.get(name))
    if result.rule == "off":
        return result
    return dataclasses.replace(result, detail=f"{result.detail} [{context}]")


def _totals(frame: pd.DataFrame) -> dict[str, float]:
    ok = frame[~frame["failed"].astype(bool)]
    windows_in = float(ok["windows_in"].sum())
    valid = float((ok["windows_scored"] - ok["invalid_scores"]).sum())
    return {
        "attempts": float(len(frame)),
        "failed": float(frame["failed"].astype(bool).sum()),
        "windows_in": windows_in,
        "valid": valid,
        "flags": float(ok["flags"].sum()),
        "seconds": float(ok["seconds"].sum()),
        "empty_rate": 1.0 - valid / windows_in if windows_in else float("nan"),
        "flag_rate": float(ok["flags"].sum()) / valid if valid else float("nan"),
    }


def health_gates(observations: pd.DataFrame, policy: RolloutPolicy) -> list[GateResult]:
    """The candidate's devices against the champion's over ``observations`` (one step)."""
    rules = policy.gates
    cand = _totals(observations[observations["arm"] == CANDIDATE])
    champ = _totals(observations[observations["arm"] == CHAMPION])
    gates = []
    if cand["attempts"]:
        gates.append(
            _judged(
                "error_rate",
                cand["failed"] / cand["attempts"],
                rules,
                f"{cand['failed']:.0f} of {cand['attempts']:.0f} candidate partitions failed",
            )
        )
    else:
        gates.append(_not_judged("error_rate", "the candidate scored nothing yet"))
    enough = cand["windows_in"] >= max(1, policy.min_candidate_windows)
    too_few = f"{cand['windows_in']:.0f} candidate windows (needs {policy.min_candidate_windows})"
    if enough and champ["windows_in"]:
        gates.append(
            _judged(
                "empty_prediction_rate_increase",
                cand["empty_rate"] - champ["empty_rate"],
                rules,
                f"candidate {cand['empty_rate']:.2%} of {cand['windows_in']:.0f} windows "
                f"without a valid score, champion {champ['empty_rate']:.2%} of "
                f"{champ['windows_in']:.0f}",
            )
        )
    else:
        gates.append(_not_judged("empty_prediction_rate_increase", too_few))
    if enough and cand["valid"]:
        gates.append(
            _judged(
                "flag_rate",
                cand["flag_rate"],
                rules,
                f"{cand['flags']:.0f} of {cand['valid']:.0f} candidate windows flagged",
            )
        )
    else:
        gates.append(_not_judged("flag_rate", too_few))
    expected = (
        champ["flag_rate"] * cand["valid"] if champ["valid"] and cand["valid"] else float("nan")
    )
    for name in ("flag_volume_ratio_high", "flag_volume_ratio_low"):
        if expected >= policy.min_expected_flags:
            gates.append(
                _judged(
                    name,
                    cand["flag_rate"] / champ["flag_rate"],
                    rules,
                    f"candidate flags {cand['flag_rate']:.2%} of windows, champion "
                    f"{champ['flag_rate']:.2%}",
                )
            )
        else:
            gates.append(
                _not_judged(
                    name,
                    f"{0.0 if expected != expected else expected:.1f} flags expected at the "
                    f"champion's rate (needs {policy.min_expected_flags:g})",
                )
            )
    least = min(cand["windows_in"], champ["windows_in"])
    if least >= policy.latency_min_windows and champ["seconds"] > 0:
        c_ms = 1e6 * cand["seconds"] / cand["windows_in"]
        p_ms = 1e6 * champ["seconds"] / champ["windows_in"]
        gates.append(
            _judged(
                "latency_ratio",
                c_ms / p_ms,
                rules,
                f"candidate {c_ms:.1f} ms per 1,000 windows, champion {p_ms:.1f}",
            )
        )
    else:
        gates.append(
            _not_judged(
                "latency_ratio",
                f"{least:.0f} windows on the smaller side (needs {policy.latency_min_windows})",
            )
        )
    return gates


@dataclass(frozen=True)
class RolloutDecision:
    """What the gates of the current step say: wait, advance, complete or roll back."""

    action: str
    rollout: Rollout
    gates: list[GateResult]
    partitions: int
    reason: str

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def gate_values(self) -> dict[str, float | None]:
        return {g.name: g.value for g in self.gates}


def decide(rollout: Rollout, observations: pd.DataFrame, policy: RolloutPolicy) -> RolloutDecision:
    """Judge the current step of ``rollout`` from its observations (all steps may be given)."""
    step = observations[observations["step"] == rollout.step] if len(observations) else observations
    cand = step[step["arm"] == CANDIDATE] if len(step) else step
    if cand.empty:
        return RolloutDecision(WAIT, rollout, [], 0, "no partition scored in this step yet")
    gates = health_gates(step, policy)
    failed = [g for g in gates if not g.passed]
    healthy = int(cand.loc[~cand["failed"].astype(bool), "partition_key"].nunique())
    if failed:
        return RolloutDecision(
            ROLL_BACK, rollout, gates, healthy, "; ".join(g.detail for g in failed)
        )
    unjudged = [g.name for g in gates if g.name in EVIDENCE_NEEDED and g.rule == "n/a"]
    if unjudged:
        return RolloutDecision(
            WAIT, rollout, gates, healthy, f"too little evidence yet for {', '.join(unjudged)}"
        )
    if healthy < policy.partitions_per_step:
        return RolloutDecision(
            WAIT,
            rollout,
            gates,
            healthy,
            f"gates hold over {healthy} of {policy.partitions_per_step} partitions",
        )
    action = COMPLETE if rollout.steps[rollout.step + 1] >= 1.0 else ADVANCE
    return RolloutDecision(
        action, rollout, gates, healthy, f"gates held over {healthy} scored partitions"
    )


# -- decisions ----------------------------------------------------------------------------------


class RolloutManager:
    """Starts, advances, completes and rolls back rollouts; every change is audited through
    :class:`ModelLifecycle` (the only code that moves the production alias)."""

    def __init__(self, lifecycle: ModelLifecycle):
        self.lifecycle = lifecycle
        self.store = RolloutStore(lifecycle.audit.engine, clock=lifecycle.audit._clock)

    def policy(self, model_id: str) -> RolloutPolicy:
        return RolloutPolicy.load(self.lifecycle.models_dir, model_id)

    def active(self, model_id: str) -> Rollout | None:
        return self.store.active(model_id)

    def start(self, report: GateReport, actor: str, reason: str = "") -> LifecycleEvent:
        """Start serving a candidate whose gate report passed to the first share of devices.
        A policy whose first step is 1.0 promotes at once."""
        model_id, candidate, champion = report.model_id, report.candidate, report.champion
        if not report.passed:
            raise LifecycleError(
                f"{model_id} v{candidate} did not pass its gates: {report.summary()}"
            )
        current = self.lifecycle.registry.production_version(model_id)
        if champion is None or current != champion:
            raise LifecycleError(
                f"{model_id}: the champion is now {current}, the evaluation compared with "
                f"{champion}; evaluate again"
            )
        if (running := self.active(model_id)) is not None:
            raise LifecycleError(
                f"{model_id}: the rollout of v{running.candidate} is in progress "
                f"({running.describe()}); abort it first"
            )
        policy = self.policy(model_id)
        if policy.steps[0] >= 1.0:
            return self.lifecycle.apply(report, actor, reason=reason)
        self.lifecycle.sync_file_pin(model_id)
        rollout = self.store.create(model_id, candidate, champion, policy.steps, actor)
        self.lifecycle.set_gate_status(model_id, candidate, PASSED, report.summary())
        return self.lifecycle.record(
            model_id,
            events.ROLLOUT_STARTED,
            actor,
            (reason + "; " if reason else "") + f"{report.summary()}; rollout {rollout.describe()}",
            from_version=champion,
            to_version=candidate,
            gates=[g.to_dict() for g in report.gates],
        )

    def observe(
        self, rollout: Rollout, partition_key: str, observations: Sequence[ArmObservation]
    ) -> RolloutDecision:
        """Record one scored partition and judge the current step (nothing is applied)."""
        self.store.record(rollout, partition_key, observations)
        return self.judge(rollout)

    def judge(self, rollout: Rollout) -> RolloutDecision:
        """The current step's decision from the observations recorded so far."""
        policy = self.policy(rollout.model_id)
        return decide(rollout, self.store.observations(rollout.id, rollout.step), policy)

    def apply(self, decision: RolloutDecision, actor: str) -> LifecycleEvent | None:
        """Carry a decision out: advance the share, complete (production alias moves to the
        candidate) or roll back (all devices on the champion). ``wait`` changes nothing."""
        rollout, gates = decision.rollout, [g.to_dict() for g in decision.gates]
        model_id, where = rollout.model_id, f"step {rollout.step + 1}/{len(rollout.steps)}"
        if decision.action == WAIT:
            return None
        if decision.action == ROLL_BACK:
            self.store.finish(rollout, ROLLED_BACK)
            why = f"health gates failed at {where} ({rollout.share:.0%} of devices)"
            self.lifecycle.set_gate_status(
                model_id, rollout.candidate, ROLLOUT_FAILED, f"{why}: {decision.reason}"
            )
            return self.lifecycle.record(
                model_id,
                events.ROLLOUT_ROLLED_BACK,
                actor,
                f"{why}: {decision.reason}; every device is back on v{rollout.champion}",
                from_version=rollout.candidate,
                to_version=rollout.champion,
                gates=gates,
            )
        if decision.action == COMPLETE:
            self.store.finish(rollout, COMPLETED)
            return self.lifecycle.move_production(
                model_id,
                rollout.candidate,
                actor,
                f"{where} healthy ({decision.reason}); v{rollout.candidate} serves every device "
                "and becomes production",
                events.ROLLOUT_COMPLETED,
                gates=gates,
            )
        advanced = self.store.set_step(rollout, rollout.step + 1)
        return self.lifecycle.record(
            model_id,
            events.ROLLOUT_ADVANCED,
            actor,
            f"{where} healthy ({decision.reason}); {advanced.describe()}",
            from_version=rollout.champion,
            to_version=rollout.candidate,
            gates=gates,
        )

    def advance(self, model_id: str, actor: str) -> LifecycleEvent:
        """Advance by hand before the step has its partitions; refused while a gate fails."""
        rollout = self._require(model_id)
        decision = self.judge(rollout)
        if decision.action == ROLL_BACK:
            raise LifecycleError(f"{model_id}: the health gates fail: {decision.reason}")
        action = COMPLETE if rollout.steps[rollout.step + 1] >= 1.0 else ADVANCE
        reason = f"advanced by hand after {decision.partitions} scored partitions"
        return self.apply(dataclasses.replace(decision, action=action, reason=reason), actor)

    def abort(self, model_id: str, actor: str, reason: str) -> LifecycleEvent:
        """End the rollout by hand: every device back on the champion."""
        rollout = self._require(model_id)
        self.store.finish(rollout, ABORTED)
        return self.lifecycle.record(
            model_id,
            events.ROLLOUT_ABORTED,
            actor,
            f"{reason or 'rollout aborted'} (at {rollout.describe()}); every device is back on "
            f"v{rollout.champion}",
            from_version=rollout.candidate,
            to_version=rollout.champion,
        )

    def serving(self, model_id: str, pinned: str | None) -> Rollout | None:
        """The rollout scoring should serve now: none while a version is pinned (the pin
        wins); a rollout whose champion is no longer production is aborted."""
        rollout = self.active(model_id)
        if rollout is None or pinned:
            return None
        production = self.lifecycle.registry.production_version(model_id)
        if production != rollout.champion:
            self.abort(
                model_id,
                "lifecycle",
                f"production moved to v{production} outside the rollout",
            )
            return None
        return rollout

    def _require(self, model_id: str) -> Rollout:
        rollout = self.active(model_id)
        if rollout is None:
            raise LifecycleError(f"{model_id}: no rollout in progress")
        return rollout


# -- serving one partition ----------------------------------------------------------------------

# (detector, version, device selector) -> (window starts of the input, scores)
ScoreSide = Callable[
    [Any, str, Callable[[pd.Series], np.ndarray]], tuple[pd.DataFrame, pd.DataFrame]
]


@dataclass
class ServedPartition:
    """One partition scored during a rollout: each device's rows by the version serving it."""

    starts: pd.DataFrame
    scores: pd.DataFrame
    observations: list[ArmObservation]
    decision: RolloutDecision
    event: LifecycleEvent | None
    fallback: str = ""  # why the candidate's devices were scored by the champion, if they were

    def versions(self) -> dict[str, dict[str, Any]]:
        """Per side: version, devices, windows, flags, failed, seconds, ms per 1,000 windows."""
        out = {}
        for o in self.observations:
            out[o.arm] = {
                "version": o.version,
                "devices": o.devices,
                "windows_in": o.windows_in,
                "windows_scored": o.windows_scored,
                "invalid_scores": o.invalid_scores,
                "flags": o.flags,
                "failed": o.failed,
                "error": o.error,
                "seconds": round(o.seconds, 4),
                "ms_per_1k_windows": round(1e6 * o.seconds / o.windows_in, 2)
                if o.windows_in
                else None,
            }
        return out


def serve_partition(
    manager: RolloutManager,
    rollout: Rollout,
    partition_key: str,
    load: Callable[[str], Any],
    score_side: ScoreSide,
    actor: str,
) -> ServedPartition:
    """Score the candidate's devices with the candidate and the rest with the champion, record
    what each side did, judge the step and apply the decision.

    A candidate that raises or returns invalid scores does not serve this partition: its
    devices are scored by the champion (alerts keep coming) and the gates see the failure. When
    the decision is a rollback, the candidate's rows are replaced by the champion's before
    anything is written, so a candidate whose gates failed drives no alert of this partition.
    The champion failing fails the partition, as without a rollout."""

    def on_candidate(ids: pd.Series) -> np.ndarray:
        return rollout.serves(ids)

    def on_champion(ids: pd.Series) -> np.ndarray:
        return ~rollout.serves(ids)

    champion = load(rollout.champion)
    t0 = time.perf_counter()
    champ_starts, champ_scores = score_side(champion, rollout.champion, on_champion)
    champ_obs = ArmObservation.of(
        CHAMPION, rollout.champion, len(champ_starts), champ_scores, time.perf_counter() - t0
    )
    fallback = ""
    cand_starts = cand_scores = None
    try:
        candidate = load(rollout.candidate)
        t0 = time.perf_counter()
        cand_starts, cand_scores = score_side(candidate, rollout.candidate, on_candidate)
        cand_obs = ArmObservation.of(
            CANDIDATE, rollout.candidate, len(cand_starts), cand_scores, time.perf_counter() - t0
        )
        if cand_obs.invalid_scores:
            fallback = f"v{rollout.candidate} returned {cand_obs.invalid_scores} invalid scores"
    except Exception as exc:  # any failure of the candidate is a health signal, not a crash
        cand_obs = ArmObservation(
            CANDIDATE, rollout.candidate, failed=True, error=f"{type(exc).__name__}: {exc}"
        )
        fallback = f"v{rollout.candidate} failed: {cand_obs.error}"
    observations = [cand_obs, champ_obs]
    decision = manager.observe(rollout, partition_key, observations)
    if fallback or decision.action == ROLL_BACK:
        cand_starts, cand_scores = score_side(champion, rollout.champion, on_candidate)
        fallback = fallback or f"rolled back: {decision.reason}"
    event = manager.apply(decision, actor)
    frames = [f for f in (champ_scores, cand_scores) if f is not None and len(f)]
    scores = pd.concat(frames, ignore_index=True) if frames else champ_scores
    starts = pd.concat([champ_starts, cand_starts], ignore_index=True)
    return ServedPartition(starts, scores, observations, decision, event, fallback)
