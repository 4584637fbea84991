"""The keys of the score assets, for the domains that read scores (alerts, evaluation).

Each detector in ``models/`` has a ``<model_id>_scores`` asset; hourly detectors are partitioned
by hour, daily ones by day (see ``defs/scoring``)."""

import dagster as dg

from refrig_assets.core.model_config import all_model_ids, load_model_config


def score_asset_keys(schedule: str | None = None) -> list[dg.AssetKey]:
    """Keys of the detectors' score assets, optionally only those of one ``schedule``."""
    return [
        dg.AssetKey(f"{model_id}_scores")
        for model_id in all_model_ids()
        if schedule is None or load_model_config(model_id).schedule == schedule
    ]
