"""Handles the lifecycle assets share: the audit trail, the lifecycle service, held results."""

import dagster as dg

from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.promotion import ModelLifecycle

GROUP = "lifecycle"


def audit_trail(refrig: RefrigResource) -> AuditTrail:
    """The append-only lifecycle audit trail (REFRIG_LIFECYCLE_DB_URL or the alert database)."""
    return AuditTrail(lifecycle_db_url(refrig.settings.alerts_db_url))


def model_lifecycle(refrig: RefrigResource) -> ModelLifecycle:
    return ModelLifecycle(refrig.registry, audit_trail(refrig), refrig.settings.models_dir)


def run_actor(context: dg.AssetExecutionContext) -> str:
    """Who acts in a Dagster run: the launching user when the run carries one, else the run."""
    user = context.run.tags.get("dagster/user") or context.run.tags.get("user")
    return (
        f"{user} (dagster run {context.run.run_id[:8]})"
        if user
        else (f"dagster run {context.run.run_id[:8]}")
    )
