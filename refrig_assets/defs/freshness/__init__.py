"""Freshness: every dataset against the ``freshness_sla_minutes`` of its contract."""

from refrig_assets.defs.freshness.checks import with_contract_freshness

__all__ = ["with_contract_freshness"]
