"""The late-data sensor: landing files that change an hour already materialized refresh it."""

import hashlib
import json

import dagster as dg

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import get_settings
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.ingestion.landing.hours import hours_to_refresh
from refrig_assets.ingestion.landing.index import LandingIndex, landing_index_path
from refrig_assets.ingestion.settings import load_ingestion_settings

JOB = "hourly_pipeline"


def _run_key(hour: str, index: LandingIndex, changes: dict) -> str:
    """Same hour and same landing change -> same key, so a pending refresh is requested once."""
    spans = {f: index.entries[f].fingerprint for f in changes["added"] + changes["changed"]}
    digest = hashlib.sha256(json.dumps([changes, spans], sort_keys=True).encode()).hexdigest()
    return f"late-data:{hour}:{digest[:16]}"


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing directory. A new or changed file whose readings belong to "
    "an hour already materialized requests that hour again, for every asset of the hourly "
    "pipeline that was materialized for it (readings → quality → features → scores → alerts). "
    "A removed file (archiving, retention, an unmounted directory) requests nothing unless "
    "landing.authoritative is true in config/ingestion.yaml. Re-materializing is idempotent, "
    "so a duplicate request changes nothing.",
)
def late_landing_files(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One RunRequest per materialized hour whose landing files differ from what it read."""
    settings = get_settings()
    index = LandingIndex(landing_index_path(settings))
    changes = hours_to_refresh(
        settings.landing_dir,
        load_contract("sensor_readings"),
        index,
        authoritative=load_ingestion_settings().authoritative,
    )
    index.save()  # spans of new files, so the runs do not scan them again
    instance = context.instance
    done = instance.get_materialized_partitions(dg.AssetKey("sensor_readings"))
    stale = {h: c for h, c in sorted(changes.items()) if h in done}
    if not stale:
        return dg.SkipReason("no landing file changed for an hour already materialized")
    graph = context.repository_def.asset_graph
    keys = sorted(
        (
            k
            for k in graph.get_all_asset_keys()
            if k != dg.AssetKey("device_registry")
            and graph.get(k).is_materializable
            and graph.get(k).partitions_def == hourly_partitions
        ),
        key=lambda k: k.to_user_string(),
    )
    materialized = {k: instance.get_materialized_partitions(k) for k in keys}
    requests = []
    for hour, change in stale.items():
        selection = [k for k in keys if hour in materialized[k]]
        context.log.info(
            f"{hour}: landing files changed {change}; refreshing {len(selection)} assets"
        )
        requests.append(
            dg.RunRequest(
                run_key=_run_key(hour, index, change),
                partition_key=hour,
                asset_selection=selection,
                tags={
                    "refrig/trigger": "late_landing_files",
                    "refrig/files_added": ",".join(change["added"])[:200],
                    "refrig/files_changed": ",".join(change["changed"])[:200],
                    "refrig/files_removed": ",".join(change["removed"])[:200],
                },
            )
        )
    return dg.SensorResult(run_requests=requests)
