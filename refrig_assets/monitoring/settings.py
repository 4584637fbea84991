"""Monitoring thresholds, read from ``config/monitoring.yaml`` (never written in code).

A detector may override the ``drift`` and ``retraining`` sections under a ``monitoring:`` key in
its own ``models/`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from refrig_assets.core.config import ConfigError, policy_file
from refrig_assets.core.settings import MODELS_DIR

# Where the settings lived before config/ (read for one release, with a warning).
LEGACY_FILE = "_monitoring.yaml"


class MonitoringConfigError(ConfigError):
    """The monitoring settings file is missing a value or holds an invalid one."""


@dataclass(frozen=True)
class DriftSettings:
    """PSI bands and bins, the KL threshold, and sampling for drift comparisons."""

    psi_moderate: float
    psi_significant: float
    psi_bins: int
    psi_epsilon: float
    kl_threshold: float
    contamination_change: float
    kl_bins: int
    kl_epsilon: float
    kl_reference_hours: int
    min_windows: int
    reference_max_rows: int
    current_max_rows: int
    report_max_rows: int
    sample_seed: int
    exclude_training_hours: bool
    top_features: int


@dataclass(frozen=True)
class RetrainingSettings:
    """When drift or age requests retraining of a detector."""

    on_significant_feature_drift: bool
    on_score_drift: bool
    schedule_days: float | None
    train_on: str


@dataclass(frozen=True)
class DropRule:
    """A sudden drop: recent mean below (1 - drop) x baseline mean."""

    drop: float
    recent_hours: int
    baseline_hours: int
    min_baseline: float


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the health alert rules."""

    lookback_days: int
    latency_ratio: float
    latency_sustained_runs: int
    latency_min_baseline_runs: int
    latency_min_baseline_seconds: float
    max_error_rate: float
    error_min_runs: int
    alert_drop: DropRule
    score_drop: DropRule
    max_empty_prediction_rate: float


@dataclass(frozen=True)
class MonitoringSettings:
    drift: DriftSettings
    retraining: RetrainingSettings
    health: HealthSettings
    path: Path


def _get(raw: dict[str, Any], dotted: str, path: Path) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise MonitoringConfigError(f"{path}: missing setting {dotted!r}")
        node = node[part]
    return node


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _drop_rule(raw: dict, key: str, path: Path) -> DropRule:
    rule = DropRule(
        drop=float(_get(raw, f"health.{key}.drop", path)),
        recent_hours=int(_get(raw, f"health.{key}.recent_hours", path)),
        baseline_hours=int(_get(raw, f"health.{key}.baseline_hours", path)),
        min_baseline=float(_get(raw, f"health.{key}.min_baseline", path)),
    )
    if not 0 < rule.drop < 1:
        raise MonitoringConfigError(f"{path}: health.{key}.drop must be in (0, 1)")
    return rule


def load_monitoring_settings(
    model_id: str | None = None, models_dir: Path | None = None
) -> MonitoringSettings:
    """The monitoring settings, with ``model_id``'s own ``monitoring:`` overrides when given."""
    d = Path(models_dir or MODELS_DIR)
    path = policy_file("monitoring", d / LEGACY_FILE)
    if not path.exists():
        raise MonitoringConfigError(f"no monitoring settings file {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if model_id is not None:
        model_file = d / f"{model_id}.yaml"
        model_raw = yaml.safe_load(model_file.read_text()) if model_file.exists() else None
        override = (model_raw or {}).get("monitoring") or {}
        unknown = set(override) - {"drift", "retraining"}
        if unknown:
            raise MonitoringConfigError(
                f"{model_file}: monitoring overrides may only set drift/retraining, not {unknown}"
            )
        raw = _merge(raw, override)
    g = lambda key: _get(raw, key, path)  # noqa: E731
    drift = DriftSettings(
        psi_moderate=float(g("drift.psi.moderate")),
        psi_significant=float(g("drift.psi.significant")),
        psi_bins=int(g("drift.psi.bins")),
        psi_epsilon=float(g("drift.psi.epsilon")),
        kl_threshold=float(g("drift.kl.threshold")),
        contamination_change=float(g("drift.contamination_change")),
        kl_bins=int(g("drift.kl.bins")),
        kl_epsilon=float(g("drift.kl.epsilon")),
        kl_reference_hours=int(g("drift.kl.reference_hours")),
        min_windows=int(g("drift.min_windows")),
        reference_max_rows=int(g("drift.reference_max_rows")),
        current_max_rows=int(g("drift.current_max_rows")),
        report_max_rows=int(g("drift.report_max_rows")),
        sample_seed=int(g("drift.sample_seed")),
        exclude_training_hours=bool(g("drift.exclude_training_hours")),
        top_features=int(g("drift.top_features")),
    )
    if not 0 <= drift.psi_moderate < drift.psi_significant:
        raise MonitoringConfigError(f"{path}: drift.psi needs 0 <= moderate < significant")
    if drift.psi_bins < 2 or drift.kl_bins < 2:
        raise MonitoringConfigError(f"{path}: drift.psi.bins and drift.kl.bins must be >= 2")
    schedule = g("retraining.schedule_days")
    retraining = RetrainingSettings(
        on_significant_feature_drift=bool(g("retraining.on_significant_feature_drift")),
        on_score_drift=bool(g("retraining.on_score_drift")),
        schedule_days=float(schedule) if schedule is not None else None,
        train_on=str(g("retraining.train_on")),
    )
    if retraining.train_on != "drifted_day":
        raise MonitoringConfigError(f"{path}: retraining.train_on supports only 'drifted_day'")
    health = HealthSettings(
        lookback_days=int(g("health.lookback_days")),
        latency_ratio=float(g("health.sustained_latency.ratio")),
        latency_sustained_runs=int(g("health.sustained_latency.sustained_runs")),
        latency_min_baseline_runs=int(g("health.sustained_latency.min_baseline_runs")),
        latency_min_baseline_seconds=float(g("health.sustained_latency.min_baseline_seconds")),
        max_error_rate=float(g("health.error_rate.max_rate")),
        error_min_runs=int(g("health.error_rate.min_runs")),
        alert_drop=_drop_rule(raw, "alert_drop", path),
        score_drop=_drop_rule(raw, "score_drop", path),
        max_empty_prediction_rate=float(g("health.empty_predictions.max_rate")),
    )
    return MonitoringSettings(drift=drift, retraining=retraining, health=health, path=path)
