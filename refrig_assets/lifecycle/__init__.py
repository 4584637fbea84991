"""Safe model lifecycle: promotion gates, canary comparison, pinning and rollback, an append-only
audit trail, "which version served at time T", score staleness and the rules-based fallback.

Plain Python (no Dagster): the Dagster wiring is in ``refrig_assets/defs/lifecycle/`` and the
command line in ``refrig_assets/cli/models.py``. Every threshold is read from
``config/lifecycle.yaml`` (see :mod:`refrig_assets.lifecycle.policy`).
"""
