"""Assets reading the outside world: ``sensor_readings`` (landing zone) and ``device_registry``."""

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.duck import connect, sql_str
from refrig_assets.core.fleet_sensors import record_hour_measurements
from refrig_assets.defs.shared.contract_checks import contract_check_spec
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.ranges import (
    RANGE_MODE,
    checks_at_once,
    hour_by_hour,
    hour_connection,
    in_range,
    per_range,
    range_backfill_policy,
    written_in_groups,
)
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.defs.shared.schema_checks import (
    contract_version_metadata,
    schema_check,
    schema_check_spec,
    sql_contract_check,
)
from refrig_assets.engines.memory import SPILL_DIR, hold_to_budget
from refrig_assets.ingestion.device_registry import (
    apply_cohort_policy,
    load_device_registry,
    load_registry_policy,
    registry_findings,
)
from refrig_assets.ingestion.landing.hour_keys import hour_key
from refrig_assets.ingestion.landing.hours import HourReadings, LandingListing, hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex, landing_index_path
from refrig_assets.ingestion.settings import load_ingestion_settings

GROUP = "ingestion"


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    description="The fleet's device registry (site, cohort, per-device thresholds), with defaults "
    "filled from the contract.",
    check_specs=[
        contract_check_spec("device_registry", "device_registry", blocking=True),
        dg.AssetCheckSpec(
            "device_registry_keys_and_cohorts",
            asset="device_registry",
            blocking=True,
            description="One row per device_id (duplicates are named with their rows and the "
            "registry is not replaced); cohorts not known to config/registry.yaml are flagged "
            "(warning), moved to the `unknown` cohort, or refused, as it says.",
        ),
    ],
    kinds={"parquet"},
)
def device_registry(refrig: RefrigResource) -> dg.MaterializeResult:
    """Read the registry file (CSV or Parquet) named by REFRIG_DEVICE_REGISTRY. A registry
    with duplicated devices (or refused cohorts) is reported and not stored: the previous one
    stays in use."""
    from refrig_assets.defs.shared.contract_checks import contract_check_result

    source = refrig.settings.registry_path
    policy = load_registry_policy()
    registry = load_device_registry(source)
    findings = registry_findings(registry, policy)
    registry = apply_cohort_policy(registry, findings, policy)
    refused = bool(findings.duplicates) or (
        bool(findings.unknown_cohorts) and policy.unknown_cohorts == "fail"
    )
    problems = findings.messages(str(source))
    keys_check = dg.AssetCheckResult(
        check_name="device_registry_keys_and_cohorts",
        passed=not problems or (policy.unknown_cohorts == "default" and not refused),
        severity=dg.AssetCheckSeverity.ERROR if refused else dg.AssetCheckSeverity.WARN,
        metadata={
            "duplicated_devices": len(findings.duplicates),
            "unknown_cohorts": dg.MetadataValue.json(
                {c: len(d) for c, d in findings.unknown_cohorts.items()}
            ),
            "unknown_cohort_policy": policy.unknown_cohorts,
            "problems": dg.MetadataValue.md("\n".join(f"- {m}" for m in problems) or "none"),
        },
    )
    stored = None if refused else refrig.store.write("device_registry", None, registry)
    check = contract_check_result("device_registry", load_contract("device_registry"), registry)
    return dg.MaterializeResult(
        metadata={
            "devices": int(registry["device_id"].nunique()),
            "sites": int(registry["site_id"].nunique()),
            "cohorts": dg.MetadataValue.json(registry["cohort"].value_counts().to_dict()),
            "source": str(source),
            "path": str(stored) if stored else "not stored: the previous registry stays in use",
        },
        check_results=[check, keys_check],
    )


@dg.asset(
    group_name=GROUP,
    owners=["team:data-platform"],
    partitions_def=hourly_partitions,
    description="Typed readings of one UTC hour, gathered from every landing file (Parquet/CSV), "
    "with the source file and row of each reading. Rows that cannot be typed and files that "
    "cannot be read are kept with their rule (read_error) for the quarantine.",
    check_specs=[
        dg.AssetCheckSpec(
            "landing_files_readable",
            asset="sensor_readings",
            partitions_def=hourly_partitions,
            description="Every landing file for this hour could be read (rejected files are "
            "quarantined, named with their rule), and the hour has readings. An hour without "
            "any (a gateway outage, or every file rejected) is a warning: its partitions are "
            "empty and the pipeline runs on.",
        ),
        dg.AssetCheckSpec(
            "sensor_readings_contract",
            asset="sensor_readings",
            partitions_def=hourly_partitions,
            description="Readings as delivered against contracts/sensor_readings.yaml (warns: "
            "what fails here is flagged or quarantined by the quality step).",
        ),
        schema_check_spec("sensor_readings", "sensor_readings", hourly_partitions),
    ],
    kinds={"parquet", "duckdb"},
    backfill_policy=range_backfill_policy(),
)
@hour_by_hour(ranged=lambda context, keys, refrig: readings_range(context, keys, refrig))
def sensor_readings(
    context: dg.AssetExecutionContext, refrig: RefrigResource
) -> dg.MaterializeResult:
    """Readings assigned to the hour of their ``ts``, from all files under the landing zone.

    Records in the landing index which file versions this materialization read, so files that
    arrive later are marked late and trigger a refresh of the hour (see the landing sensor).
    A range of hours loads, lists and saves the landing index once for all its hours.
    """
    # The scoring imports (RefrigResource.warm_up_scoring, ~1 CPU-s) start in the quality
    # step, not here: ingestion is little more than the COPY below, which keeps the cores busy.
    s = refrig.settings
    key = context.partition_key
    index = per_range(
        context, "landing_index", lambda: LandingIndex(landing_index_path(s)), LandingIndex.save
    )
    contract = load_contract("sensor_readings")
    listing = (  # one hour lists the landing zone in hour_readings
        per_range(
            context, "landing_listing", lambda: LandingListing.scan(s.landing_dir, contract, index)
        )
        if in_range(context)
        else None
    )
    with hour_connection(context) as con:
        hold_to_budget(con, spill_dir=refrig.store.root / SPILL_DIR)
        checked: list[dg.AssetCheckResult] = []
        hour = hour_written(
            refrig,
            con,
            key,
            index,
            listing,
            meanwhile=lambda path: checked.append(readings_contract_check(con, [path])),
        )
        if not in_range(context):
            index.save()
        (contract_result,) = checked
    return hour_result(
        context, refrig, hour, contract_result, schema_check(context, "sensor_readings", contract)
    )


@dataclass(frozen=True)
class ReadHour:
    """One hour's typed readings as written: the landing selection, the file and its counts."""

    key: str
    hour: HourReadings
    path: Path
    rows: int
    late: int
    unreadable: int


def hour_written(
    refrig: RefrigResource,
    con: duckdb.DuckDBPyConnection,
    key: str,
    index: LandingIndex,
    listing: LandingListing | None,
    meanwhile: Callable[[Path], object] | None = None,
) -> ReadHour:
    """Gather hour ``key``'s readings from the landing zone, write them as its partition, add
    the measurements they report to the fleet's record and record in ``index`` which file
    versions it read. ``meanwhile(file)`` runs on the written
    file before it becomes the partition, while it is made durable (the contract check)."""
    s = refrig.settings
    window = hourly_partitions.time_window_for_partition_key(key)
    contract = load_contract("sensor_readings")
    hour = hour_readings(
        con,
        s.landing_dir,
        window.start,
        window.end,
        key,
        contract,
        index,
        previous=refrig.store.path("sensor_readings", key),
        authoritative=load_ingestion_settings().authoritative,
        listing=listing,
        scan_together_files=refrig.engine != "spark",  # Spark translates one file's SQL
    )
    if refrig.engine == "spark":  # the files' rows typed by Spark executors
        from refrig_assets.engines.spark_hourly import write_hour_sql

        path = refrig.store.path("sensor_readings", key)
        write_hour_sql(refrig.spark, con, hour.sql, path)
        rows, late, unreadable = _counted(con, path, meanwhile)
    else:
        path = refrig.store.path("sensor_readings", key)
        # The counts and the check read the file while its fsync runs (0.2 s at 100K devices).
        with refrig.store.written_from_duckdb("sensor_readings", key, con, hour.sql) as written:
            rows, late, unreadable = _counted(con, written, meanwhile)
    # Before the hour's quality step: its flags and features follow the sensors reported so far.
    before = hour_key(
        hourly_partitions.time_window_for_partition_key(key).start - timedelta(hours=1)
    )
    record_hour_measurements(
        refrig.store.root,
        path,
        key,
        contract,
        previous=refrig.store.path("sensor_readings", before),
        con=con,
    )
    index.record_hour(key, hour.considered, datetime.now(UTC))
    return ReadHour(key, hour, path, rows, late, unreadable)


def _counted(
    con: duckdb.DuckDBPyConnection, path: Path, meanwhile: Callable[[Path], object] | None
) -> tuple[int, int, int]:
    rows, late, unreadable = con.execute(
        f"SELECT count(*), count(*) FILTER (late_arrival), "
        f"count(*) FILTER (read_error IS NOT NULL) FROM {_readings(path)}"
    ).fetchall()[0]
    if meanwhile is not None:
        meanwhile(path)
    return int(rows), int(late), int(unreadable)


def _readings(path: Path) -> str:
    return f"(SELECT * FROM read_parquet({sql_str(str(path))}) WHERE source_row >= 0)"


def readings_contract_check(
    con: duckdb.DuckDBPyConnection, paths: list[Path]
) -> dg.AssetCheckResult:
    """``sensor_readings_contract`` of the readings in ``paths`` (file notices left out)."""
    files = [sql_str(str(p)) for p in paths]
    source = files[0] if len(files) == 1 else f"[{', '.join(files)}]"
    con.execute(
        f"CREATE OR REPLACE VIEW readings AS SELECT * FROM read_parquet({source}) "
        "WHERE source_row >= 0"
    )
    return sql_contract_check(
        con,
        "readings",
        "sensor_readings",
        load_contract("sensor_readings"),
        range_exempt_sql="TRUE",  # out-of-range values are flagged downstream, not errors
        severity=dg.AssetCheckSeverity.WARN,
    )


def hour_result(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    read: ReadHour,
    contract_result: dg.AssetCheckResult,
    schema: dg.AssetCheckResult,
    mode: str | None = None,
) -> dg.MaterializeResult:
    """The materialization of one hour's readings with its check results (``mode``: how a
    ranged step computed the hour)."""
    key, hour, rows = read.key, read.hour, read.rows
    rejected = hour.rejected
    for r in rejected:
        context.log.warning(f"landing file rejected [{r.rule}]: {r.message}")
    if hour.retained:
        context.log.info(
            f"kept the readings of {len(hour.retained)} file(s) no longer in the landing zone "
            f"(landing.authoritative: false in config/ingestion.yaml): {', '.join(hour.retained)}"
        )
    for name, n in hour.kept.items():
        context.log.warning(
            f"kept {n} reading(s) of {name} that its new version no longer has "
            "(landing.authoritative: false in config/ingestion.yaml)"
        )
    readings = (
        f"{rows} readings from {len(hour.files)} file(s)"
        if rows
        else f"no readings for {key}: "
        + ("every landing file of the hour was rejected" if rejected else "no landing file")
        + "; the hour's partitions are empty"
    )
    if not rows:
        context.log.warning(readings)
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "files": len(hour.files),
            "retained_files": len(hour.retained),
            "kept_rows_of_changed_files": sum(hour.kept.values()),
            "rejected_files": len(rejected),
            "late_rows": read.late,
            "rows_with_read_errors": read.unreadable,
            "landing_dir": str(refrig.settings.landing_dir),
            "path": str(read.path),
            **contract_version_metadata(load_contract("sensor_readings")),
            **({} if mode is None else {RANGE_MODE: mode}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="landing_files_readable",
                passed=not rejected and rows > 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "readings": readings,
                    "rejected": dg.MetadataValue.md(
                        "\n".join(f"- `{r.source_file}` ({r.rule}): {r.message}" for r in rejected)
                        or "none"
                    ),
                },
            ),
            contract_result,
            schema,
        ],
    )


def readings_range(context: dg.AssetExecutionContext, keys: list[str], refrig: RefrigResource):
    """The range body of ``sensor_readings``: the hours of ``keys`` gathered in order from one
    listing of the landing zone (each written as its own partition, as hour by hour), their
    contract check run once over a group of hours (the readings of the hours together pass
    only when every hour's do: each probe counts failing rows, and a key repeated in an hour is
    repeated in the hours together); or why the range runs hour by hour."""
    if refrig.engine != "duckdb":
        return f"the {refrig.engine} engine types one hour at a time"
    return _readings_hours(context, keys, refrig)


def _readings_hours(
    context: dg.AssetExecutionContext, keys: list[str], refrig: RefrigResource
) -> Iterator[tuple[str, list[dg.MaterializeResult]]]:
    s = refrig.settings
    contract = load_contract("sensor_readings")
    index = LandingIndex(landing_index_path(s))
    listing = LandingListing.scan(s.landing_dir, contract, index)
    # every hour of the range compares with the materialization before it
    schema = schema_check(context, "sensor_readings", contract)
    with closing(connect()) as con:
        hold_to_budget(con, spill_dir=refrig.store.root / SPILL_DIR)
        try:
            yield from written_in_groups(
                keys,
                lambda key: hour_written(refrig, con, key, index, listing),
                lambda hour: hour.rows,
                lambda group: _group_results(context, refrig, con, group, schema),
            )
        finally:
            index.save()


def _group_results(context, refrig, con, group: list[ReadHour], schema):
    paths = [hour.path for hour in group]
    checked = checks_at_once(
        group,
        paths,
        lambda: readings_contract_check(con, paths),
        lambda hour: readings_contract_check(con, [hour.path]),
        lambda check: check.passed,
    )
    for hour, (check, mode) in zip(group, checked, strict=True):
        yield hour.key, [hour_result(context, refrig, hour, check, schema, mode)]


defs = dg.Definitions(assets=[device_registry, sensor_readings])
