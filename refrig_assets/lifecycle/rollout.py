"""Progressive rollout: a candidate that passed its gates serves a growing share of devices.

The candidate first serves the first share of ``rollout.steps`` (10 % → 50 % → 100 % by default,
``models/_lifecycle.yaml``) while the other devices stay on the champion. Which devices is
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

The rollout state lives next to the audit trail (same database): ``model_rollouts`` (one row per
rollout, at most one active per model) and ``model_rollout_observations``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.store import UTCDateTime
from refrig_assets.lifecycle import audit as events
from refrig_assets.lifecycle.audit import LifecycleEvent
from refrig_assets.lifecycle.gates import GateReport, GateResult, judge, parse_rule
from refrig_assets.lifecycle.policy import POLICY_FILE, PolicyError, load_policy, setting
from refrig_assets.lifecycle.promotion import PASSED, LifecycleError, ModelLifecycle

ROLLOUT = "rollout"  # the kind of its gates
ROLLOUT_FAILED = "rollout_failed"  # gate status of a candidate whose rollout rolled back
ACTIVE, COMPLETED, ROLLED_BACK, ABORTED = "active", "completed", "rolled_back", "aborted"
CANDIDATE, CHAMPION = "candidate", "champion"
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
ROLLOUTS_TABLE = "model_rollouts"
OBSERVATIONS_TABLE = "model_rollout_observations"


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
        where = f"{policy.get('path', POLICY_FILE)}: rollout"
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


# -- stable device assignment -------------------------------------------------------------------


def device_bucket(device_id: str, salt: str = "") -> float:
    """A device's place in [0, 1): the first 53 bits of sha256(salt/device_id)."""
    digest = hashlib.sha256(f"{salt}/{device_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def device_buckets(device_ids: Sequence[str] | pd.Series, salt: str = "") -> np.ndarray:
    """:func:`device_bucket` of each id (each distinct id hashed once)."""
    codes, uniques = pd.factorize(pd.Series(device_ids, dtype=object).astype(str))
    buckets = np.array([device_bucket(d, salt) for d in uniques], dtype=float)
    return buckets[codes] if len(codes) else np.empty(0)


def serves_candidate(device_id: str, share: float, salt: str = "") -> bool:
    """Whether ``device_id`` is on the candidate when it serves ``share`` of the devices."""
    return device_bucket(device_id, salt) < share


# -- state --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """One rollout of a candidate against the champion it started from."""

    id: int
    model_id: str
    candidate: str
    champion: str
    steps: tuple[float, ...]
    step: int
    status: str
    started_by: str
    started_at: datetime
    step_started_at: datetime
    ended_at: datetime | None = None

    @property
    def share(self) -> float:
        """Share of the devices the candidate serves now."""
        return self.steps[self.step]

    def serves(self, device_ids: Sequence[str] | pd.Series) -> np.ndarray:
        """True for each device the candidate serves (salt: the model id)."""
        return device_buckets(device_ids, self.model_id) < self.share

    def describe(self) -> str:
        return (
            f"step {self.step + 1}/{len(self.steps)}: v{self.candidate} serves "
            f"{self.share:.0%} of devices, v{self.champion} the rest"
        )


@dataclass(frozen=True)
class ArmObservation:
    """What one side (candidate or champion) did in one scored partition."""

    arm: str
    version: str
    devices: int = 0
    windows_in: int = 0
    windows_scored: int = 0
    invalid_scores: int = 0
    flags: int = 0
    failed: bool = False
    seconds: float = 0.0
    error: str = ""

    @staticmethod
    def of(arm: str, version: str, windows_in: int, scores: pd.DataFrame, seconds: float):
        """Counts from one side's scores (invalid: NaN or outside [0, 1])."""
        s = pd.to_numeric(scores["anomaly_score"], errors="coerce").to_numpy(dtype=float)
        invalid = ~((s >= 0) & (s <= 1))
        return ArmObservation(
            arm=arm,
            version=str(version),
            devices=int(scores["device_id"].nunique()),
            windows_in=int(windows_in),
            windows_scored=len(scores),
            invalid_scores=int(invalid.sum()),
            flags=int(scores["anomaly_flag"].to_numpy(dtype=bool)[~invalid].sum()),
            seconds=float(seconds),
        )


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    rollouts = sa.Table(
        ROLLOUTS_TABLE,
        metadata,
        sa.Column("id", key, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(200), nullable=False, index=True),
        sa.Column("candidate", sa.String(40), nullable=False),
        sa.Column("champion", sa.String(40), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("step_started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    sa.Index(
        f"{ROLLOUTS_TABLE}_one_active",
        rollouts.c.model_id,
        unique=True,
        sqlite_where=rollouts.c.status == ACTIVE,
        postgresql_where=rollouts.c.status == ACTIVE,
    )
    observations = sa.Table(
        OBSERVATIONS_TABLE,
        metadata,
        sa.Column("id", key, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", key, sa.ForeignKey(f"{ROLLOUTS_TABLE}.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.String(40), nullable=False),
        sa.Column("arm", sa.String(20), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("windows_in", sa.BigInteger(), nullable=False),
        sa.Column("windows_scored", sa.BigInteger(), nullable=False),
        sa.Column("invalid_scores", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("rollout_id", "step", "partition_key", "arm"),
    )
    return rollouts, observations


class RolloutStore:
    """Rollouts and their per-partition observations, on the audit trail's database engine."""

    def __init__(self, engine: sa.engine.Engine, *, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self.metadata = sa.MetaData()
        self.rollouts, self.table = _tables(self.metadata)
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            try:
                self.metadata.create_all(self.engine)
            except sa.exc.DatabaseError:  # another process created them in between
                self.metadata.create_all(self.engine)
            self._ready = True

    @staticmethod
    def _rollout(row) -> Rollout:
        return Rollout(
            id=int(row["id"]),
            model_id=row["model_id"],
            candidate=row["candidate"],
            champion=row["champion"],
            steps=tuple(json.loads(row["steps"])),
            step=int(row["step"]),
            status=row["status"],
            started_by=row["started_by"],
            started_at=row["started_at"],
            step_started_at=row["step_started_at"],
            ended_at=row["ended_at"],
        )

    def _one(self, query) -> Rollout | None:
        self._ensure()
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return self._rollout(row) if row is not None else None

    def active(self, model_id: str) -> Rollout | None:
        """The model's rollout in progress, if any."""
        t = self.rollouts
        return self._one(sa.select(t).where(t.c.model_id == model_id, t.c.status == ACTIVE))

    def latest(self, model_id: str) -> Rollout | None:
        """The model's newest rollout (in progress or ended)."""
        t = self.rollouts
        return self._one(
            sa.select(t).where(t.c.model_id == model_id).order_by(t.c.id.desc()).limit(1)
        )

    def create(
        self, model_id: str, candidate: str, champion: str, steps: Sequence[float], actor: str
    ) -> Rollout:
        self._ensure()
        now = self._clock()
        row = {
            "model_id": model_id,
            "candidate": str(candidate),
            "champion": str(champion),
            "steps": json.dumps([float(s) for s in steps]),
            "step": 0,
            "status": ACTIVE,
            "started_by": actor,
            "started_at": now,
            "step_started_at": now,
            "ended_at": None,
        }
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(self.rollouts.insert().values(**row)).inserted_primary_key[0]
        except sa.exc.IntegrityError as exc:
            raise LifecycleError(f"{model_id}: a rollout is already in progress") from exc
        return self._rollout({**row, "id": new_id, "started_at": now, "step_started_at": now})

    def _update(self, rollout: Rollout, **values) -> Rollout:
        with self.engine.begin() as conn:
            conn.execute(
                self.rollouts.update().where(self.rollouts.c.id == rollout.id).values(**values)
            )
        return dataclasses.replace(rollout, **values)

    def set_step(self, rollout: Rollout, step: int) -> Rollout:
        return self._update(rollout, step=step, step_started_at=self._clock())

    def finish(self, rollout: Rollout, status: str) -> Rollout:
        return self._update(rollout, status=status, ended_at=self._clock())

    def record(
        self, rollout: Rollout, partition_key: str, observations: Sequence[ArmObservation]
    ) -> None:
        """Keep one partition's observations for the current step (a re-scored partition
        replaces its earlier ones)."""
        self._ensure()
        t = self.table
        now = self._clock()
        rows = [
            {
                "rollout_id": rollout.id,
                "step": rollout.step,
                "partition_key": partition_key,
                "arm": o.arm,
                "model_version": o.version,
                "devices": o.devices,
                "windows_in": o.windows_in,
                "windows_scored": o.windows_scored,
                "invalid_scores": o.invalid_scores,
                "flags": o.flags,
                "failed": o.failed,
                "seconds": o.seconds,
                "error": o.error[:2000],
                "recorded_at": now,
            }
            for o in observations
        ]
        with self.engine.begin() as conn:
            conn.execute(
                t.delete().where(
                    t.c.rollout_id == rollout.id,
                    t.c.step == rollout.step,
                    t.c.partition_key == partition_key,
                )
            )
            conn.execute(t.insert(), rows)

    def observations(self, rollout_id: int, step: int | None = None) -> pd.DataFrame:
        """Recorded observations of a rollout (optionally one step), oldest first."""
        self._ensure()
        t = self.table
        q = sa.select(t).where(t.c.rollout_id == rollout_id).order_by(t.c.id)
        if step is not None:
            q = q.where(t.c.step == step)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        columns = [c.name for c in t.columns]
        return pd.DataFrame([dict(r) for r in rows], columns=columns)


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
