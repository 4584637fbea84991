"""Dagster wiring, one package per domain. Each exports its own ``defs`` (a Definitions object);
``refrig_assets.definitions`` merges them. Domain logic lives outside this package."""
