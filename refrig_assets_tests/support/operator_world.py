"""A small operator world for the console, maintenance, feedback and work-order tests.

A real SQLite alert database with a handful of alerts over two sites, optional Parquet feature
and score partitions for the device page, operations settings with overrides, a fixed clock, and
a snapshot of every table for "nothing changed" assertions.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from refrig_assets.alerts.generation import alert_id as make_alert_id
from refrig_assets.alerts.store import AlertStore
from refrig_assets.core.config import config_path, read_yaml
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.operations.settings import load_operations_settings

ALERT_POLICY = read_yaml(config_path("alerts"))

ALERTS = load_contract("device_alerts")
# Tests taking a `store` built by :func:`fresh_store` also run against PostgreSQL when this names
# a database they may create and drop tables in.
POSTGRES_URL = os.environ.get("REFRIG_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
SLA_MINUTES = ALERT_POLICY["sla_minutes"]
# Data time of the world: the last window of the alerts ends at T0.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


class Clock:
    """A settable clock (aware UTC)."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_frame(rows: list[dict[str, Any]], *, run_id: str = "run-1") -> pd.DataFrame:
    """Contract-complete device_alerts rows; each row gives at least device_id, site_id,
    window_start, severity, top_contributors and max_score."""
    out = []
    for row in rows:
        start = pd.Timestamp(row["window_start"])
        created = start + WINDOW
        severity = row["severity"]
        full = {
            "alert_id": make_alert_id(row["device_id"], start, row.get("source", "batch")),
            "device_id": row["device_id"],
            "site_id": row["site_id"],
            "cohort": row.get("cohort", "display_case"),
            "window_start": start,
            "window_end": start + WINDOW,
            "source": row.get("source", "batch"),
            "alert_type": "ANOMALY_DETECTED",
            "severity": severity,
            "max_score": float(row["max_score"]),
            "models_flagging": int(row.get("models_flagging", 1)),
            "top_contributors": row["top_contributors"],
            "explanation": row.get(
                "explanation",
                f"1 model(s) flag this window (max score {row['max_score']}). "
                f"statistical_baseline: {row['top_contributors'].split(',')[0]} far from baseline",
            ),
            "model_versions": row.get("model_versions", "statistical_baseline@3"),
            "alert_created_at": created,
            "sla_deadline": created + timedelta(minutes=SLA_MINUTES[severity]),
            "escalation_level": ALERT_POLICY["escalation_levels"][0],
            "suppressed": bool(row.get("suppressed", False)),
            "feature_partition": f"{start:%Y-%m-%d-%H}:00",
            "run_id": run_id,
        }
        out.append(full)
    frame = pd.DataFrame(out, columns=ALERTS.column_names)
    for column in ("window_start", "window_end", "alert_created_at", "sla_deadline"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def standard_alerts() -> pd.DataFrame:
    """Six alerts: two sites, every severity, two models, one long past its SLA deadline."""
    base = T0 - timedelta(hours=1)
    return alert_frame(
        [
            {  # MEDIUM, recent: deadline in the future
                "device_id": "dev-001",
                "site_id": "site-A",
                "window_start": base,
                "severity": "MEDIUM",
                "max_score": 0.82,
                "top_contributors": "vibration_compressor,current_compressor",
                "model_versions": "isolation_forest@2,statistical_baseline@3",
                "models_flagging": 2,
            },
            {  # CRITICAL, deadline in the future
                "device_id": "dev-002",
                "site_id": "site-A",
                "window_start": base + timedelta(minutes=30),
                "severity": "CRITICAL",
                "max_score": 0.99,
                "top_contributors": "pressure_low_side,temperature_evaporator",
            },
            {  # CRITICAL, 10 hours old: breached
                "device_id": "dev-003",
                "site_id": "site-B",
                "window_start": base - timedelta(hours=10),
                "severity": "CRITICAL",
                "max_score": 0.97,
                "top_contributors": "current_compressor",
            },
            {  # LOW
                "device_id": "dev-004",
                "site_id": "site-B",
                "window_start": base,
                "severity": "LOW",
                "max_score": 0.81,
                "top_contributors": "duty_cycle",
            },
            {  # HIGH, isolation forest only
                "device_id": "dev-005",
                "site_id": "site-B",
                "window_start": base + timedelta(minutes=15),
                "severity": "HIGH",
                "max_score": 0.9,
                "top_contributors": "temperature_condenser",
                "model_versions": "isolation_forest@2",
            },
            {  # suppressed repeat
                "device_id": "dev-001",
                "site_id": "site-A",
                "window_start": base + timedelta(minutes=15),
                "severity": "MEDIUM",
                "max_score": 0.8,
                "top_contributors": "vibration_compressor",
                "suppressed": True,
            },
        ]
    )


def seed_store(
    url: str, frame: pd.DataFrame | None = None, clock: Clock | None = None
) -> pd.DataFrame:
    """Upsert alerts (default: :func:`standard_alerts`) into the database at ``url``."""
    frame = standard_alerts() if frame is None else frame
    store = AlertStore(url, clock=clock or Clock())
    try:
        store.upsert(frame)
    finally:
        store.close()
    return frame


def _operator_metadata() -> list[sa.MetaData]:
    from refrig_assets.operations import feedback, maintenance, suppression, workorders

    return [feedback.metadata, maintenance.metadata, suppression.metadata, workorders.metadata]


def fresh_store(backend: str, tmp_path: Path, clock: Clock | None = None) -> AlertStore:
    """An empty alert database: a SQLite file, or the test PostgreSQL database emptied."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}" if backend == "sqlite" else POSTGRES_URL
    store = AlertStore(url, clock=clock or Clock())
    drop_all(store)
    return store


def drop_all(store: AlertStore) -> None:
    """Drop the alert and operator tables (a shared PostgreSQL database keeps them otherwise)."""
    for metadata in [*_operator_metadata(), store.metadata]:
        metadata.drop_all(store.engine)


def write_operations_file(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A copy of config/operations.yaml with some values changed, e.g.
    ``write_operations_file(tmp_path, feedback={"auto_apply": True})``."""
    body = yaml.safe_load(config_path("operations").read_text())
    for section, values in sections.items():
        body[section].update(values)
    path = tmp_path / "operations.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def operations(tmp_path: Path, **sections: dict[str, Any]):
    """Loaded operations settings with overrides (see :func:`write_operations_file`)."""
    return load_operations_settings(write_operations_file(tmp_path, **sections))


def db_snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, for 'nothing changed' assertions (a table created
    empty on first use counts as no change)."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            tables = {
                name: sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(table)))
                for name, table in metadata.tables.items()
            }
        return {name: rows for name, rows in tables.items() if rows}
    finally:
        engine.dispose()


def write_device_history(data_dir: Path, device_id: str, hours: list[datetime]) -> None:
    """Feature and score partitions for one device (plus a neighbour) over ``hours``.

    Features follow the device_features contract (every column, plausible values); scores
    follow model_scores for every configured model.
    """
    from refrig_assets.core.model_config import all_model_ids

    store = ParquetStore(data_dir)
    features_contract = load_contract("device_features")
    scores_contract = load_contract("model_scores")
    rng = np.random.default_rng(5)
    for hour in hours:
        rows, score_rows = [], {m: [] for m in all_model_ids()}
        for device in (device_id, "dev-neighbour"):
            for quarter in range(4):
                start = pd.Timestamp(hour) + quarter * WINDOW
                row: dict[str, Any] = {}
                for c in features_contract.columns:
                    if c.type == "float":
                        low, high = c.range if c.range else (0.0, 1.0)
                        row[c.name] = float(low + (high - low) * rng.uniform(0.3, 0.6))
                    elif c.type == "int":
                        row[c.name] = 15
                    elif c.type == "string":
                        row[c.name] = ""
                row.update(
                    device_id=device,
                    window_start=start,
                    window_end=start + WINDOW,
                    sensor_completeness=1.0,
                    quality_mask=0,
                )
                rows.append(row)
                for model_id, target in score_rows.items():
                    score = float(rng.uniform(0, 0.3))
                    target.append(
                        {
                            "device_id": device,
                            "window_start": start,
                            "window_end": start + WINDOW,
                            "model_id": model_id,
                            "model_version": "1",
                            "granularity": "fleet",
                            "anomaly_score": score,
                            "anomaly_flag": False,
                            "top_contributors": "vibration_compressor",
                            "contributor_detail": "within baseline",
                            "confidence": 1.0,
                            "scored_at": start + WINDOW,
                        }
                    )
        key = f"{pd.Timestamp(hour):%Y-%m-%d-%H}:00"
        features = pd.DataFrame(rows, columns=features_contract.column_names)
        for column in ("window_start", "window_end"):
            features[column] = pd.to_datetime(features[column], utc=True)
        store.write("device_features", key, features)
        for model_id, target in score_rows.items():
            scores = pd.DataFrame(target, columns=scores_contract.column_names)
            for column in ("window_start", "window_end", "scored_at"):
                scores[column] = pd.to_datetime(scores[column], utc=True)
            store.write(f"{model_id}_scores", key, scores)


@dataclass
class World:
    """Where one test's operator world lives."""

    url: str
    data_dir: Path
    clock: Clock
    alerts: pd.DataFrame

    def id_of(self, device_id: str, *, suppressed: bool = False) -> str:
        rows = self.alerts[
            (self.alerts["device_id"] == device_id) & (self.alerts["suppressed"] == suppressed)
        ]
        return rows["alert_id"].iat[0]
