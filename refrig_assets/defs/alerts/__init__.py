"""Alerts: model agreement → severity, SLA, dedup; stored in the alert database."""

from refrig_assets.defs.alerts.assets import defs

__all__ = ["defs"]
