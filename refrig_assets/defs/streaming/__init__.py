"""Streaming threshold rules: a sensor over newly landed readings writing CRITICAL alerts."""

from refrig_assets.defs.streaming.sensors import defs

__all__ = ["defs"]
