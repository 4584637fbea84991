"""``device_incidents``: one incident per fault episode, site event or sensor ticket, hourly."""

import logging

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.defs.shared.contract_checks import contract_check_result, contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import hour_by_hour, per_range, range_backfill_policy
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.engines.device_shards import hour_shards
from refrig_assets.incidents.build import never_reported_message
from refrig_assets.incidents.causes import HourDiagnosis
from refrig_assets.incidents.causes_store import CauseStore
from refrig_assets.incidents.hourly import run_hour, summary
from refrig_assets.incidents.repository import IncidentStore
from refrig_assets.incidents.signatures import load_signatures

_log = logging.getLogger(__name__)
GROUP = "alerts"
EVIDENCE_CHECK = "device_incidents_every_alert_linked"
# Incidents shown in the materialization's table, most severe live ones first.
TOP = 15


def _table(incidents: pd.DataFrame) -> str:
    """A markdown table of the most severe live incidents for the Dagster UI."""
    live = incidents[incidents["status"].isin(["OPEN", "ACKNOWLEDGED"])]
    if live.empty:
        return "No live incidents touched in this hour."
    rank = {
        s: i
        for i, s in enumerate(load_contract("device_incidents").column("severity").allowed or ())
    }
    live = live.assign(_r=live["severity"].map(rank)).sort_values(["_r", "first_window_start"])
    lines = [
        "| severity | incident | device / site | cause | since | alerts | inhibited |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in live.head(TOP).itertuples():
        where = r.device_id if r.scope == "device" else f"site {r.site_id}"
        lines.append(
            f"| {r.severity} | {r.incident_id} | {where} | {r.cause} ({r.cause_confidence:.2f}) "
            f"| {pd.Timestamp(r.first_window_start):%Y-%m-%d %H:%M} | {r.alert_count} | "
            f"{'yes' if r.inhibited else ''} |"
        )
    return "\n".join(lines)


def _warn_never_reported(context: dg.AssetExecutionContext, sensors: list[str]) -> None:
    """Log the sensors no device reported once per run (a ranged run's hours share the note):
    to the run's event log and to Python logging, which ``refrig pipeline run`` prints (it
    keeps Dagster's console quiet)."""
    warned: set[str] = per_range(context, "sensors_never_reported", set)
    new = [s for s in sensors if s not in warned]
    if not new:
        return
    warned.update(new)
    context.log.warning(never_reported_message(new))
    _log.warning(never_reported_message(new))


@dg.asset(
    group_name=GROUP,
    owners=["team:refrigeration-ops"],
    partitions_def=hourly_partitions,
    deps=["device_alerts", "device_features", "device_registry"],
    description="Incidents operators work with: the hour's window-level alerts (batch and "
    "streaming), standalone probable causes, persisting sensor-health flags and site-wide "
    "power or communications loss grouped into one incident per fault episode, with a probable "
    "cause from config/causes.yaml and a severity by impact (config/incidents.yaml). Incidents "
    "close after the hysteresis, reopen when the same cause returns, and are upserted into the "
    "alert database with every alert linked as evidence; a page is queued when one opens or its "
    "severity rises (not for inhibited incidents or sensor tickets).",
    check_specs=[
        contract_check_spec("device_incidents", "device_incidents", True, hourly_partitions),
        dg.AssetCheckSpec(
            EVIDENCE_CHECK,
            asset="device_incidents",
            description="Every alert of the hour (batch and streaming) is evidence of an "
            "incident: nothing an operator should see is dropped by the grouping.",
            partitions_def=hourly_partitions,
        ),
    ],
    kinds={"parquet", "sqlite"},
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour
def device_incidents(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Diagnose the hour's windows, group its signals into incidents, store and report them."""
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    key = context.partition_key
    incidents = IncidentStore(refrig.alerts)
    # Device shard by shard (memory budget): the hour's features are never in memory at once.
    shards = hour_shards(refrig.store, [key])
    result = run_hour(
        refrig.store,
        incidents,
        key,
        start,
        end,
        HourDiagnosis(
            refrig.settings,
            key,
            # One store and signature table for all the hours of a range (a baseline file is
            # read and indexed once while the hours reuse it).
            store=per_range(context, "cause_store", lambda: CauseStore.open(refrig.settings)),
            table=per_range(context, "signatures", load_signatures),
        ),
        shards=shards,
        warn_never_reported=False,
    )
    _warn_never_reported(context, result.never_reported)
    path = refrig.store.write("device_incidents", key, result.incidents)
    figures = summary(result)
    contract = load_contract("device_incidents")
    linked = dg.AssetCheckResult(
        check_name=EVIDENCE_CHECK,
        passed=not result.alerts_unlinked,
        metadata={
            "alerts": result.alerts_seen,
            "unlinked": len(result.alerts_unlinked),
            "first_unlinked": dg.MetadataValue.json(result.alerts_unlinked[:20]),
        },
    )
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in figures.items() if isinstance(v, int | float)},
            **{k: dg.MetadataValue.json(v) for k, v in figures.items() if isinstance(v, dict)},
            "live_incidents": dg.MetadataValue.md(_table(result.incidents)),
            "sensors_never_reported": figures["sensors_never_reported"],
            "device_shards": len(shards),
            "path": str(path),
        },
        check_results=[
            contract_check_result("device_incidents", contract, result.incidents),
            linked,
        ],
    )


defs = dg.Definitions(assets=[device_incidents])
