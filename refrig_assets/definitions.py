"""The one Definitions object of the project: every domain's ``defs``, merged."""

from __future__ import annotations

import dagster as dg

from refrig_assets.defs import (
    alerts,
    features,
    ingestion,
    lifecycle,
    monitoring,
    pipeline,
    quality,
    resources,
    scoring,
    streaming,
    training,
)

defs = dg.Definitions.merge(
    resources.defs,
    ingestion.defs,
    quality.defs,
    features.defs,
    training.defs,
    scoring.defs,
    alerts.defs,
    streaming.defs,
    lifecycle.defs,
    monitoring.defs,
    pipeline.defs,
    dg.Definitions(executor=dg.in_process_executor),
)
