"""The one Definitions object of the project: every domain's ``defs``, merged."""

from __future__ import annotations

import dagster as dg

from refrig_assets.defs import (
    alerts,
    evaluation,
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
from refrig_assets.defs.freshness import with_contract_freshness

defs = dg.Definitions.merge(
    resources.defs,
    ingestion.defs,
    quality.defs,
    features.defs,
    training.defs,
    scoring.defs,
    alerts.defs,
    evaluation.defs,
    streaming.defs,
    lifecycle.defs,
    monitoring.defs,
    pipeline.defs,
    dg.Definitions(executor=dg.in_process_executor),
)
# Contracts set each asset's freshness SLA (see defs/freshness).
defs = with_contract_freshness(defs)
