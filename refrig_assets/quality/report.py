"""Data-quality summaries of hourly partitions: what was read, kept, flagged and quarantined.

The quality step writes one small JSON summary per partition next to the datasets
(``<data_dir>/quality_summary/<partition>.json``); :func:`quality_report` combines it with the
quarantine and the freshness of every dataset of the partition, for ``refrig quality report``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import (
    FROM_CONTRACT,
    FROM_DATA,
    absent_measurements,
    devices_lacking,
    fleet_measurements,
    measurements_source,
)
from refrig_assets.core.storage import ParquetStore, partition_file_name
from refrig_assets.quality.freshness import partition_freshness
from refrig_assets.quality.rules import SENSOR_FLAGS, QualityResult

SUMMARY_DATASET = "quality_summary"


def summarise(result: QualityResult) -> dict:
    """The partition's quality numbers as plain JSON-friendly values."""
    clean = result.rows_clean
    q = result.quarantine
    rows_q = q[q["row"] >= 0]
    return {
        "rows_read": result.rows_read,
        "rows_clean": clean,
        "rows_quarantined": result.rows_quarantined,
        "rejected_files": [r.source_file for r in result.rejected_files],
        "quarantine_rate": result.rows_quarantined / result.rows_read if result.rows_read else 0.0,
        "completeness": round(result.completeness, 6),
        "flag_counts": result.flag_counts,
        "flag_rates": {f: (n / clean if clean else 0.0) for f, n in result.flag_counts.items()},
        "flag_rates_by_sensor": {
            flag: {
                sensor: (n / clean if clean else 0.0)
                for (f, sensor), n in result.sensor_flag_counts.items()
                if f == flag
            }
            for flag in SENSOR_FLAGS
        },
        "quarantined_by_rule": {str(k): int(v) for k, v in q["rule"].value_counts().items()},
        "quarantined_rows_by_file": {
            str(k): int(v) for k, v in rows_q["source_file"].value_counts().items()
        },
        "nan_storm_files": result.nan_storm_files,
        "unregistered_case_variants": by_registered_id(result.case_variants),
    }


def by_registered_id(case_variants: dict[str, str]) -> dict[str, list[str]]:
    """{registered id: the spellings of it seen} from {spelling seen: registered id} (see
    :func:`refrig_assets.quality.rules.case_variants`)."""
    out: dict[str, list[str]] = {}
    for seen, known in sorted(case_variants.items()):
        out.setdefault(known, []).append(seen)
    return out


def summary_path(store: ParquetStore, partition_key: str) -> Path:
    return store.root / SUMMARY_DATASET / f"{partition_file_name(partition_key)}.json"


def write_summary(store: ParquetStore, partition_key: str, summary: dict) -> Path:
    """Atomically write the summary of one partition."""
    path = summary_path(store, partition_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def quality_report(store: ParquetStore, partition_key: str, now: datetime | None = None) -> dict:
    """Rows read/clean/quarantined, quarantine by rule and by file, flag rates per sensor and
    the freshness of each dataset of one partition. Raises FileNotFoundError when the partition
    has not been through the quality step."""
    path = summary_path(store, partition_key)
    if not path.exists():
        raise FileNotFoundError(
            f"no quality summary for partition {partition_key} (expected {path}); "
            "materialize clean_readings for it first"
        )
    summary = json.loads(path.read_text())
    quarantine = (
        store.read("quarantined_readings", partition_key)
        if store.exists("quarantined_readings", partition_key)
        else pd.DataFrame(columns=["source_file", "rule"])
    )
    by_file = (
        quarantine.groupby(["source_file", "rule"]).size().rename("rows").reset_index()
        if len(quarantine)
        else pd.DataFrame(columns=["source_file", "rule", "rows"])
    )
    return {
        "partition": partition_key,
        **summary,
        "quarantined_by_file": [
            {"source_file": r.source_file, "rule": r.rule, "entries": int(r.rows)}
            for r in by_file.itertuples()
        ],
        "freshness": partition_freshness(store, partition_key, now or datetime.now(UTC)),
        **fleet_sensors(),
        "sensors_never_reported": never_reported(summary),
    }


def fleet_sensors() -> dict:
    """The measurements the fleet has (``fleet_sensors``), where they come from
    (``fleet_sensors_source``: ``data`` — what its ingested hours reported —, ``REFRIG_SENSORS``
    or ``contract`` — nothing recorded yet: all), the contract's others
    (``sensors_not_fitted``) and, per fleet sensor, how many devices' kits lack it
    (``devices_without_sensor``: never reported by them, so never a dropout there)."""
    readings = load_contract("sensor_readings")
    return {
        "fleet_sensors": fleet_measurements(readings),
        "fleet_sensors_source": measurements_source(readings),
        "sensors_not_fitted": absent_measurements(readings),
        "devices_without_sensor": {s: len(d) for s, d in devices_lacking(readings).items()},
    }


def never_reported(summary: dict) -> list[str]:
    """Fleet sensors without a value in any clean reading of the partition (a dropout rate of
    1): a sensor the whole fleet reported before and lost in this hour, or one named in
    ``REFRIG_SENSORS`` that the fleet does not have."""
    if not summary.get("rows_clean"):
        return []
    rates = (summary.get("flag_rates_by_sensor") or {}).get("SENSOR_DROPOUT") or {}
    return [sensor for sensor, rate in rates.items() if rate >= 1.0]


_SOURCES = {
    FROM_DATA: "what the ingested hours reported",
    FROM_CONTRACT: "every measurement of the contract: no hour ingested yet",
}


def format_report(report: dict) -> str:
    """The report as text for a terminal."""
    source = report.get("fleet_sensors_source", "")
    lines = [
        f"Quality of partition {report['partition']}",
        f"  rows read {report['rows_read']:,}   clean {report['rows_clean']:,}   "
        f"quarantined {report['rows_quarantined']:,}   "
        f"(read = clean + quarantined: {report['rows_read'] == report['rows_clean'] + report['rows_quarantined']})",
        f"  sensor completeness {report['completeness']:.4f}",
        f"  fleet sensors ({_SOURCES.get(source, source)}): "
        + (", ".join(report.get("fleet_sensors") or []) or "none"),
        "  sensors not fitted (no flag, feature, rule or detector uses them): "
        + (", ".join(report.get("sensors_not_fitted") or []) or "none"),
        "  devices whose kit lacks a fleet sensor (never reported it: no dropout there): "
        + (
            ", ".join(f"{s} {n}" for s, n in (report.get("devices_without_sensor") or {}).items())
            or "none"
        ),
        "  fleet sensors never reported in the partition (no value in any reading: lost by "
        "the whole fleet, or named in REFRIG_SENSORS and not delivered): "
        + (", ".join(report.get("sensors_never_reported") or []) or "none"),
        "  quarantined by rule:",
    ]
    lines += [f"    {k:<20} {v:>10,}" for k, v in sorted(report["quarantined_by_rule"].items())]
    if not report["quarantined_by_rule"]:
        lines.append("    none")
    lines.append("  quarantined by file:")
    lines += [
        f"    {e['source_file']:<40} {e['rule']:<20} {e['entries']:>10,}"
        for e in report["quarantined_by_file"]
    ] or ["    none"]
    lines.append("  flag rates (share of clean readings):")
    lines += [f"    {k:<20} {v:.5f}" for k, v in report["flag_rates"].items()]
    lines.append("  flag rates per sensor:")
    for flag, per_sensor in report["flag_rates_by_sensor"].items():
        cells = ", ".join(f"{s} {r:.5f}" for s, r in per_sensor.items())
        lines.append(f"    {flag:<16} {cells}")
    lines.append("  freshness:")
    for dataset, f in report["freshness"].items():
        age = f"{f['age_minutes']:.0f} min" if f["age_minutes"] is not None else "-"
        lines.append(
            f"    {dataset:<22} {f['state']:<10} updated {f['updated_at'] or '-'} "
            f"(age {age}, SLA {f['sla_minutes']} min){'  ' + f['reason'] if f['reason'] else ''}"
        )
    return "\n".join(lines)
