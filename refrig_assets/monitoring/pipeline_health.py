"""Pipeline health in three separate layers, and the alert rules that watch them.

* infrastructure: per pipeline step — executions, failures, retries, durations;
* data: quality flag rates, quarantined rows by rule, freshness of each dataset against its
  contract's SLA;
* model: per model version — score distribution, flag rate, empty-prediction rate, alert volume
  by severity, streaming vs batch agreement.

Rows about a model always carry its ``model_id`` and ``model_version``. The rules (sustained
latency increase, elevated error rate, sudden drop in alerts or scores, empty predictions, stale
data) read their thresholds from :class:`~refrig_assets.monitoring.settings.HealthSettings` and
say in words what they saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from refrig_assets.monitoring.settings import DropRule, HealthSettings

INFRASTRUCTURE, DATA, MODEL = "infrastructure", "data", "model"
SUCCESS, FAILURE = "SUCCESS", "FAILURE"
# Columns of the step-execution table the infrastructure layer reads (one row per step of a run).
STEP_COLUMNS = [
    "step",
    "run_id",
    "partition",
    "status",
    "started_at",
    "duration_s",
    "attempts",
    "model_id",
    "model_version",
]
METRIC_COLUMNS = ["layer", "subject", "metric", "value", "model_id", "model_version"]
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


@dataclass(frozen=True)
class HealthAlert:
    """One rule that fired: what, where, how far past its threshold."""

    rule: str
    layer: str
    subject: str
    message: str
    value: float
    threshold: float
    model_id: str | None = None
    model_version: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def metric_rows(
    layer: str,
    subject: str,
    metrics: dict[str, float | None],
    model_id: str | None = None,
    model_version: str | None = None,
) -> list[dict]:
    """Long-format rows (one per metric) for the pipeline_health dataset."""
    return [
        {
            "layer": layer,
            "subject": subject,
            "metric": name,
            "value": None if value is None else float(value),
            "model_id": model_id,
            "model_version": model_version,
        }
        for name, value in metrics.items()
    ]


# -- infrastructure -----------------------------------------------------------------------------
def _executions(steps: pd.DataFrame) -> pd.DataFrame:
    return steps[steps["status"].isin([SUCCESS, FAILURE])].sort_values("started_at")


def infrastructure_metrics(steps: pd.DataFrame) -> list[dict]:
    """Per step: executions, failures, error rate, retries, median / p95 / last duration."""
    rows: list[dict] = []
    done = _executions(steps)
    for step, group in done.groupby("step", sort=True):
        ok = group[group["status"] == SUCCESS]
        durations = ok["duration_s"].dropna()
        failures = int((group["status"] == FAILURE).sum())
        tagged = group.dropna(subset=["model_id"]).tail(1)
        rows += metric_rows(
            INFRASTRUCTURE,
            str(step),
            {
                "executions": len(group),
                "failures": failures,
                "error_rate": failures / len(group),
                "retries": int((group["attempts"].fillna(1) - 1).clip(lower=0).sum()),
                "duration_p50_s": float(durations.median()) if len(durations) else None,
                "duration_p95_s": float(durations.quantile(0.95)) if len(durations) else None,
                "duration_last_s": float(durations.iloc[-1]) if len(durations) else None,
            },
            model_id=tagged["model_id"].iloc[0] if len(tagged) else None,
            model_version=tagged["model_version"].iloc[0] if len(tagged) else None,
        )
    return rows


def sustained_latency_alerts(steps: pd.DataFrame, rules: HealthSettings) -> list[HealthAlert]:
    """Steps whose last ``latency_sustained_runs`` successful runs were all slower than
    ``latency_ratio`` x the median of their earlier runs."""
    alerts = []
    n = rules.latency_sustained_runs
    done = _executions(steps)
    for step, group in done[done["status"] == SUCCESS].groupby("step", sort=True):
        durations = group["duration_s"].dropna().to_numpy(dtype=float)
        if len(durations) < n + rules.latency_min_baseline_runs:
            continue
        baseline, recent = durations[:-n], durations[-n:]
        median = float(np.median(baseline))
        if median < rules.latency_min_baseline_seconds:
            continue
        limit = rules.latency_ratio * median
        if recent.min() > limit:
            alerts.append(
                HealthAlert(
                    rule="sustained_latency_increase",
                    layer=INFRASTRUCTURE,
                    subject=str(step),
                    message=(
                        f"{step}: sustained latency increase — the last {n} runs took "
                        f"{recent.min():.1f}–{recent.max():.1f} s, over {rules.latency_ratio:g}× "
                        f"the median {median:.1f} s of its {len(baseline)} earlier runs"
                    ),
                    value=float(recent.min() / median),
                    threshold=rules.latency_ratio,
                    **_model_tags(group),
                )
            )
    return alerts


def error_rate_alerts(steps: pd.DataFrame, rules: HealthSettings) -> list[HealthAlert]:
    """Steps whose share of failed executions exceeds ``max_error_rate``."""
    alerts = []
    for step, group in _executions(steps).groupby("step", sort=True):
        if len(group) < rules.error_min_runs:
            continue
        failures = int((group["status"] == FAILURE).sum())
        rate = failures / len(group)
        if rate > rules.max_error_rate:
            alerts.append(
                HealthAlert(
                    rule="elevated_error_rate",
                    layer=INFRASTRUCTURE,
                    subject=str(step),
                    message=(
                        f"{step}: elevated error rate — {failures} of {len(group)} runs failed "
                        f"({rate:.1%}, threshold {rules.max_error_rate:.1%})"
                    ),
                    value=rate,
                    threshold=rules.max_error_rate,
                    **_model_tags(group),
                )
            )
    return alerts


def _model_tags(group: pd.DataFrame) -> dict[str, str | None]:
    tagged = group.dropna(subset=["model_id"])
    if tagged.empty:
        return {"model_id": None, "model_version": None}
    last = tagged.iloc[-1]
    version = last["model_version"]
    return {
        "model_id": str(last["model_id"]),
        "model_version": None if pd.isna(version) else str(version),
    }


# -- data ---------------------------------------------------------------------------------------
def quality_flag_rates(clean_paths: Sequence[Path], flag_bits: dict[str, int]) -> dict[str, float]:
    """Share of clean readings carrying each quality flag (bit of ``quality_mask``)."""
    import duckdb

    paths = [str(p) for p in clean_paths if Path(p).exists()]
    if not paths:
        return {}
    con = duckdb.connect()
    try:
        sql = (
            "SELECT "
            + ", ".join(
                f'avg(CASE WHEN quality_mask & {bit} <> 0 THEN 1.0 ELSE 0.0 END) AS "{flag}"'
                for flag, bit in flag_bits.items()
            )
            + f" FROM read_parquet({paths!r})"
        )
        row = con.execute(sql).df().iloc[0].fillna(0.0)
    finally:
        con.close()
    return {flag: float(row[flag]) for flag in flag_bits}


def data_metrics(
    flag_rates: dict[str, float],
    quarantine: pd.DataFrame,
    rows_clean: int,
    freshness: pd.DataFrame,
) -> list[dict]:
    """Data-layer rows: flag rates, quarantined rows (by rule), freshness of each dataset."""
    rows = metric_rows(DATA, "clean_readings", {"rows": rows_clean})
    rows += metric_rows(
        DATA, "quality_flags", {f"rate_{k.lower()}": v for k, v in flag_rates.items()}
    )
    by_rule = quarantine["rule"].value_counts().to_dict() if len(quarantine) else {}
    rows += metric_rows(
        DATA,
        "quarantined_readings",
        {"rows": len(quarantine), **{f"rows_{str(k).lower()}": v for k, v in by_rule.items()}},
    )
    for r in freshness.itertuples():
        rows += metric_rows(
            DATA,
            str(r.dataset),
            {
                "age_minutes": r.age_minutes,
                "sla_minutes": r.sla_minutes,
                "partitions": r.partitions,
            },
        )
    return rows


def freshness_table(
    newest_end: dict[str, pd.Timestamp | None],
    partitions: dict[str, int],
    as_of: pd.Timestamp,
    sla_minutes: dict[str, int],
) -> pd.DataFrame:
    """Per dataset: end of its newest partition, its age at ``as_of`` and the contract's SLA."""
    rows = []
    for dataset, end in newest_end.items():
        age = None if end is None else max(0.0, (as_of - end).total_seconds() / 60)
        rows.append(
            {
                "dataset": dataset,
                "newest_data_end": end,
                "age_minutes": age,
                "sla_minutes": sla_minutes[dataset],
                "partitions": partitions.get(dataset, 0),
                "fresh": age is not None and age <= sla_minutes[dataset],
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "newest_data_end",
            "age_minutes",
            "sla_minutes",
            "partitions",
            "fresh",
        ],
    )


def stale_data_alerts(freshness: pd.DataFrame, as_of: pd.Timestamp) -> list[HealthAlert]:
    """Datasets whose newest partition is older than their contract's freshness SLA."""
    alerts = []
    for r in freshness.itertuples():
        if r.fresh:
            continue
        never = r.age_minutes is None or pd.isna(r.age_minutes)
        age = (
            "has no partition yet"
            if never
            else f"newest data ends {r.age_minutes / 60:.1f} h before {as_of:%Y-%m-%d %H:%M} UTC"
        )
        alerts.append(
            HealthAlert(
                rule="stale_data",
                layer=DATA,
                subject=str(r.dataset),
                message=f"{r.dataset}: stale — {age} (SLA {r.sla_minutes} min)",
                value=float("inf") if never else float(r.age_minutes),
                threshold=float(r.sla_minutes),
            )
        )
    return alerts


# -- model --------------------------------------------------------------------------------------
def expected_rows(feature_files: Sequence[Path], row_minutes: int) -> int:
    """Rows a model scoring one row per device and ``row_minutes`` can make from these feature
    files: the feature windows themselves when its rows are windows, else the distinct
    (device, ``row_minutes`` period) pairs (a model scoring hourly profiles of 15-minute windows
    makes a quarter as many rows, none of them missing)."""
    import pyarrow.parquet as pq

    files = [p for p in feature_files if Path(p).exists()]
    total = 0
    for path in files:
        frame = pq.read_table(path, columns=["device_id", "window_start"]).to_pandas()
        if frame.empty:
            continue
        periods = frame["window_start"].dt.floor(pd.Timedelta(minutes=row_minutes))
        total += int(
            pd.DataFrame({"d": frame["device_id"], "p": periods}).drop_duplicates().shape[0]
        )
    return total


def model_metrics(scores: pd.DataFrame, feature_windows: int, alerts: pd.DataFrame) -> list[dict]:
    """Model-layer rows per (model_id, model_version) found in ``scores``.

    ``feature_windows`` is the number of rows the model could have scored
    (:func:`expected_rows`); rows it left unscored (incomplete input, failed run) count as empty
    predictions. Alert volume counts the active alerts whose ``model_versions`` name this model
    version.
    """
    rows: list[dict] = []
    if scores.empty:
        return rows
    for (model_id, version), group in scores.groupby(["model_id", "model_version"], sort=True):
        s = group["anomaly_score"].astype(float)
        empty = 1 - len(group) / feature_windows if feature_windows else None
        by_severity = _alert_volume(alerts, f"{model_id}@{version}")
        rows += metric_rows(
            MODEL,
            f"{model_id}@{version}",
            {
                "windows_scored": len(group),
                "rows_expected": feature_windows,
                "score_mean": float(s.mean()),
                "score_p50": float(s.quantile(0.5)),
                "score_p90": float(s.quantile(0.9)),
                "score_p99": float(s.quantile(0.99)),
                "flag_rate": float(group["anomaly_flag"].astype(bool).mean()),
                "empty_prediction_rate": None if empty is None else max(0.0, empty),
                **{f"alerts_{sev.lower()}": n for sev, n in by_severity.items()},
            },
            model_id=str(model_id),
            model_version=str(version),
        )
    return rows


def missing_scores_metrics(model_id: str, model_version: str | None, feature_windows: int):
    """Model-layer rows for a trained model that scored none of the day's feature windows."""
    return metric_rows(
        MODEL,
        f"{model_id}@{model_version}",
        {"windows_scored": 0, "empty_prediction_rate": 1.0 if feature_windows else None},
        model_id=model_id,
        model_version=model_version,
    )


def _alert_volume(alerts: pd.DataFrame, model_at_version: str) -> dict[str, int]:
    if alerts.empty:
        return dict.fromkeys(SEVERITIES, 0)
    active = alerts[~alerts["suppressed"].astype(bool)]
    named = active["model_versions"].fillna("").str.split(",")
    # A boolean mask even when no alert is active (an empty object Series would select columns).
    mine = active.loc[named.map(lambda parts: model_at_version in parts).astype(bool)]
    return {sev: int((mine["severity"] == sev).sum()) for sev in SEVERITIES}


def alert_volume_metrics(alerts: pd.DataFrame) -> list[dict]:
    """Active alerts of the day by severity and source (model layer, all models together)."""
    active = alerts[~alerts["suppressed"].astype(bool)] if len(alerts) else alerts
    counts = {
        f"active_{sev.lower()}": int((active["severity"] == sev).sum()) if len(active) else 0
        for sev in SEVERITIES
    }
    counts["suppressed"] = int(alerts["suppressed"].astype(bool).sum()) if len(alerts) else 0
    return metric_rows(MODEL, "device_alerts", counts)


def streaming_batch_agreement(alerts: pd.DataFrame) -> float | None:
    """Share of reconciled streaming alerts the batch scores confirmed (ANOMALY_SUSTAINED vs
    ANOMALY_RESOLVED); None when no streaming alert has been reconciled."""
    if alerts.empty or "source" not in alerts.columns:
        return None
    streaming = alerts[alerts["source"] == "streaming"]
    confirmed = int((streaming["alert_type"] == "ANOMALY_SUSTAINED").sum())
    softened = int((streaming["alert_type"] == "ANOMALY_RESOLVED").sum())
    if confirmed + softened == 0:
        return None
    return confirmed / (confirmed + softened)


def empty_prediction_alerts(rows: Iterable[dict], rules: HealthSettings) -> list[HealthAlert]:
    """Model versions that left more than ``max_empty_prediction_rate`` of windows unscored."""
    alerts = []
    for r in rows:
        if r["layer"] != MODEL or r["metric"] != "empty_prediction_rate" or r["value"] is None:
            continue
        if r["value"] > rules.max_empty_prediction_rate:
            alerts.append(
                HealthAlert(
                    rule="empty_predictions",
                    layer=MODEL,
                    subject=r["subject"],
                    message=(
                        f"{r['subject']}: {r['value']:.1%} of feature windows got no score "
                        f"(threshold {rules.max_empty_prediction_rate:.1%})"
                    ),
                    value=float(r["value"]),
                    threshold=rules.max_empty_prediction_rate,
                    model_id=r["model_id"],
                    model_version=r["model_version"],
                )
            )
    return alerts


def sudden_drop_alert(
    series: pd.Series,
    rule: DropRule,
    *,
    rule_name: str,
    subject: str,
    what: str,
    model_id: str | None = None,
    model_version: str | None = None,
) -> HealthAlert | None:
    """Fires when the mean of the last ``rule.recent_hours`` values of an hourly ``series``
    (sorted by hour) is below (1 - ``rule.drop``) x the mean of up to ``rule.baseline_hours``
    values before them. Needs at least as many baseline hours as recent hours, and a baseline
    mean of at least ``rule.min_baseline``."""
    values = series.sort_index().to_numpy(dtype=float)
    if len(values) < 2 * rule.recent_hours:
        return None
    recent = values[-rule.recent_hours :]
    baseline = values[: -rule.recent_hours][-rule.baseline_hours :]
    base, now = float(baseline.mean()), float(recent.mean())
    if base < rule.min_baseline:
        return None
    limit = (1 - rule.drop) * base
    if now >= limit:
        return None
    return HealthAlert(
        rule=rule_name,
        layer=MODEL,
        subject=subject,
        message=(
            f"{subject}: sudden drop in {what} — {now:.3g} per hour over the last "
            f"{len(recent)} h vs {base:.3g} over the {len(baseline)} h before "
            f"({1 - now / base:.0%} lower, threshold {rule.drop:.0%})"
        ),
        value=1 - now / base,
        threshold=rule.drop,
        model_id=model_id,
        model_version=model_version,
    )


def hourly_mean_scores_from_files(paths: Sequence[Path]) -> pd.Series:
    """Mean anomaly score per UTC hour over score partitions, reading only two columns."""
    import duckdb

    files = [str(p) for p in paths if Path(p).exists()]
    if not files:
        return pd.Series(dtype=float)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        frame = con.execute(
            "SELECT date_trunc('hour', window_start::TIMESTAMPTZ) AS hour, avg(anomaly_score) AS score "
            f"FROM read_parquet({files!r}) GROUP BY 1 ORDER BY 1"
        ).df()
    finally:
        con.close()
    index = pd.to_datetime(frame["hour"], utc=True)
    return pd.Series(frame["score"].to_numpy(dtype=float), index=index)


def active_alerts_per_partition(paths: dict[pd.Timestamp, Path]) -> pd.Series:
    """Active (not suppressed) alerts in each device_alerts partition file, 0 for empty ones."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts = {}
    for hour, path in paths.items():
        if not Path(path).exists():
            continue
        suppressed = pq.read_table(path, columns=["suppressed"])["suppressed"]
        counts[hour] = float(len(suppressed) - pc.sum(suppressed).as_py() if len(suppressed) else 0)
    return pd.Series(counts, dtype=float).sort_index()
