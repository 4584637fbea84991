"""``alert_sla_monitor``: flags and escalates unacknowledged alerts past their SLA deadline."""

from datetime import UTC, datetime

import dagster as dg

from refrig_assets.alerts.notify import notifier_from_env, notify_escalations
from refrig_assets.defs.shared.resources import RefrigResource

SLA_CHECK_SECONDS = 60


@dg.sensor(
    name="alert_sla_monitor",
    minimum_interval_seconds=SLA_CHECK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: OPEN alerts past their SLA deadline are marked breached and move "
    "up one escalation level (L1 → L2 → L3) per further SLA period; each step is audited and "
    "notified.",
)
def alert_sla_monitor(context: dg.SensorEvaluationContext, refrig: RefrigResource) -> dg.SkipReason:
    """Check SLAs against the wall clock; the work is done here, no run is needed."""
    escalated = refrig.alerts.check_sla(datetime.now(UTC))
    sent = notify_escalations(notifier_from_env(), escalated)
    if escalated:
        context.log.info(f"{len(escalated)} alert(s) breached or escalated, {sent} notified")
    return dg.SkipReason(f"{len(escalated)} alert(s) breached or escalated")


defs = dg.Definitions(sensors=[alert_sla_monitor])
