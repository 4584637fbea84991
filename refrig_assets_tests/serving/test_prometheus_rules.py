"""The example Prometheus rules in deploy/prometheus/ alert at the thresholds of
config/serving.yaml (the ones /health reports against) and on metrics the services export."""

from __future__ import annotations

import re

import yaml

from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.serving.settings import load_serving_settings

RULES = PROJECT_ROOT / "deploy" / "prometheus" / "refrig-alerts.yml"


def rules() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: " ".join(r["expr"].split()) for g in groups for r in g["rules"]}


def threshold(expr: str) -> float:
    return float(re.search(r">\s*([0-9.]+)\s*$", expr).group(1))


def test_rules_use_the_configured_seed_thresholds():
    limits = load_serving_settings().thresholds
    found = rules()
    assert threshold(found["ScoringLatencyHigh"]) == limits.latency_ms
    assert threshold(found["ModelInferenceLatencyHigh"]) == limits.latency_ms
    assert threshold(found["ScoringErrorRateHigh"]) == limits.error_rate
    assert threshold(found["ModelErrorRateHigh"]) == limits.error_rate
    assert threshold(found["ScoredDataStale"]) == limits.freshness_minutes * 60
    assert threshold(found["FeatureDriftHigh"]) == limits.drift_psi


def test_rules_read_metrics_the_services_export():
    exported = {
        "http_request_latency_ms_bucket",
        "inference_latency_ms_bucket",
        "http_requests_total",
        "request_errors_total",
        "request_count_total",
        "data_freshness_seconds",
        "feature_drift_psi",
        "refrig_notifications_total",
        "refrig_outbox_oldest_pending_seconds",
        "refrig_batch_step_failures",
        "up",
    }
    for name, expr in rules().items():
        used = set(re.findall(r"\b([a-z_]+)(?:\{|\[| >)", expr)) - {"rate", "sum", "by", "increase"}
        used -= {"histogram_quantile", "le", "model_id", "model_version", "deployment"}
        assert used <= exported, f"{name}: {used - exported}"
