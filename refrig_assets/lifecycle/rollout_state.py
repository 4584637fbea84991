"""Progressive rollout state: stable device assignment, the rollouts and what each scored
partition showed, kept in the lifecycle database (``model_rollouts``, at most one active rollout
per model, and ``model_rollout_observations``). Decisions live in
:mod:`refrig_assets.lifecycle.rollout`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.store import UTCDateTime
from refrig_assets.core.grants import DELETES_ROWS
from refrig_assets.lifecycle.promotion import LifecycleError

ACTIVE, COMPLETED, ROLLED_BACK, ABORTED = "active", "completed", "rolled_back", "aborted"
CANDIDATE, CHAMPION = "candidate", "champion"
ROLLOUTS_TABLE = "model_rollouts"
OBSERVATIONS_TABLE = "model_rollout_observations"


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
        info={DELETES_ROWS: True},  # a re-run partition replaces its observations
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
