"""Alerts: model agreement → severity, SLA, dedup; stored in the alert database; device status;
the SLA monitor."""

import dagster as dg

from refrig_assets.defs.alerts import assets, device_status, sla_monitor

defs = dg.Definitions.merge(assets.defs, device_status.defs, sla_monitor.defs)

__all__ = ["defs"]
