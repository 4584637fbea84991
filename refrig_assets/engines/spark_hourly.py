"""The hourly path's other steps on Spark: ingestion, quality (clean rows, quarantine, flags) and
alert generation, with the same rules as the embedded engine.

Nothing here re-states a rule. Ingestion and quality run the SQL the project generates from the
contracts (:func:`refrig_assets.ingestion.landing.hours.hour_readings`,
:func:`refrig_assets.quality.rules.clean_hour`) through :class:`~refrig_assets.engines.spark_sql.SparkConnection`,
which translates it to Spark SQL; alerts are :func:`refrig_assets.alerts.generation.generate_alerts`
applied to groups of whole devices, as scores are (see :mod:`refrig_assets.engines.spark`).

Where the work happens:

* ingestion: the driver lists the landing zone and judges each file (the landing index, a Parquet
  file's footer, a CSV file's lines: DuckDB on the driver, as the embedded engine does); the rows
  of Parquet files are read and typed by Spark executors. The landing zone is a directory the
  driver and the executors see at the same path.
* quality, features, scores and alerts read and write Parquet at locations Spark resolves: local
  paths or URIs (``file://``, ``hdfs://``, ``s3a://`` where the cluster has the connector).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
import pandas as pd
import pyarrow as pa

from refrig_assets.alerts.hourly import HourAlerts
from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines.spark import (
    GROUPS_PER_CORE,
    _utc,
    read_contract_parquet,
    spark_schema,
    to_contract_pandas,
    write_parquet_file,
)
from refrig_assets.engines.spark_sql import SparkConnection, TranslationError
from refrig_assets.ingestion.landing.hours import HourReadings, hour_readings
from refrig_assets.quality.rules import ARRIVAL_ORDER, QualityResult, clean_hour

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


# The quality pass reads the hour sorted by device and time and compares each reading with the
# one before (DuckDB: ``lag() OVER ()`` over the sorted rows). Spark tables have no order: the
# same comparisons within each device, in the same order, give the same rows.
QUALITY_WINDOW = f"PARTITION BY device_id ORDER BY ts, {ARRIVAL_ORDER}"
_CLEAN_ORDER = re.compile(r"\s*ORDER BY seq\s*$", re.I)


def _arrow_for_spark(table: pa.Table) -> pa.Table:
    """Arrow types Spark accepts: dictionaries as their values, unsigned integers as int64."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_unsigned_integer(t):
            t = pa.int64()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def hour_frame(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, sql: str
) -> tuple[DataFrame, SparkConnection]:
    """The hour's typed readings (the SQL of :func:`hour_readings`, valid on the driver's
    DuckDB connection ``con``) as a Spark DataFrame.

    The CSV lines the driver read (and their rejected lines) travel to Spark as the same
    tables of raw text; Parquet files are read by the executors. Keep the returned connection
    open until the frame is written, then close it.
    """
    sc = SparkConnection(spark)
    try:
        temp = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        for (name,) in temp:
            table = _arrow_for_spark(con.table(name).to_arrow_table())
            sc.register(name, spark.createDataFrame(table))
        return sc.sql(sql), sc
    except BaseException:
        sc.close()
        raise


def write_hour_sql(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, sql: str, target: Path | str
) -> Path | str:
    """Write the hour's typed readings (see :func:`hour_frame`) to ``target`` (path or URI)."""
    frame, sc = hour_frame(spark, con, sql)
    try:
        return write_parquet_file(frame, target)
    finally:
        sc.close()


def write_hour_readings(
    spark: SparkSession, *hour: Any, target: Path | str, **options: Any
) -> HourReadings:
    """Read one hour of the landing zone (the arguments of :func:`hour_readings` after its
    connection) on Spark and write its typed readings to ``target`` (path or URI); returns the
    hour's provenance as the embedded engine reports it."""
    con = connect()
    try:
        readings = hour_readings(con, *hour, scan_together_files=False, **options)
        write_hour_sql(spark, con, readings.sql, target)
    finally:
        con.close()
    return readings


@dataclass
class SparkQuality:
    """The quality step's outputs on Spark: the clean rows and the next hour's stuck-run tails
    as DataFrames (valid until :meth:`close`), the quarantine and counts as the embedded
    engine's :class:`QualityResult`."""

    clean: DataFrame
    tails: DataFrame
    result: QualityResult
    connection: SparkConnection

    def close(self) -> None:
        """Release the step's temp tables."""
        self.connection.close()


def clean_hour_on_spark(
    spark: SparkSession,
    readings: Path | str,
    contract: Contract,
    registered_devices: DataFrame | pa.Table,
    *,
    previous_tails: Path | str | None = None,
) -> SparkQuality:
    """The quality rules of :func:`clean_hour` on the typed readings at ``readings`` (Parquet
    path or URI); ``previous_tails`` is the previous hour's stuck_sensor_tails partition."""
    sc = SparkConnection(spark, window_order=QUALITY_WINDOW)
    sc.view("hour_typed_readings", spark.read.parquet(str(readings)))
    tails_in = None
    if previous_tails is not None:
        sc.view("hour_previous_tails", spark.read.parquet(str(previous_tails)))
        tails_in = "hour_previous_tails"
    clean_sql, result = clean_hour(
        cast(Any, sc),
        "hour_typed_readings",
        contract,
        cast(Any, registered_devices),
        previous_tails=tails_in,
    )
    body, found = _CLEAN_ORDER.subn("", clean_sql)
    if not found:
        raise TranslationError("the clean rows' SQL no longer ends with ORDER BY seq")
    # seq numbers the rows in (device_id, ts) order; the clean rows are unique on that key
    clean = sc.sql(body).orderBy("device_id", "ts")
    return SparkQuality(clean, sc.sql(result.tails_sql), result, sc)


def write_quality_hour(
    spark: SparkSession,
    readings: Path | str,
    contract: Contract,
    registered_devices: DataFrame | pa.Table,
    *,
    clean_target: Path | str,
    tails_target: Path | str,
    quarantine_target: Path | str,
    previous_tails: Path | str | None = None,
) -> QualityResult:
    """Run the quality step on Spark and write clean rows, tails and quarantine (paths or URIs)."""
    quality = clean_hour_on_spark(
        spark, readings, contract, registered_devices, previous_tails=previous_tails
    )
    try:
        write_parquet_file(quality.clean, clean_target)
        write_parquet_file(quality.tails, tails_target)
        write_parquet_file(
            spark.createDataFrame(
                quality.result.quarantine,
                schema=spark_schema(load_contract("quarantined_readings")),
            ),
            quarantine_target,
        )
    finally:
        quality.close()
    return quality.result


def alerts_on_spark(
    scores: DataFrame,
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    feature_partition: str,
    run_id: str,
    *,
    groups: int | None = None,
) -> DataFrame:
    """Batch alerts (device_alerts contract) of every model's scores in ``scores``.

    :func:`generate_alerts` runs on groups of whole devices: an alert depends on one device's
    windows and, for suppression, on that device's earlier alerts, which travel with the
    registry in one broadcast.
    """
    from pyspark.sql import functions as F

    spark = scores.sparkSession
    shared = spark.sparkContext.broadcast(
        (registry.reset_index(drop=True), previous_alerts.reset_index(drop=True))
    )
    n_groups = groups or GROUPS_PER_CORE * spark.sparkContext.defaultParallelism

    def alerts_of_group(frame: pd.DataFrame) -> pd.DataFrame:
        from refrig_assets.alerts.generation import generate_alerts

        reg, previous = shared.value
        frame = _utc(frame.drop(columns=["_group"]))
        mine = previous[previous["device_id"].isin(frame["device_id"].unique())]
        return generate_alerts(frame, reg, mine, feature_partition, run_id)

    keyed = scores.withColumn("_group", F.pmod(F.xxhash64("device_id"), F.lit(n_groups)))
    return keyed.groupBy("_group").applyInPandas(
        alerts_of_group, schema=spark_schema(load_contract("device_alerts"))
    )


def alerts_of_paths_on_spark(
    spark: SparkSession,
    score_paths: list[Path | str],
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    feature_partition: str,
    run_id: str,
) -> pd.DataFrame:
    """Alerts of score Parquet files (paths or URIs) as a pandas frame in the device_alerts
    contract, in the embedded engine's order (device, window)."""
    scores = read_contract_parquet(spark, score_paths, load_contract("model_scores"))
    alerts = alerts_on_spark(scores, registry, previous_alerts, feature_partition, run_id)
    return to_contract_pandas(alerts, "device_alerts")


def hour_alerts_on_spark(
    spark: SparkSession,
    store: ParquetStore,
    partition_key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    registry: pd.DataFrame,
    previous_alerts: pd.DataFrame,
    run_id: str,
) -> HourAlerts:
    """Spark counterpart of :func:`refrig_assets.alerts.hourly.alerts_in_shards`: the hourly
    detectors' scores of the hour [start, end) that exist, alerted on groups of whole devices."""
    from refrig_assets.alerts.hourly import hourly_score_paths

    paths = hourly_score_paths(store, partition_key)
    if not paths:
        return HourAlerts(load_contract("device_alerts").empty_frame(), [])
    scores = read_contract_parquet(spark, paths, load_contract("model_scores"))
    scores = scores.where((scores.window_start >= start) & (scores.window_start < end)).cache()
    try:
        models = sorted(r[0] for r in scores.select("model_id").distinct().collect())
        alerts = alerts_on_spark(scores, registry, previous_alerts, partition_key, run_id)
        out = to_contract_pandas(alerts, "device_alerts")
    finally:
        scores.unpersist()
    return HourAlerts(out, models)


def partition_location(data: Path | str, dataset: str, partition_key: str | None) -> str:
    """Where a partition lives under a data root given as a path or a URI (the layout of
    :class:`~refrig_assets.core.storage.ParquetStore`)."""
    from refrig_assets.core.storage import partition_file_name

    return f"{str(data).rstrip('/')}/{dataset}/{partition_file_name(partition_key)}.parquet"


def _exists(spark: SparkSession, location: str) -> bool:
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return bool(path.getFileSystem(conf).exists(path))


def _record_reported(
    spark: SparkSession,
    readings: str,
    partition_key: str,
    contract: Contract,
    previous: str | None = None,
) -> None:
    """Record the measurements the hour's typed readings report (a value in some row), and
    each device's sensor kit where some device lacks one, in the driver's store, as the
    embedded ingestion does (:func:`refrig_assets.core.fleet_sensors.record_kits`), so this
    process's quality and features use the fleet's sensors and each device's own.
    ``previous``: the hour before's typed readings, when written."""
    from pyspark.sql import functions as F

    from refrig_assets.core.fleet_sensors import measurement_columns, record_kits
    from refrig_assets.core.reported_measurements import record_reported
    from refrig_assets.core.settings import get_settings

    every = [c.name for c in measurement_columns(contract)]
    frame = spark.read.parquet(readings)
    present = [n for n in every if n in frame.columns]
    if not present:
        return
    counts = frame.select(
        [F.count(n).alias(n) for n in present] + [F.count(F.lit(1)).alias("_rows")]
    ).first()
    if counts is None:
        return
    data_dir = get_settings().data_dir
    record_reported(data_dir, [n for n in present if counts[n]], partition_key)
    holed = [n for n in present if counts[n] < counts["_rows"]]
    record_kits(
        data_dir,
        holed,
        lambda lacking, named: _reported_by(frame, every, lacking, named, holed),
        None
        if previous is None
        else lambda new: _reported_by(spark.read.parquet(previous), every, set(), new, None),
    )


def _reported_by(
    frame: DataFrame,
    every: list[str],
    lacking: set[str],
    named: list[str],
    holed: list[str] | None,
) -> dict[str, set[str]]:
    """Spark's :func:`refrig_assets.core.fleet_sensors._reported_by`: device -> the
    measurements of ``every`` it has a value for, for the devices without a value of some
    measurement of ``lacking`` and those ``named``, in one grouped pass whose (few) devices
    come back to the driver. ``holed``: the measurements with a missing value in some row
    (None: unknown, all are read); every device has a value of the others."""
    from pyspark.sql import functions as F

    present = [n for n in every if n in frame.columns]
    if "device_id" not in frame.columns:
        return {}
    read = present if holed is None else [n for n in present if n in holed]
    wanted = [~F.col(n) for n in read if n in lacking]
    if lacking - set(present):  # a measurement the file has no column for: every device lacks it
        wanted = [F.lit(True)]
    if named:
        wanted.append(F.col("device_id").isin(named))
    if not wanted:
        return {}
    condition = wanted[0]
    for more in wanted[1:]:
        condition = condition | more
    grouped = (
        frame.where(F.col("device_id").isNotNull())
        .groupBy(F.col("device_id").cast("string").alias("device_id"))
        .agg(*[(F.count(n) > 0).alias(n) for n in read])
        .where(condition)
    )
    whole = {n for n in present if n not in read}
    return {row["device_id"]: whole | {n for n in read if row[n]} for row in grouped.collect()}


def run_hour(
    spark: SparkSession,
    landing_dir: Path,
    index_path: Path,
    data: Path | str,
    partition_key: str,
    *,
    cadence_seconds: int | None = None,
) -> dict[str, Any]:
    """Landing → typed readings → clean rows and quarantine → feature windows for one hour on
    Spark, written under ``data`` (path or URI) in the project's layout; returns the counts.

    The device registry is ``<data>/device_registry``; the previous hour's stuck-run tails and
    clean readings (the running state's settle after its last starts and defrosts) are used when
    they are there (hours run in order).
    """
    from datetime import timedelta

    from refrig_assets.engines.spark import compute_features
    from refrig_assets.ingestion.landing.hour_keys import hour_key
    from refrig_assets.ingestion.landing.index import LandingIndex

    start = datetime.strptime(partition_key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    contract = load_contract("sensor_readings")
    index = LandingIndex(index_path)
    readings = partition_location(data, "sensor_readings", partition_key)
    hour = write_hour_readings(
        spark,
        landing_dir,
        start,
        start + timedelta(hours=1),
        partition_key,
        contract,
        index,
        target=readings,
    )
    index.record_hour(partition_key, hour.considered, datetime.now(UTC))
    index.save()
    before_readings = partition_location(
        data, "sensor_readings", hour_key(start - timedelta(hours=1))
    )
    _record_reported(
        spark,
        readings,
        partition_key,
        contract,
        previous=before_readings if _exists(spark, before_readings) else None,
    )
    registry = spark.read.parquet(partition_location(data, "device_registry", None))
    previous = partition_location(data, "stuck_sensor_tails", hour_key(start - timedelta(hours=1)))
    clean = partition_location(data, "clean_readings", partition_key)
    result = write_quality_hour(
        spark,
        readings,
        contract,
        registry.select("device_id"),
        clean_target=clean,
        tails_target=partition_location(data, "stuck_sensor_tails", partition_key),
        quarantine_target=partition_location(data, "quarantined_readings", partition_key),
        previous_tails=previous if _exists(spark, previous) else None,
    )
    before = partition_location(data, "clean_readings", hour_key(start - timedelta(hours=1)))
    features = compute_features(
        spark,
        [clean],
        cadence_seconds=cadence_seconds,
        previous=before if _exists(spark, before) else None,
    )
    write_parquet_file(features, partition_location(data, "device_features", partition_key))
    return {
        "files": len(hour.files),
        "rejected_files": len(hour.rejected),
        "rows_read": result.rows_read,
        "rows_clean": result.rows_clean,
        "rows_quarantined": result.rows_quarantined,
    }


def main(argv: list[str] | None = None) -> int:
    """``spark-submit refrig_assets/engines/spark_hourly.py --hour KEY --landing DIR --index FILE
    --data URI``: one hour of the hourly path on the session's master (see docs/spark.md)."""
    import argparse
    import json

    from refrig_assets.engines.spark import spark_session

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--hour", required=True, help="partition key, e.g. 2026-01-01-05:00")
    parser.add_argument("--landing", required=True, type=Path, help="landing directory")
    parser.add_argument("--index", required=True, type=Path, help="landing index file (JSON)")
    parser.add_argument("--data", required=True, help="data root: path, file://, hdfs://, s3a://")
    parser.add_argument("--master", default=None, help="Spark master (default: configured)")
    args = parser.parse_args(argv)
    spark = spark_session(args.master)
    counts = run_hour(spark, args.landing, args.index, args.data, args.hour)
    print(json.dumps({"hour": args.hour, **counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
