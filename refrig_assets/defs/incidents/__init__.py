"""Incidents: the hour's alerts, probable causes, site events and sensor-health tickets grouped
into one incident per fault episode in the alert database (``device_incidents``)."""

import dagster as dg

from refrig_assets.defs.incidents import assets

defs = dg.Definitions.merge(assets.defs)

__all__ = ["defs"]
