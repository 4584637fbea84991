"""Alerts: model agreement → severity, SLA, dedup; stored in the alert database; device status;
the SLA monitor; delivery of the notification outbox."""

import dagster as dg

from refrig_assets.defs.alerts import assets, delivery, device_status, sla_monitor

defs = dg.Definitions.merge(assets.defs, device_status.defs, sla_monitor.defs, delivery.defs)

__all__ = ["defs"]
