"""``alert_sla_monitor``: flags and escalates unacknowledged alerts past their SLA deadline."""

from datetime import UTC, datetime

import dagster as dg

from refrig_assets.alerts.notify import DIGEST_EVENT
from refrig_assets.alerts.severity import alert_policy
from refrig_assets.alerts.sla_monitor import MonitorState
from refrig_assets.defs.shared.resources import RefrigResource

SLA_CHECK_SECONDS = 60


@dg.sensor(
    name="alert_sla_monitor",
    minimum_interval_seconds=SLA_CHECK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: OPEN alerts past their SLA deadline are marked breached and move "
    "up one escalation level (L1 → L2 → L3) per further SLA period, at most one level per tick; "
    "each step is audited and queued for notification in the same transaction (one digest when "
    "many breach at once; backfilled alerts are not paged). After a (re)start it waits a grace "
    "period. Delivery is alert_notification_delivery's job.",
)
def alert_sla_monitor(context: dg.SensorEvaluationContext, refrig: RefrigResource) -> dg.SkipReason:
    """Check SLAs against the wall clock; the work is done here, no run is needed."""
    now = datetime.now(UTC)
    policy = alert_policy().sla_monitor
    state = MonitorState.from_json(context.cursor).checked(now, policy)
    context.update_cursor(state.to_json())
    if state.in_grace(now, policy):
        until = state.grace_until(policy)
        return dg.SkipReason(
            f"grace period after the monitor (re)started at {state.started_at:%H:%M:%S}: "
            f"no breach or escalation before {until:%H:%M:%S} UTC"
        )
    from refrig_assets.incidents.repository import IncidentStore

    changed = refrig.alerts.check_sla(now)
    # Incidents carry their own SLA state (breached, escalation level) for operators; pages
    # for escalations still come from the alerts above, so nothing is paged twice.
    incidents = IncidentStore(refrig.alerts).check_sla(now, notify=False)
    queued = {a["notification"] for a in changed if a["notification"]}
    message = f"{len(changed)} alert(s) breached or escalated, {len(queued)} notification(s) queued"
    if any(key.startswith(DIGEST_EVENT) for key in queued):
        message += " (one digest)"
    historic = sum(not a["paged"] for a in changed)
    if historic:
        message += f"; {historic} backfilled alert(s) marked breached, not paged"
    if incidents:
        message += f"; {len(incidents)} incident(s) breached or escalated"
    if changed or incidents:
        context.log.info(message)
    return dg.SkipReason(message)


defs = dg.Definitions(sensors=[alert_sla_monitor])
