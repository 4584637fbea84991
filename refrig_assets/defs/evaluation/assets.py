"""``detection_backtest``: alerts and scores joined with labelled faults, per fault type and
per detector, shown as Markdown tables in the asset's metadata.

Labels exist for simulated fleets (``settings.labels_path``); a real fleet has none, and then
the asset materializes with a note instead of numbers.
"""

import dagster as dg
import pandas as pd

from refrig_assets.core.model_config import all_model_ids
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.score_assets import score_asset_keys
from refrig_assets.evaluation.backtest import (
    backtest,
    fleet_flagged_scores,
    incident_backtest,
    markdown_table,
    pipeline_incidents,
    replayed_streaming_alerts,
    score_backtest,
)
from refrig_assets.simulator.faults import FAULT_CAUSES
from refrig_assets.training.fit import training_partitions

GROUP = "evaluation"


class BacktestConfig(dg.Config):
    """Which hours to evaluate (hourly partition keys, inclusive); default: every hour present."""

    start_partition: str | None = None
    end_partition: str | None = None


@dg.asset(
    group_name=GROUP,
    owners=["team:ml-platform"],
    deps=["device_alerts", *score_asset_keys()],
    description="Detection quality against labelled faults: per fault type incident recall, "
    "detection delay from onset and true alerts; alert precision and false alerts per 1,000 "
    "device-days; the same per detector from its flagged scores; point-wise F1, false- and "
    "missed-alarm rates and event recall/precision/delay per source (refrig evaluate). Skipped (with a note) when "
    "there is no labels file, as on a real fleet.",
    kinds={"parquet"},
)
def detection_backtest(
    context: dg.AssetExecutionContext, refrig: RefrigResource, config: BacktestConfig
) -> dg.MaterializeResult:
    """Join the alerts and flagged scores of the evaluated hours with the labels file."""
    labels_path = refrig.settings.labels_path
    if not labels_path.exists():
        context.log.info(f"no labels at {labels_path}: nothing to evaluate against")
        return dg.MaterializeResult(
            metadata={
                "evaluated": False,
                "note": f"No labels file at {labels_path}. Labelled faults come with simulated "
                "fleets; a real fleet has none, so there is nothing to score detection against.",
            }
        )
    stems = training_partitions(refrig.store, config.start_partition, config.end_partition)
    if not stems:
        raise ValueError("no device_features partitions in the requested range")
    labels = pd.read_parquet(labels_path)
    devices = refrig.store.read("device_registry")["device_id"].nunique()
    device_hours = float(devices * len(stems))
    paths = [refrig.store.root / "device_alerts" / f"{s}.parquet" for s in stems]
    frames = [pd.read_parquet(p) for p in paths if p.exists()]
    alerts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if alerts.empty:
        alerts = pd.DataFrame(columns=["device_id", "window_start", "window_end", "suppressed"])
    per_type, totals = backtest(alerts, labels, device_hours)
    model_ids = all_model_ids(refrig.settings.models_dir)
    flagged, counts = fleet_flagged_scores(refrig.store, model_ids, stems)
    per_model = score_backtest(flagged, labels, device_hours, rows_scored=counts)
    refrig.store.write("detection_backtest", None, per_type)
    labelled, best = labelled_tables(refrig.store, labels, model_ids, stems)
    # Incident-level figures: the incidents build_incidents makes of these hours (as the
    # device_incidents asset does), against the labelled faults.
    streaming = replayed_streaming_alerts(refrig.store, stems)
    build, _, registry = pipeline_incidents(refrig.store, stems, streaming)
    per_incident, incident_totals = incident_backtest(
        build.incidents, labels, device_hours, devices=registry, expected_causes=FAULT_CAUSES
    )
    context.log.info(
        f"recall {totals['recall']:.2f}, precision {totals['precision']:.2f}, "
        f"{totals['false_alerts_per_1000_device_days']:.1f} false alerts / 1,000 device-days"
    )
    return dg.MaterializeResult(
        metadata={
            "evaluated": True,
            "hours": f"{stems[0]}..{stems[-1]}",
            "device_days": device_hours / 24,
            "per_fault_type": dg.MetadataValue.md(markdown_table(per_type)),
            "per_detector": dg.MetadataValue.md(markdown_table(per_model)),
            "labelled_evaluation": dg.MetadataValue.md(markdown_table(labelled)),
            "best_score_thresholds": dg.MetadataValue.md(markdown_table(best)),
            "per_fault_type_incidents": dg.MetadataValue.md(markdown_table(per_incident)),
            **{k: float(v) for k, v in totals.items()},
            **{f"incident_{k}": float(v) for k, v in incident_totals.items()},
        }
    )


def labelled_tables(
    store, labels: pd.DataFrame, model_ids: list[str], stems: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Point- and event-wise metrics per prediction source (``refrig evaluate``) over the
    evaluated hours, and each detector's best score threshold."""
    from refrig_assets.evaluation.labelled import best_thresholds, evaluate_store, parse_labels

    start = pd.Timestamp(stems[0][:13] + ":00", tz="UTC")
    end = pd.Timestamp(stems[-1][:13] + ":00", tz="UTC") + pd.Timedelta(hours=1)
    metrics, sweep, _sources, _by_kind, _data_loss_only = evaluate_store(
        store, parse_labels(labels), model_ids, start, end
    )
    return metrics, best_thresholds(sweep)


defs = dg.Definitions(assets=[detection_backtest])
