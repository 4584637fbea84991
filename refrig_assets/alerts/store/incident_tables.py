"""The incident tables of the alert database: ``incidents`` (the device_incidents contract plus
the operator lifecycle), ``incident_evidence`` (every alert, standalone cause, quality or site
window linked to its incident) and ``incident_transitions`` (append-only history)."""

from __future__ import annotations

import sqlalchemy as sa

from refrig_assets.alerts.store.schema import OPEN, UTCDateTime, sql_type
from refrig_assets.core.contracts import Contract, load_contract

INCIDENT_TRANSITIONS_APPEND_ONLY = (
    "incident_transitions is append-only: the incident history cannot be changed"
)
# Lifecycle columns of an incident beyond its contract columns.
INCIDENT_LIFECYCLE_COLUMNS = (
    "track",
    "paged_severity",
    "sla_deadline",
    "sla_breached",
    "escalation_level",
    "first_seen_at",
    "updated_at",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_by",
    "resolved_at",
)


def add_incident_tables(
    metadata: sa.MetaData, contract: Contract | None = None
) -> tuple[sa.Table, sa.Table, sa.Table]:
    """Declare the three incident tables on ``metadata`` (the alert store's)."""
    contract = contract or load_contract("device_incidents")
    columns = [
        sa.Column(
            c.name,
            sql_type(c.type),
            primary_key=c.name in contract.primary_key,
            nullable=c.nullable,
        )
        for c in contract.columns
    ]
    incidents = sa.Table(
        "incidents",
        metadata,
        *columns,
        sa.Column("track", sa.String(), nullable=False),
        sa.Column("paged_severity", sa.String(12), nullable=True),
        sa.Column("sla_deadline", UTCDateTime(), nullable=False),
        sa.Column("sla_breached", sa.Boolean(), nullable=False, default=False),
        sa.Column("escalation_level", sa.String(8), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Index("ix_incidents_device_track", "device_id", "track"),
        sa.Index("ix_incidents_site", "site_id"),
        sa.Index("ix_incidents_status", "status"),
    )
    evidence = sa.Table(
        "incident_evidence",
        metadata,
        sa.Column("evidence_id", sa.String(), primary_key=True),
        sa.Column("incident_id", sa.String(), nullable=False, index=True),
        sa.Column("evidence_type", sa.String(20), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=True, index=True),
        sa.Column("device_id", sa.String(), nullable=True),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(12), nullable=True),
        sa.Column("max_score", sa.Float(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
    )
    transitions = sa.Table(
        "incident_transitions",
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("incident_id", sa.String(), nullable=False, index=True),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False, default=OPEN),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.String(), nullable=False, default=""),
    )
    return incidents, evidence, transitions
