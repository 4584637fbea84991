"""Daily monitoring assets: feature drift, score drift, three-layer pipeline health, a summary.

Each writes its own Parquet partition (contracts ``feature_drift``, ``score_drift``,
``pipeline_health``) and reports numbers as metadata so the Dagster UI plots them across days.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.core.storage import partition_file_name
from refrig_assets.defs.monitoring.instance_stats import step_executions
from refrig_assets.defs.shared.contract_checks import contract_check_result, contract_check_spec
from refrig_assets.defs.shared.partitions import daily_partitions, hourly_partitions, hours_within
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.detectors.base import build_detector
from refrig_assets.features.windows import window_minutes
from refrig_assets.lifecycle.integrity import not_trained_models
from refrig_assets.monitoring import pipeline_health as health
from refrig_assets.monitoring.drift import (
    FLEET,
    SIGNIFICANT,
    feature_drift_table,
    kl_divergence,
    sample_rows,
)
from refrig_assets.monitoring.evidently_report import ReportHeader, write_drift_report
from refrig_assets.monitoring.reference import (
    ReferenceUnavailable,
    model_inputs,
    partition_window,
    read_features,
    reference_for,
    score_reference,
    training_end,
)
from refrig_assets.monitoring.settings import load_monitoring_settings
from refrig_assets.monitoring.summary import (
    drift_report_path,
    feature_drift_markdown,
    health_alerts_path,
    health_markdown,
    score_drift_markdown,
    summary_path,
)
from refrig_assets.quality.rules import flag_bit
from refrig_assets.training.registry import RegistryError

GROUP = "monitoring"
MODEL_IDS = all_model_ids()


def day_hours(context: dg.AssetExecutionContext) -> list[str]:
    """Hourly partition keys of this daily partition."""
    window = context.partition_time_window
    return hours_within(window.start, window.end)


def _not_trained(refrig: RefrigResource, model_id: str) -> str | None:
    """Why the detector's last training fitted nothing (e.g. a fleet too small for it), when
    no version was registered since; None otherwise."""
    return not_trained_models([model_id], refrig.settings.alerts_db_url).get(model_id)


def _production(
    refrig: RefrigResource, model_id: str, context, skipped: dict[str, str] | None = None
) -> str | None:
    """The model's production version, or None: a detector recorded as not trained is skipped
    with its reason (an info line and ``skipped[model_id]``), any other model without one with a
    warning."""
    config = load_model_config(model_id, refrig.settings.models_dir)
    try:
        return refrig.registry.resolve_version(model_id, config.pinned_version)
    except RegistryError as exc:
        reason = _not_trained(refrig, model_id)
        if reason is None:
            context.log.warning(f"{model_id}: not monitored — {exc}")
            return None
        context.log.info(f"{model_id}: not monitored — not trained ({reason})")
        if skipped is not None:
            skipped[model_id] = f"not trained ({reason})"
        return None


class FeatureDriftConfig(dg.Config):
    """``html_report``: also write Evidently's HTML report per model version (slower)."""

    html_report: bool = True


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=daily_partitions,
    deps=["device_features", "device_registry", *[f"{m}_model" for m in MODEL_IDS]],
    description="PSI of every model input, fleet-wide and per cohort, of the day's feature "
    "windows against each production model's training windows; Evidently HTML report per model.",
    check_specs=[
        dg.AssetCheckSpec(
            "no_significant_feature_drift",
            asset="feature_drift",
            partitions_def=daily_partitions,
            description="No model input drifted beyond the significant PSI band.",
        ),
        contract_check_spec("feature_drift", "feature_drift", False, daily_partitions),
    ],
    kinds={"parquet", "evidently"},
)
def feature_drift(
    context: dg.AssetExecutionContext, refrig: RefrigResource, config: FeatureDriftConfig
) -> dg.MaterializeResult:
    """Compare the day's feature windows with each production model's training reference."""
    day = context.partition_key
    store, s = refrig.store, refrig.settings
    stems = [partition_file_name(h) for h in day_hours(context)]
    stems = [st for st in stems if store.exists("device_features", st)]
    if not stems:
        raise FileNotFoundError(f"feature_drift {day}: no device_features partitions that day")
    registry = store.read("device_registry")
    tables, metadata, reports = [], {}, {}
    # Models with the same training hours, current hours and inputs share one report.
    report_inputs: dict[tuple, dict] = {}
    not_compared: dict[str, str] = {}
    for model_id in all_model_ids(s.models_dir):
        version = _production(refrig, model_id, context, not_compared)
        if version is None:
            continue
        settings = load_monitoring_settings(model_id, s.models_dir).drift
        tags = refrig.registry.version_tags(model_id, version)
        try:
            ref = reference_for(store, model_id, version, tags)
        except ReferenceUnavailable as exc:
            context.log.warning(str(exc))
            continue
        current_stems = stems
        if settings.exclude_training_hours:
            current_stems = [st for st in stems if st not in ref.stems]
            if not current_stems:
                # Comparing the training data with itself would read "no drift" for nothing.
                not_compared[f"{model_id} v{version}"] = (
                    f"the day's feature hours are all its training hours ({ref.training_partitions})"
                )
                continue
        features = model_inputs(refrig.registry, model_id, version)
        seed = settings.sample_seed
        reference = read_features(
            store, ref.stems, features, registry, settings.reference_max_rows, seed
        )
        current = read_features(
            store, current_stems, features, registry, settings.current_max_rows, seed
        )
        table = feature_drift_table(reference, current, features, settings)
        table.insert(0, "partition", day)
        table.insert(1, "model_id", model_id)
        table.insert(2, "model_version", version)
        table.insert(3, "training_partitions", ref.training_partitions)
        tables.append(table)
        # One number per model to plot across days; the per-feature figures are in the table.
        metadata[f"max_psi/{model_id}"] = round(float(table["psi"].max()), 4) if len(table) else 0.0
        key = (tuple(ref.stems), tuple(current_stems), tuple(features), settings)
        entry = report_inputs.setdefault(
            key,
            {"models": [], "reference": reference, "current": current, "ref": ref},
        )
        entry["models"].append((model_id, version))
    for (_ref_stems, current_stems, features, settings), entry in report_inputs.items():
        if not config.html_report:
            break
        models = tuple(entry["models"])
        path = drift_report_path(s.home, day, models)
        header = ReportHeader(
            day=day,
            models=models,
            reference_hours=entry["ref"].training_partitions,
            current_hours=f"{current_stems[0]}..{current_stems[-1]} ({len(current_stems)} h)",
        )
        write_drift_report(
            entry["reference"], entry["current"], list(features), path, settings, header
        )
        for model_id, _version in models:
            reports[model_id] = path
    metadata |= drift_metadata(tables, reports, not_compared)
    contract = load_contract("feature_drift")
    result = pd.concat(tables, ignore_index=True) if tables else contract.empty_frame()
    result = result[contract.column_names]
    check = contract_check_result("feature_drift", contract, result)
    path = store.write("feature_drift", day, result)
    significant = result[result["band"] == SIGNIFICANT]
    top_n = load_monitoring_settings(models_dir=s.models_dir).drift.top_features
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "summary": dg.MetadataValue.md(feature_drift_markdown(result, top_n)),
            "models": dg.MetadataValue.json(sorted(result["model_id"].unique().tolist())),
            "feature_hours": len(stems),
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_significant_feature_drift",
                passed=significant.empty,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    "no significant drift"
                    if significant.empty
                    else f"{len(significant)} feature/slice pairs above the significant band"
                ),
                metadata={
                    "significant": dg.MetadataValue.json(
                        significant[["model_id", "cohort", "feature", "psi"]]
                        .round(4)
                        .to_dict("records")[:50]
                    ),
                    "reports": dg.MetadataValue.json({k: str(v) for k, v in reports.items()}),
                },
            ),
            check,
        ],
    )


def drift_metadata(
    tables: list[pd.DataFrame], reports: dict[str, Path], not_compared: dict[str, str]
) -> dict[str, object]:
    """Fleet-wide PSI per model and feature as one table (rounded), a link to each report and
    the models not compared this day, with why."""
    both = pd.concat(tables, ignore_index=True) if tables else None
    fleet = (
        both[both["scope"] == FLEET]
        if both is not None
        else pd.DataFrame(columns=["model_id", "model_version", "feature", "psi", "band"])
    )
    wide = fleet.pivot_table(index="feature", columns="model_id", values="psi", aggfunc="first")
    records = [
        dg.TableRecord(
            {"feature": str(feature), **{m: round(float(v), 4) for m, v in row.items() if v == v}}
        )
        for feature, row in wide.iterrows()
    ]
    columns = [dg.TableColumn("feature", "string")] + [
        dg.TableColumn(str(m), "float") for m in wide.columns
    ]
    out: dict[str, object] = {
        "psi_by_feature": dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns)),
    }
    for path in sorted(set(reports.values())):
        served = ", ".join(m for m, p in sorted(reports.items()) if p == path)
        out[f"report: {served}"] = dg.MetadataValue.path(str(path))
    if not_compared:
        out["not_compared"] = dg.MetadataValue.md(
            "\n".join(f"- {m}: {why}" for m, why in sorted(not_compared.items()))
        )
    return out


def health_layer_tables(metrics: pd.DataFrame) -> dict[str, dg.TableMetadataValue]:
    """One narrow table per layer (subject, metric, value to 4 significant digits, model
    version): fits the Dagster UI where a wide subject × metric table runs off the page."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("subject", "string"),
            dg.TableColumn("metric", "string"),
            dg.TableColumn("value", "float"),
            dg.TableColumn("model_version", "string"),
        ]
    )
    out = {}
    for layer, rows in metrics.groupby("layer", sort=True):
        records = [
            dg.TableRecord(
                {
                    "subject": str(r.subject),
                    "metric": str(r.metric),
                    "value": float(f"{r.value:.4g}") if pd.notna(r.value) else None,
                    "model_version": "" if pd.isna(r.model_version) else str(r.model_version),
                }
            )
            for r in rows.itertuples()
        ]
        out[f"{layer}_metrics"] = dg.MetadataValue.table(records, schema=schema)
    return out


def _scores_for_day(refrig: RefrigResource, model_id: str, day: str, hours: list[str]):
    config = load_model_config(model_id, refrig.settings.models_dir)
    keys = hours if config.schedule == "hourly" else [day]
    return refrig.store.read_many(f"{model_id}_scores", keys), keys


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=daily_partitions,
    deps=[f"{m}_scores" for m in MODEL_IDS] + [f"{m}_model" for m in MODEL_IDS],
    description="KL divergence of each model version's scores of the day against its first "
    "production scores (its first hours after its training data), and the contamination rate "
    "(share of windows flagged) of both.",
    check_specs=[
        dg.AssetCheckSpec(
            "no_score_drift",
            asset="score_drift",
            partitions_def=daily_partitions,
            description="Every model's score KL divergence is within its threshold and the share "
            "of windows it flags within drift.contamination_change of its first production hours "
            "(config/monitoring.yaml).",
        ),
        contract_check_spec("score_drift", "score_drift", False, daily_partitions),
    ],
    kinds={"parquet", "mlflow"},
)
def score_drift(context: dg.AssetExecutionContext, refrig: RefrigResource) -> dg.MaterializeResult:
    """KL(current || reference) of the anomaly scores of each model version scoring that day."""
    day = context.partition_key
    store, s = refrig.store, refrig.settings
    hours = day_hours(context)
    score_range = load_contract("model_scores").column("anomaly_score").range
    rows, metadata = [], {}
    contamination_moved: list[str] = []
    for model_id in all_model_ids(s.models_dir):
        scores, _ = _scores_for_day(refrig, model_id, day, hours)
        if scores.empty:
            reason = _not_trained(refrig, model_id)
            if reason is None:
                context.log.warning(f"{model_id}: no scores on {day}")
            else:
                context.log.info(f"{model_id}: no scores on {day} — not trained ({reason})")
            continue
        settings = load_monitoring_settings(model_id, s.models_dir).drift
        for version, day_scores in scores.groupby("model_version", sort=True):
            version = str(version)
            try:
                trained = reference_for(
                    store, model_id, version, refrig.registry.version_tags(model_id, version)
                )
            except ReferenceUnavailable as exc:
                context.log.warning(str(exc))
                continue
            reference = score_reference(
                store,
                f"{model_id}_scores",
                version,
                training_end(trained),
                settings.kl_reference_hours,
            )
            if reference.empty:
                continue
            ref_from = reference["window_start"].min()
            ref_to = ref_from + pd.Timedelta(hours=settings.kl_reference_hours)
            current = day_scores[day_scores["window_start"] >= ref_to]
            if current.empty:
                context.log.info(
                    f"{model_id} v{version}: {day} lies in its score reference period "
                    f"({ref_from:%Y-%m-%d %H:%M}..{ref_to:%H:%M}); nothing to compare yet"
                )
                continue
            current = sample_rows(current, settings.current_max_rows, settings.sample_seed)
            kl = kl_divergence(
                current["anomaly_score"],
                reference["anomaly_score"],
                settings.kl_bins,
                settings.kl_epsilon,
                score_range,
            )
            row = {
                "partition": day,
                "model_id": model_id,
                "model_version": version,
                "kl_divergence": kl,
                "kl_threshold": settings.kl_threshold,
                "drifted": kl > settings.kl_threshold,
                "contamination_rate": float(current["anomaly_flag"].astype(bool).mean()),
                "reference_contamination_rate": float(
                    reference["anomaly_flag"].astype(bool).mean()
                ),
                "score_mean": float(current["anomaly_score"].mean()),
                "reference_score_mean": float(reference["anomaly_score"].mean()),
                "windows": len(current),
                "reference_windows": len(reference),
                "reference_from": ref_from,
                "reference_to": ref_to,
            }
            rows.append(row)
            change = row["contamination_rate"] - row["reference_contamination_rate"]
            if abs(change) > settings.contamination_change:
                contamination_moved.append(
                    f"{model_id} v{version} contamination {row['contamination_rate']:.1%} vs "
                    f"{row['reference_contamination_rate']:.1%} ({change:+.1%}, limit "
                    f"±{settings.contamination_change:.1%})"
                )
            metadata[f"kl/{model_id}"] = round(kl, 4)
            metadata[f"contamination_change/{model_id}"] = round(change, 4)
    contract = load_contract("score_drift")
    result = pd.DataFrame(rows, columns=contract.column_names) if rows else contract.empty_frame()
    check = contract_check_result("score_drift", contract, result)
    path = store.write("score_drift", day, result)
    drifted = result[result["drifted"].astype(bool)]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "summary": dg.MetadataValue.md(score_drift_markdown(result)),
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_score_drift",
                passed=drifted.empty and not contamination_moved,
                severity=dg.AssetCheckSeverity.WARN,
                description="no score drift"
                if drifted.empty and not contamination_moved
                else "score drift: "
                + ", ".join(
                    [
                        f"{r.model_id} v{r.model_version} KL {r.kl_divergence:.3f}"
                        for r in drifted.itertuples()
                    ]
                    + contamination_moved
                ),
            ),
            check,
        ],
    )


def _freshness(refrig: RefrigResource, day_start, as_of, datasets: dict[str, str]):
    """Newest partition of each dataset that had started by ``as_of``, and the day's count."""
    newest, counts, sla = {}, {}, {}
    for dataset, contract_name in datasets.items():
        windows = [w for st in refrig.store.partitions(dataset) if (w := partition_window(st))]
        windows = [(start, end) for start, end in windows if start < as_of]
        newest[dataset] = max((end for _, end in windows), default=None)
        counts[dataset] = sum(1 for start, _ in windows if start >= day_start)
        sla[dataset] = load_contract(contract_name).freshness_sla_minutes
    return health.freshness_table(newest, counts, as_of, sla)


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=daily_partitions,
    deps=[
        "clean_readings",
        "quarantined_readings",
        "device_features",
        "device_alerts",
        *[f"{m}_scores" for m in MODEL_IDS],
    ],
    description="Health in three separate layers — infrastructure (step durations, failures, "
    "retries from the Dagster instance), data (quality flag rates, quarantine, freshness), model "
    "(score distribution, flag rate, empty predictions, alert volume, streaming vs batch "
    "agreement; tagged with model id and version) — and the health alert rules over them.",
    check_specs=[
        dg.AssetCheckSpec(
            "health_rules",
            asset="pipeline_health",
            partitions_def=daily_partitions,
            description="No health alert rule fired (latency, error rate, drops, freshness).",
        ),
        contract_check_spec("pipeline_health", "pipeline_health", False, daily_partitions),
    ],
    kinds={"parquet", "dagster"},
)
def pipeline_health(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Collect the day's health metrics per layer and evaluate the health alert rules."""
    day = context.partition_key
    rules = load_monitoring_settings(models_dir=refrig.settings.models_dir).health
    model_ids = all_model_ids(refrig.settings.models_dir)
    production = {m: _production(refrig, m, context) for m in model_ids}
    hours = day_hours(context)
    window = context.partition_time_window
    day_start, day_end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    lookback_start = day_start - pd.Timedelta(days=rules.lookback_days)
    lookback_hours = hourly_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(
            hourly_partitions.get_partition_key_for_timestamp(
                max(lookback_start, pd.Timestamp(hourly_partitions.start)).timestamp()
            ),
            hours[-1],
        )
    )
    steps = step_executions(
        context.instance,
        lookback_hours + sorted({h[:10] for h in lookback_hours}),
        set(model_ids),
    )
    rows = health.infrastructure_metrics(steps)
    alerts = health.sustained_latency_alerts(steps, rules)
    alerts += health.error_rate_alerts(steps, rules)
    as_of = min(pd.Timestamp(datetime.now(UTC)), day_end)
    data_rows, data_alerts = _data_layer(refrig, hours, day_start, as_of, production)
    model_rows, model_alerts = _model_layer(
        refrig, day, hours, lookback_hours, (day_start, day_end), production, rules
    )
    rows += data_rows + model_rows
    alerts += data_alerts + model_alerts

    contract = load_contract("pipeline_health")
    result = pd.DataFrame(rows, columns=health.METRIC_COLUMNS)
    result.insert(0, "partition", day)
    result = result[contract.column_names]
    check = contract_check_result("pipeline_health", contract, result)
    path = refrig.store.write("pipeline_health", day, result)
    fired = [a.as_dict() for a in alerts]
    _write_health_alerts(refrig.settings.home, day, fired)
    numeric = {
        f"{r.layer}/{r.subject}/{r.metric}": round(float(r.value), 4)
        for r in result.itertuples()
        if r.value is not None and pd.notna(r.value) and r.metric in _PLOTTED
    }
    return dg.MaterializeResult(
        metadata={
            **numeric,
            "health_alerts": len(fired),
            **health_layer_tables(result),
            "fired": dg.MetadataValue.md(
                "\n".join(f"- **{a['rule']}** ({a['layer']}): {a['message']}" for a in fired)
                or "No health rule fired."
            ),
            "path": str(path),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="health_rules",
                passed=not fired,
                severity=dg.AssetCheckSeverity.WARN,
                description="no health rule fired"
                if not fired
                else "; ".join(a["message"] for a in fired)[:2000],
                metadata={"alerts": dg.MetadataValue.json(fired)},
            ),
            check,
        ],
    )


def _data_layer(refrig: RefrigResource, hours, day_start, as_of, production):
    """Quality flag rates, quarantined rows by rule, and freshness against each contract."""
    store = refrig.store
    clean_paths = [store.path("clean_readings", h) for h in hours]
    flags = {f: flag_bit(f) for f in quality_flag_names()}
    datasets = {
        "sensor_readings": "sensor_readings",
        "clean_readings": "clean_readings",
        "device_features": "device_features",
        "device_alerts": "device_alerts",
        # A detector never trained has no scores to be late with.
        **{f"{m}_scores": "model_scores" for m, version in production.items() if version},
    }
    freshness = _freshness(refrig, day_start, as_of, datasets)
    rows = health.data_metrics(
        health.quality_flag_rates(clean_paths, flags),
        store.read_many("quarantined_readings", hours),
        sum(_rows(p) for p in clean_paths),
        freshness,
    )
    return rows, health.stale_data_alerts(freshness, as_of)


def _model_layer(refrig: RefrigResource, day, hours, lookback_hours, bounds, production, rules):
    """Per model version: scores, flags, empty predictions, alert volume; drops over the
    lookback; streaming vs batch agreement."""
    store, models_dir = refrig.store, refrig.settings.models_dir
    feature_files = [store.path("device_features", h) for h in hours]
    windows = sum(_rows(p) for p in feature_files)
    day_alerts = store.read_many("device_alerts", hours)
    rows, alerts = [], []
    for model_id, production_version in production.items():
        scores, _ = _scores_for_day(refrig, model_id, day, hours)
        # What this model can score: a model of hourly profiles makes fewer rows than windows.
        row_minutes = build_detector(load_model_config(model_id, models_dir)).row_minutes()
        feature_windows = (
            windows
            if row_minutes <= window_minutes()
            else health.expected_rows(feature_files, row_minutes)
        )
        rows += health.model_metrics(scores, feature_windows, day_alerts)
        if scores.empty and production_version:
            rows += health.missing_scores_metrics(model_id, production_version, feature_windows)
        hourly = load_model_config(model_id, models_dir).schedule == "hourly"
        keys = lookback_hours if hourly else sorted({h[:10] for h in lookback_hours})
        version = str(scores["model_version"].iloc[-1]) if len(scores) else None
        drop = health.sudden_drop_alert(
            health.hourly_mean_scores_from_files(
                [store.path(f"{model_id}_scores", k) for k in keys]
            ),
            rules.score_drop,
            rule_name="score_drop",
            subject=f"{model_id}@{version}" if version else model_id,
            what="mean anomaly score",
            model_id=model_id,
            model_version=version,
        )
        alerts += [drop] if drop else []
    alerts += health.empty_prediction_alerts(rows, rules)
    rows += health.alert_volume_metrics(day_alerts)
    streaming = _streaming_alerts(refrig, *bounds)
    rows += health.metric_rows(
        health.MODEL,
        "streaming_vs_batch",
        {
            "agreement": health.streaming_batch_agreement(streaming),
            "streaming_alerts": len(streaming),
        },
    )
    alert_counts = health.active_alerts_per_partition(
        {
            pd.Timestamp(hourly_partitions.time_window_for_partition_key(h).start): store.path(
                "device_alerts", h
            )
            for h in lookback_hours
        }
    )
    drop = health.sudden_drop_alert(
        alert_counts,
        rules.alert_drop,
        rule_name="alert_drop",
        subject="device_alerts",
        what="active alerts",
    )
    return rows, alerts + ([drop] if drop else [])


# Metrics worth a plot per day in the UI (the rest are in the Markdown table and the Parquet).
_PLOTTED = {
    "duration_p95_s",
    "error_rate",
    "retries",
    "age_minutes",
    "score_mean",
    "score_p99",
    "flag_rate",
    "empty_prediction_rate",
    "agreement",
    "active_critical",
    "active_high",
    "active_medium",
    "active_low",
}


def _rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def _streaming_alerts(refrig: RefrigResource, start, end) -> pd.DataFrame:
    alerts = refrig.alerts.list(source="streaming", include_suppressed=True)
    if alerts.empty:
        return alerts
    return alerts[(alerts["window_start"] >= start) & (alerts["window_start"] < end)]


def _write_health_alerts(home, day: str, fired: list[dict]) -> None:
    path = health_alerts_path(home, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(fired, indent=2, default=str))
    tmp.replace(path)


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    partitions_def=daily_partitions,
    deps=["feature_drift", "score_drift", "pipeline_health"],
    description="The day's monitoring in one page: drift per model, score drift, the three "
    "health layers, health alerts and retraining requests (Markdown, also under REFRIG_HOME).",
    kinds={"markdown"},
)
def monitoring_summary(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Assemble the operator's page from the three monitoring datasets of the day."""
    from refrig_assets.monitoring.retraining_trigger import RetrainingLog

    day = context.partition_key
    store, s = refrig.store, refrig.settings
    top_n = load_monitoring_settings(models_dir=s.models_dir).drift.top_features
    read = lambda name: store.read(name, day) if store.exists(name, day) else pd.DataFrame()  # noqa: E731
    features, scores, metrics = read("feature_drift"), read("score_drift"), read("pipeline_health")
    alerts_file = health_alerts_path(s.home, day)
    fired = json.loads(alerts_file.read_text()) if alerts_file.exists() else []
    log = RetrainingLog(s.alerts_db_url)
    requests = log.list()
    log.close()
    requests = requests[requests["drift_partition"].isna() | (requests["drift_partition"] == day)]
    parts = [
        f"# Monitoring {day}",
        "## Feature drift (PSI)",
        feature_drift_markdown(features, top_n) if len(features) else "_not measured_",
        "## Score drift (KL)",
        score_drift_markdown(scores) if len(scores) else "_not measured_",
        "## Pipeline health",
        health_markdown(metrics, fired) if len(metrics) else "_not measured_",
        "## Retraining requests",
        "\n".join(f"- {r.requested_at:%Y-%m-%d %H:%M} {r.reason}" for r in requests.itertuples())
        or "None.",
    ]
    markdown = "\n\n".join(parts)
    path = summary_path(s.home, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(markdown)
    tmp.replace(path)
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(markdown),
            "path": dg.MetadataValue.path(str(path)),
            "retraining_requests": len(requests),
            "health_alerts": len(fired),
        }
    )


monitoring_assets = [feature_drift, score_drift, pipeline_health, monitoring_summary]
