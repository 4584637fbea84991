"""Service health: component states and scoring latency / error rate per model version.

Pure aggregation plus small probes of real components (the alert database through SQLAlchemy,
the MLflow registry). The console's ``/health`` gathers the Dagster facts and calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from refrig_assets.core.database import installed_driver_url
from refrig_assets.core.secrets import mask_secrets

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class ComponentState:
    """One component of the service: its state and what was seen."""

    name: str
    state: str
    detail: str
    info: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScoringObservation:
    """One scoring step of a model: its version (None when it failed before resolving one)."""

    model_id: str
    model_version: str | None
    latency_s: float | None
    failed: bool
    windows_scored: int = 0


def probe(name: str, check: Callable[[], str | tuple[str, dict[str, Any]]]) -> ComponentState:
    """Run ``check``; its text (and info) make an ``ok`` state, any exception a ``down`` one."""
    try:
        result = check()
    except Exception as exc:  # a probe reports every failure as the component's state
        return ComponentState(name, DOWN, mask_secrets(f"{type(exc).__name__}: {exc}"))
    detail, info = result if isinstance(result, tuple) else (result, None)
    return ComponentState(name, OK, detail, info)


def alert_db_state(url: str) -> ComponentState:
    """The alert database answers ``SELECT 1``."""

    def check() -> str:
        engine = sa.create_engine(installed_driver_url(url))
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
        return f"reachable ({engine.url.get_backend_name()})"

    return probe("alert_db", check)


def registry_state(
    registry: Any, model_ids: list[str], not_trained: dict[str, str] | None = None
) -> ComponentState:
    """The model registry answers, and which version each detector serves. ``not_trained``
    (model → reason) names detectors whose training fitted nothing (a fleet too small for
    them): shown as not trained, not as missing."""
    not_trained = not_trained or {}

    def check() -> tuple[str, dict[str, Any]]:
        serving = {m: registry.production_version(m) for m in model_ids}
        missing = sorted(m for m, v in serving.items() if v is None and m not in not_trained)
        untrained = sorted(m for m, v in serving.items() if v is None and m in not_trained)
        detail = "reachable" + (f"; no production version: {', '.join(missing)}" if missing else "")
        detail += "".join(f"; {m} not trained ({not_trained[m]})" for m in untrained)
        return detail, {
            "production_versions": serving,
            "not_trained": {m: not_trained[m] for m in untrained},
        }

    return probe("registry", check)


def scoring_stats(observations: Iterable[ScoringObservation]) -> list[dict[str, Any]]:
    """Per model and version: steps, error rate, empty-prediction rate, latency p50 and p99."""
    groups: dict[tuple[str, str], list[ScoringObservation]] = {}
    for o in observations:
        groups.setdefault((o.model_id, o.model_version or "unresolved"), []).append(o)
    rows = []
    for (model_id, version), obs in sorted(groups.items()):
        latencies = [o.latency_s for o in obs if o.latency_s is not None and not o.failed]
        succeeded = [o for o in obs if not o.failed]
        rows.append(
            {
                "model_id": model_id,
                "model_version": version,
                "steps": len(obs),
                "error_rate": sum(o.failed for o in obs) / len(obs),
                "empty_prediction_rate": (
                    sum(o.windows_scored == 0 for o in succeeded) / len(succeeded)
                    if succeeded
                    else None
                ),
                "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else None,
                "latency_p99_s": float(np.percentile(latencies, 99)) if latencies else None,
            }
        )
    return rows


def overall_state(components: list[ComponentState]) -> str:
    """``down`` when any component is down, ``degraded`` when any is degraded, else ``ok``."""
    states = {c.state for c in components}
    return DOWN if DOWN in states else DEGRADED if DEGRADED in states else OK


def health_report(components: list[ComponentState], scoring: list[dict[str, Any]]) -> dict:
    """The ``/health`` body."""
    return {
        "status": overall_state(components),
        "components": {
            c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in components
        },
        "scoring": scoring,
    }
