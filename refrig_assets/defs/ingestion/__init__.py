"""Ingestion: landing-zone readings by hour, and the device registry."""

from refrig_assets.defs.ingestion.assets import defs

__all__ = ["defs"]
