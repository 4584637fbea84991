"""``device_features``: windows of clean readings (15 minutes by default) per device.

The windows are computed by the configured engine (``REFRIG_ENGINE``: embedded DuckDB by
default, Spark when configured) from the same SQL definition, into the same Parquet file. The
contract check and the summary run in SQL over the written file, so a 100K-device hour is never
loaded into pandas here.
"""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import all_model_ids, load_model_config
from refrig_assets.defs.shared.contract_checks import contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import (
    RANGE_MODE,
    hour_by_hour,
    per_range,
    range_backfill_policy,
)
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.engines import embedded
from refrig_assets.features.ranged import write_feature_range
from refrig_assets.ingestion.landing.hour_keys import hour_key

GROUP = "features"
SAMPLE_ROWS = 10


def scoring_floor(models_dir) -> float | None:
    """The lowest ``min_sensor_completeness`` of the configured detectors (None without any)."""
    floors = [
        float(load_model_config(m, models_dir).settings["min_sensor_completeness"])
        for m in all_model_ids(models_dir)
    ]
    return min(floors) if floors else None


def contract_check(path, violations=None) -> dg.AssetCheckResult:
    """device_features contract (types, nulls, ranges, key) evaluated in SQL over the file
    (or the file's ``violations`` as a range body found them)."""
    contract = load_contract("device_features")
    if violations is None:
        violations = embedded.file_violations(path, contract)
    return dg.AssetCheckResult(
        asset_key="device_features",
        check_name="device_features_contract",
        passed=violations.empty,
        metadata={
            "failures": int(violations["failures"].sum()) if len(violations) else 0,
            "contract_version": str(contract.version),  # text: a number would be plotted
            "schema_fingerprint": contract.schema_fingerprint,
            "failing_checks": dg.MetadataValue.md(
                violations.head(SAMPLE_ROWS).astype(str).to_markdown(index=False)
                if len(violations)
                else "none"
            ),
        },
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    partitions_def=hourly_partitions,
    deps=["clean_readings"],
    description="Per device and window: per-sensor mean/std/min/max/last/slope, duty cycle, "
    "door-open share, sensor completeness and the window's quality flags.",
    check_specs=[
        contract_check_spec("device_features", "device_features", True, hourly_partitions)
    ],
    kinds={"parquet", "duckdb", "spark"},
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour(ranged=lambda context, keys, refrig: features_range(context, keys, refrig))
def device_features(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Feature windows of one hour, computed by the configured engine over the clean readings."""
    key = context.partition_key
    source = refrig.store.path("clean_readings", key)
    if not source.exists():
        raise FileNotFoundError(f"device_features {key}: clean_readings not found at {source}")
    cadence = refrig.settings.cadence_seconds
    engine = refrig.engine
    if engine == "spark":
        from refrig_assets.engines import spark

        path = spark.write_features(
            refrig.spark,
            source,
            refrig.store,
            key,
            cadence_seconds=cadence,
            previous=previous_clean(refrig, key),
        )
    else:  # the running state settles after the previous hour's end where that applies
        path = embedded.write_features(
            source, refrig.store, key, cadence_seconds=cadence, previous=previous_clean(refrig, key)
        )
    floor = per_range(context, "scoring_floor", lambda: scoring_floor(refrig.settings.models_dir))
    summary = embedded.feature_summary(path, floor if floor is not None else 0.0)
    return _result(summary, floor, engine, path, contract_check(path))


def previous_clean(refrig: RefrigResource, key: str):
    """The clean readings of the hour before ``key`` (None where there are none)."""
    start = hourly_partitions.time_window_for_partition_key(key).start
    path = refrig.store.path("clean_readings", hour_key(start - timedelta(hours=1)))
    return path if path.exists() else None


def _result(
    summary, floor, engine: str, path, check: dg.AssetCheckResult, extra=None
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            **summary,
            "scoring_completeness_floor": floor if floor is not None else 0.0,
            "engine": engine,
            "path": str(path),
            **(extra or {}),
        },
        check_results=[check],
    )


def features_range(context: dg.AssetExecutionContext, keys: list[str], refrig: RefrigResource):
    """The range body of ``device_features``: every hour of ``keys`` in one pass
    (:mod:`refrig_assets.features.ranged`), yielding each hour's result as the one-hour body
    gives it; or why the range runs hour by hour."""
    if refrig.engine != "duckdb":
        return f"the {refrig.engine} engine computes one hour at a time"
    sources = {k: refrig.store.path("clean_readings", k) for k in keys}
    missing = [k for k, p in sources.items() if not p.exists()]
    if missing:
        return f"clean_readings not found for {missing[0]}"
    floor = scoring_floor(refrig.settings.models_dir)
    hours = write_feature_range(
        sources,
        refrig.store,
        load_contract("device_features"),
        floor if floor is not None else 0.0,
        cadence_seconds=refrig.settings.cadence_seconds,
        previous=previous_clean(refrig, keys[0]),
    )
    return _hour_results(hours, floor)


def _hour_results(hours, floor) -> Iterator[tuple[str, list[dg.MaterializeResult]]]:
    for hour in hours:
        check = contract_check(hour.path, hour.violations)
        mode = {} if hour.mode is None else {RANGE_MODE: hour.mode}  # its group hour by hour
        yield hour.key, [_result(hour.summary, floor, "duckdb", hour.path, check, mode)]


defs = dg.Definitions(assets=[device_features])
