"""The retraining trigger: which detectors need retraining, why, and the record of every request.

A detector is sent back to training when its inputs drift significantly (PSI above the
significant band on any of its features, fleet-wide or in any cohort), when its scores drift (KL
above the threshold), or when its production version is older than the configured schedule.
Moderate drift never triggers. Requests go through the detector's normal training asset, so
whatever promotion gates that asset applies still decide whether the new version goes live.

Every request is appended to the ``retraining_requests`` table (contract of the same name) in the
operational database; the table refuses updates and deletes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from refrig_assets.alerts.store import sql_type
from refrig_assets.core.append_only import make_append_only
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.database import installed_driver_url
from refrig_assets.monitoring.settings import MonitoringSettings

DRIFT, SCHEDULE = "drift", "schedule"
TABLE = "retraining_requests"


@dataclass(frozen=True)
class RetrainingRequest:
    """One request to retrain a detector, with a reason an operator can read."""

    model_id: str
    model_version: str | None
    trigger: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    drift_partition: str | None = None
    train_start: str | None = None
    train_end: str | None = None

    @property
    def request_id(self) -> str:
        """Deterministic: the same drift on the same day (or the same aged version) is one
        request, however often it is evaluated."""
        parts = [self.model_id, self.model_version or "-", self.trigger]
        if self.trigger == DRIFT:
            parts.append(self.drift_partition or "-")
        return "retrain:" + ":".join(parts)


def drift_request(
    model_id: str,
    model_version: str,
    feature_drift: pd.DataFrame,
    score_drift: pd.DataFrame,
    settings: MonitoringSettings,
    partition: str,
    train_range: tuple[str, str] | None = None,
) -> RetrainingRequest | None:
    """A request when this model version drifted significantly on ``partition``, else None.

    ``feature_drift`` and ``score_drift`` are rows of the feature_drift / score_drift datasets
    (other models' rows are ignored). The band is recomputed from the PSI value with this model's
    settings, so a per-model override of the bands applies.
    """
    reasons: list[str] = []
    evidence: dict[str, Any] = {}
    mine = _rows_of(feature_drift, model_id, model_version)
    if settings.retraining.on_significant_feature_drift and not mine.empty:
        significant = mine[mine["psi"] > settings.drift.psi_significant].sort_values(
            ["psi", "feature"], ascending=[False, True]
        )
        if not significant.empty:
            listed = [
                f"{r.feature} PSI {r.psi:.2f}" + ("" if r.cohort == "*" else f" in {r.cohort}")
                for r in significant.head(settings.drift.top_features).itertuples()
            ]
            more = len(significant) - len(listed)
            reasons.append(
                f"significant feature drift (PSI > {settings.drift.psi_significant:g}): "
                + ", ".join(listed)
                + (f" and {more} more" if more > 0 else "")
            )
            evidence["feature_drift"] = [
                {"feature": r.feature, "cohort": r.cohort, "psi": round(float(r.psi), 4)}
                for r in significant.itertuples()
            ]
    scores = _rows_of(score_drift, model_id, model_version)
    if settings.retraining.on_score_drift and not scores.empty:
        kl = float(scores["kl_divergence"].max())
        if kl > settings.drift.kl_threshold:
            reasons.append(f"score drift: KL {kl:.3f} > {settings.drift.kl_threshold:g}")
            evidence["score_drift"] = {
                "kl_divergence": round(kl, 4),
                "contamination_rate": round(float(scores["contamination_rate"].max()), 4),
            }
    if not reasons:
        return None
    start, end = train_range or (None, None)
    return RetrainingRequest(
        model_id=model_id,
        model_version=model_version,
        trigger=DRIFT,
        reason=f"{model_id}@{model_version} on {partition}: " + "; ".join(reasons),
        evidence=evidence,
        drift_partition=partition,
        train_start=start,
        train_end=end,
    )


def schedule_request(
    model_id: str,
    model_version: str,
    registered_at: datetime,
    now: datetime,
    settings: MonitoringSettings,
) -> RetrainingRequest | None:
    """A request when the production version is older than ``retraining.schedule_days``."""
    days = settings.retraining.schedule_days
    if days is None:
        return None
    age_days = (now - registered_at).total_seconds() / 86400
    if age_days <= days:
        return None
    return RetrainingRequest(
        model_id=model_id,
        model_version=model_version,
        trigger=SCHEDULE,
        reason=f"{model_id}@{model_version} is {age_days:.1f} days old (retrain every {days:g})",
        evidence={"age_days": round(age_days, 2), "schedule_days": days},
    )


def _rows_of(frame: pd.DataFrame, model_id: str, model_version: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame()
    keep = (frame["model_id"] == model_id) & (frame["model_version"].astype(str) == model_version)
    return frame[keep]


class RetrainingLog:
    """Append-only table of retraining requests in a SQL database (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        self.contract = load_contract(TABLE)
        self.engine = _engine(url)
        self.metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            self.metadata,
            *(
                sa.Column(
                    c.name,
                    sql_type(c.type),
                    primary_key=c.name in self.contract.primary_key,
                    nullable=c.nullable,
                )
                for c in self.contract.columns
            ),
        )
        with self.engine.begin() as conn:
            self.metadata.create_all(conn)
            make_append_only(conn, TABLE, f"{TABLE} is append-only")

    def record(self, request: RetrainingRequest, at: datetime | None = None) -> bool:
        """Append ``request``; False when a request with the same id is already recorded."""
        row = {
            "request_id": request.request_id,
            "requested_at": at or datetime.now(UTC),
            "model_id": request.model_id,
            "model_version": request.model_version,
            "trigger": request.trigger,
            "reason": request.reason,
            "evidence": json.dumps(request.evidence, sort_keys=True),
            "drift_partition": request.drift_partition,
            "train_start": request.train_start,
            "train_end": request.train_end,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(**row))
        except sa.exc.IntegrityError:
            return False
        return True

    def list(self, model_id: str | None = None) -> pd.DataFrame:
        """Recorded requests, oldest first (optionally for one model)."""
        query = sa.select(self.table).order_by(self.table.c.requested_at)
        if model_id is not None:
            query = query.where(self.table.c.model_id == model_id)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        frame = pd.DataFrame(rows, columns=self.contract.column_names)
        frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
        return frame

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> sa.Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            from pathlib import Path

            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Dagster runs and the CLI share the file: wait for locks instead of failing.
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(installed_driver_url(url), pool_pre_ping=True)


def requests_for_day(
    store,
    registry,
    day: str,
    train_range: tuple[str, str] | None,
    models_dir=None,
) -> list[RetrainingRequest]:
    """Drift requests for one daily partition, from the feature_drift and score_drift datasets.

    Only rows of the version each detector scores with now count: a detector already retrained
    since the drift was measured is left alone.
    """
    from refrig_assets.core.model_config import all_model_ids, load_model_config
    from refrig_assets.monitoring.settings import load_monitoring_settings
    from refrig_assets.training.registry import RegistryError

    features = store.read("feature_drift", day) if store.exists("feature_drift", day) else None
    scores = store.read("score_drift", day) if store.exists("score_drift", day) else None
    requests = []
    for model_id in all_model_ids(models_dir):
        config = load_model_config(model_id, models_dir)
        try:
            version = registry.resolve_version(model_id, config.pinned_version)
        except RegistryError:
            continue
        request = drift_request(
            model_id,
            version,
            features,
            scores,
            load_monitoring_settings(model_id, models_dir),
            day,
            train_range,
        )
        if request is not None:
            requests.append(request)
    return requests


def schedule_requests(registry, now: datetime, models_dir=None) -> list[RetrainingRequest]:
    """Requests for production versions older than their ``retraining.schedule_days``."""
    from refrig_assets.core.model_config import all_model_ids, load_model_config
    from refrig_assets.monitoring.settings import load_monitoring_settings
    from refrig_assets.training.registry import RegistryError

    requests = []
    for model_id in all_model_ids(models_dir):
        config = load_model_config(model_id, models_dir)
        try:
            version = registry.resolve_version(model_id, config.pinned_version)
        except RegistryError:
            continue
        created_ms = registry.client.get_model_version(model_id, version).creation_timestamp
        registered_at = datetime.fromtimestamp(created_ms / 1000, tz=UTC)
        request = schedule_request(
            model_id, version, registered_at, now, load_monitoring_settings(model_id, models_dir)
        )
        if request is not None:
            requests.append(request)
    return requests
