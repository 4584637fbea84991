"""Backfill policy, read from ``config/backfill.yaml`` (never written in code)."""

from __future__ import annotations

from refrig_assets.core.config import load_config


def hours_per_run() -> int:
    """How many hourly partitions one run of a history backfill covers (at least 1)."""
    config = load_config("backfill")
    value = config.value("hours_per_run")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise config.fail("hours_per_run", f"must be a whole number ≥ 1, not {value!r}")
    return value
