"""The schema of the operational database, created by its owner: ``refrig db migrate``.

Each store creates its own tables (SQLAlchemy ``create_all``) and append-only triggers on first
use; :func:`migrate` asks every store to do so now, as the owner role, and then gives the
application role exactly the row privileges it needs (:mod:`refrig_assets.core.grants`). The
services then connect as the application role: the stores find their tables and triggers in
place and create nothing.

The stores, one list: alerts, their history and the notification outbox; maintenance windows,
feedback rules and their audit trail, work orders, suppression reasons; console users, API
tokens, the access audit and console silences; retraining requests (all in the alert
database); the model lifecycle audit trail and rollouts (the lifecycle database, by default the
alert database).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from refrig_assets.access.store import AccessStore
from refrig_assets.alerts.operator_tables import OperatorTables
from refrig_assets.alerts.store import AlertStore
from refrig_assets.console.silences import SilenceStore
from refrig_assets.core.grants import grant_application_role
from refrig_assets.lifecycle.audit import AuditTrail
from refrig_assets.lifecycle.rollout_state import RolloutStore
from refrig_assets.monitoring.retraining_trigger import RetrainingLog
from refrig_assets.operations.feedback import FeedbackLoop
from refrig_assets.operations.maintenance import MaintenanceCalendar
from refrig_assets.operations.settings import load_operations_settings
from refrig_assets.operations.suppression import SuppressionLog
from refrig_assets.operations.workorders import WorkOrderExporter


@dataclass
class MigrationReport:
    """What :func:`migrate` did, per database URL (password masked)."""

    tables: dict[str, list[str]] = field(default_factory=dict)
    grants: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


def _masked(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _alert_database(alerts: AlertStore) -> list[sa.Table]:
    """Create the tables and triggers of every store in the alert database."""
    alerts._ensure_tables()
    settings = load_operations_settings()
    stores: list[OperatorTables] = [
        MaintenanceCalendar(alerts, settings=settings),
        FeedbackLoop(alerts, settings=settings),
        WorkOrderExporter(alerts, settings=settings),
        SuppressionLog(alerts),
        AccessStore(alerts),
        SilenceStore(alerts),
    ]
    tables = list(alerts.metadata.sorted_tables)
    for store in stores:
        store._ensure_tables()
        tables += store.metadata.sorted_tables
    retraining = RetrainingLog(alerts.url)  # creates its table and triggers
    tables += retraining.metadata.sorted_tables
    retraining.close()
    return tables


def _lifecycle_database(audit: AuditTrail) -> list[sa.Table]:
    """Create the tables and triggers of the lifecycle audit trail and the rollouts."""
    audit._ensure_table()
    rollouts = RolloutStore(audit.engine)
    rollouts._ensure()
    return [*audit.metadata.sorted_tables, *rollouts.metadata.sorted_tables]


def migrate(alerts_url: str, lifecycle_url: str, app_role: str | None = None) -> MigrationReport:
    """Create every table and trigger of the operational database (safe to run again) and,
    on PostgreSQL with ``app_role``, grant that role its privileges on them.

    Run it as the owner of the databases. ``lifecycle_url`` may equal ``alerts_url``.
    """
    report = MigrationReport()
    alerts = AlertStore(alerts_url)
    audit = AuditTrail(lifecycle_url)
    try:
        by_engine: list[tuple[sa.Engine, list[sa.Table]]] = [
            (alerts.engine, _alert_database(alerts))
        ]
        lifecycle_tables = _lifecycle_database(audit)
        if lifecycle_url == alerts_url:
            by_engine[0][1].extend(lifecycle_tables)
        else:
            by_engine.append((audit.engine, lifecycle_tables))
        for engine, tables in by_engine:
            name = _masked(engine)
            report.tables[name] = [t.name for t in tables]
            if app_role is None:
                continue
            if engine.dialect.name != "postgresql":
                raise ValueError(f"{name}: roles and grants need PostgreSQL")
            with engine.begin() as conn:
                report.grants[name] = grant_application_role(conn, tables, app_role)
    finally:
        alerts.close()
        audit.close()
    return report
