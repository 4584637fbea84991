"""Ingestion: landing-zone readings by hour, the device registry, and the late-data sensor."""

import dagster as dg

from refrig_assets.defs.ingestion.assets import defs as asset_defs
from refrig_assets.defs.ingestion.sensors import late_landing_files

defs = dg.Definitions.merge(asset_defs, dg.Definitions(sensors=[late_landing_files]))

__all__ = ["defs"]
