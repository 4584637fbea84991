"""What an operator reads: Markdown summaries of drift and health, and the lines ``make run``
prints at its end (drift report paths, top drifting features, retraining requests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from refrig_assets.monitoring.drift import FLEET, top_drifting

REPORTS = "reports"


def drift_report_path(home: Path, day: str, models: Sequence[tuple[str, str]]) -> Path:
    """Where the day's Evidently HTML report of one input set is kept, named by the
    ``(model_id, version)`` pairs it serves (models with the same inputs share one report)."""
    name = "+".join(f"{m}-v{v}" for m, v in sorted(models))
    return Path(home) / REPORTS / "drift" / day / f"{name}.html"


def drift_report_for(home: Path, day: str, model_id: str, model_version: str) -> Path | None:
    """The day's drift report that covers ``model_id`` ``model_version`` (None: none written)."""
    token = f"{model_id}-v{model_version}"
    folder = Path(home) / REPORTS / "drift" / day
    found = [p for p in sorted(folder.glob("*.html")) if token in p.stem.split("+")]
    return found[0] if found else None


def summary_path(home: Path, day: str) -> Path:
    """The day's monitoring summary (Markdown)."""
    return Path(home) / REPORTS / "monitoring" / f"{day}.md"


def health_alerts_path(home: Path, day: str) -> Path:
    """The health alerts that fired for a day (JSON list)."""
    return Path(home) / REPORTS / "health" / f"{day}.json"


def _slice(row) -> str:
    return "fleet" if row.scope == FLEET else f"cohort {row.cohort}"


def feature_drift_markdown(table: pd.DataFrame, top_n: int) -> str:
    """Per model version: worst features and slices, and how many features sit in each band."""
    if table.empty:
        return "_No feature drift measured (no trained model or too few windows)._"
    out = []
    for (model_id, version), rows in table.groupby(["model_id", "model_version"], sort=True):
        fleet = rows[rows["scope"] == FLEET]
        bands = fleet["band"].value_counts()
        cohort_sig = rows[(rows["scope"] != FLEET) & (rows["band"] == "significant")]
        out.append(
            f"#### {model_id} v{version} (reference {rows['training_partitions'].iloc[0]})\n"
            f"Fleet-wide: {int(bands.get('significant', 0))} significant, "
            f"{int(bands.get('moderate', 0))} moderate, {int(bands.get('none', 0))} stable "
            f"features; {cohort_sig['cohort'].nunique()} cohort(s) with significant drift.\n\n"
            "| feature | slice | PSI | band |\n|---|---|---:|---|"
        )
        for r in top_drifting(rows, top_n).itertuples():
            out.append(f"| {r.feature} | {_slice(r)} | {r.psi:.3f} | {r.band} |")
        out.append("")
    return "\n".join(out)


def score_drift_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_No score drift measured._"
    lines = [
        "| model | KL | threshold | contamination | reference contamination | windows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        flag = " **drift**" if r.drifted else ""
        lines.append(
            f"| {r.model_id} v{r.model_version} | {r.kl_divergence:.4f}{flag} | {r.kl_threshold:g} "
            f"| {r.contamination_rate:.2%} | {r.reference_contamination_rate:.2%} | {r.windows} |"
        )
    return "\n".join(lines)


def health_markdown(metrics: pd.DataFrame, alerts: list[dict]) -> str:
    """The three layers side by side, then the rules that fired."""
    out = []
    for layer in ("infrastructure", "data", "model"):
        rows = metrics[metrics["layer"] == layer]
        out.append(f"#### {layer.capitalize()}")
        if rows.empty:
            out.append("_nothing recorded_\n")
            continue
        wide = rows.pivot_table(
            index="subject", columns="metric", values="value", aggfunc="first", sort=True
        )
        out.append(_markdown_table(wide))
        out.append("")
    out.append("#### Health alerts")
    if alerts:
        out += [f"- **{a['rule']}** ({a['layer']}): {a['message']}" for a in alerts]
    else:
        out.append("None fired.")
    return "\n".join(out)


def _markdown_table(wide: pd.DataFrame) -> str:
    columns = list(wide.columns)
    lines = ["| subject | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for subject, row in wide.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.4g}" for v in row.to_numpy()]
        lines.append(f"| {subject} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_summary_lines(
    store, home: Path, days: list[str], top_n: int, requests=(), health_alerts=()
) -> list[str]:
    """Closing lines of ``refrig pipeline run``: score drift, health alerts and retraining due,
    then per day and model the drift report and the features that drifted most."""
    lines = ["== Monitoring =="]
    for day in days:
        if store.exists("score_drift", day):
            for r in store.read("score_drift", day).itertuples():
                lines.append(
                    f"{day} {r.model_id} v{r.model_version}: score KL {r.kl_divergence:.4f} "
                    f"(threshold {r.kl_threshold:g}), contamination {r.contamination_rate:.2%} "
                    f"vs {r.reference_contamination_rate:.2%} in its first hours"
                )
        md = summary_path(home, day)
        if md.exists():
            lines.append(f"{day} monitoring summary: {md}")
    lines += _grouped_health_lines(health_alerts)
    due = [
        f"retraining due: {r.reason} (requested by the retraining_trigger sensor)" for r in requests
    ]
    lines += due or ["retraining due: none (no significant drift)"]
    for day in days:
        if not store.exists("feature_drift", day):
            lines.append(f"{day}: no drift measured (feature_drift not materialized)")
            continue
        table = store.read("feature_drift", day)
        seen: dict[tuple, str] = {}
        for (model_id, version), rows in table.groupby(["model_id", "model_version"], sort=True):
            report = drift_report_for(home, day, model_id, version)
            lines.append(f"{day} {model_id} v{version}: drift report {report or 'not written'}")
            top = top_drifting(rows, top_n)
            key = tuple(zip(top["feature"], top["cohort"], top["psi"].round(6), strict=True))
            if key in seen:  # same inputs and training hours as a model listed above
                lines.append(f"  top drifting features: as for {seen[key]}")
                continue
            seen[key] = model_id
            lines.append("  top drifting features:")
            for r in top.itertuples():
                lines.append(f"    {r.feature:<38} {_slice(r):<30} PSI {r.psi:6.3f}  {r.band}")
    return lines


def _grouped_health_lines(alerts) -> list[str]:
    """One line per fired rule; a rule that fired for several subjects lists them."""
    by_rule: dict[str, list[dict]] = {}
    for a in alerts:
        by_rule.setdefault(a["rule"], []).append(a)
    lines = []
    for rule, fired in by_rule.items():
        if len(fired) == 1:
            lines.append(f"health: {fired[0]['message']}")
        else:
            subjects = ", ".join(a["subject"] for a in fired)
            lines.append(
                f"health: {rule} on {len(fired)} subjects ({subjects}); first: "
                f"{fired[0]['message']}"
            )
    return lines


def pipeline_run_summary(hour_keys: list[str]) -> str:
    """The monitoring section ``refrig pipeline run`` ends with, for the days of ``hour_keys``
    (partition keys ``2026-01-01-05:00``)."""
    import json

    from refrig_assets.core.settings import get_settings
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.monitoring.retraining_trigger import requests_for_day
    from refrig_assets.monitoring.settings import load_monitoring_settings
    from refrig_assets.training.registry import ModelRegistry

    s = get_settings()
    store = ParquetStore(s.data_dir)
    registry = ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)
    days = sorted({k[:10] for k in hour_keys})
    requests = [r for d in days for r in requests_for_day(store, registry, d, None, s.models_dir)]
    fired = []
    for day in days:
        path = health_alerts_path(s.home, day)
        fired += json.loads(path.read_text()) if path.exists() else []
    top_n = load_monitoring_settings(models_dir=s.models_dir).drift.top_features
    return "\n".join(run_summary_lines(store, s.home, days, top_n, requests, fired))
