"""The Spark engine: the same feature SQL and the same detectors, run by Apache Spark.

Nothing here re-implements project logic. Features are :func:`refrig_assets.features.windows.feature_sql`
in its Spark dialect; scores are the registered detector's own ``score`` (through
:func:`refrig_assets.scoring.score.score_windows`), broadcast to the executors and applied to groups of
whole devices (or whole cohorts for cohort-level models), so persistence over a device's
consecutive windows sees the same rows it sees on the embedded engine.

Outputs land in the project's Parquet layout: one file per partition, written under a hidden
temporary directory and renamed into place (a killed job leaves the old partition or the new one).
On a cluster the data directory must be mounted at the same path on every worker.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import spark_master
from refrig_assets.features.windows import feature_sql, settle_carry_sql

if TYPE_CHECKING:  # pyspark is imported only when the Spark engine is used
    from pyspark.sql import DataFrame, SparkSession

    from refrig_assets.detectors.base import Detector

SPARK_TYPES = {
    "string": "string",
    "timestamp": "timestamp",
    "float": "double",
    "int": "bigint",
    "bool": "boolean",
}
# Devices are scored in this many groups per core; each group is one pandas batch holding whole
# devices, so a device's consecutive windows are scored together.
GROUPS_PER_CORE = 4


def spark_session(master: str | None = None, app_name: str = "refrig-assets") -> SparkSession:
    """The process's Spark session (created on first use) for ``master`` (default: configured).

    Sessions compute in UTC and write Parquet timestamps as microseconds, like the embedded
    engine. Local masters bind to 127.0.0.1 and run without the web UI.
    """
    master = master or spark_master()
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers must see this environment's packages (pandas, the detectors).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        # pandas writes nanosecond timestamps, which Spark reads only as integers: readers of
        # such files convert them (see nanos_as_timestamps)
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
    )
    if local:
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.driver.memory", os.environ.get("REFRIG_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", str(max(2, 2 * (os.cpu_count() or 1))))
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("REFRIG_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def nanos_as_timestamps(frame: DataFrame, contract: Contract) -> DataFrame:
    """``frame`` with the contract's timestamp columns that Spark read as integers (nanosecond
    timestamps in Parquet written by pandas) as timestamps again (microseconds, as stored)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    kinds = {f.name: f.dataType for f in frame.schema.fields}
    for c in contract.columns:
        if c.type == "timestamp" and isinstance(kinds.get(c.name), LongType):
            frame = frame.withColumn(c.name, F.expr(f"timestamp_micros(`{c.name}` div 1000)"))
    return frame


def read_contract_parquet(
    spark: SparkSession, locations: Sequence[Path | str], contract: Contract
) -> DataFrame:
    """Parquet files (paths or URIs) of a contract's dataset, timestamps as timestamps."""
    return nanos_as_timestamps(spark.read.parquet(*[str(p) for p in locations]), contract)


def _view_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def compute_features(
    spark: SparkSession,
    sources: Sequence[Path | str],
    *,
    cadence_seconds: int | None = None,
    previous: Path | str | None = None,
) -> DataFrame:
    """Feature windows of clean_readings files, as a Spark DataFrame (the shared feature SQL).

    ``previous``: the clean readings of the hour before (a path or URI), if any; where a settle
    time applies at the fleet's window, the running state settles after that hour's last starts
    and defrosts (:func:`~refrig_assets.features.windows.settle_carry_sql`), as on the embedded
    engine.
    """
    view = _view_name("clean_readings")
    spark.read.parquet(*[str(s) for s in sources]).createOrReplaceTempView(view)
    carry = _settle_carry(spark, previous, cadence_seconds)
    return spark.sql(
        feature_sql(view, cadence_seconds=cadence_seconds, dialect="spark", carry=carry)
    )


def _settle_carry(
    spark: SparkSession, previous: Path | str | None, cadence_seconds: int | None
) -> str | None:
    """The view of the settle carry from ``previous`` (None where there is nothing to carry)."""
    if previous is None:
        return None
    before = _view_name("previous_clean")
    sql = settle_carry_sql(before, cadence_seconds=cadence_seconds, dialect="spark")
    if sql is None:
        return None
    spark.read.parquet(str(previous)).createOrReplaceTempView(before)
    carry = _view_name("settle_carry")
    spark.sql(sql).createOrReplaceTempView(carry)
    return carry


def is_uri(location: Path | str) -> bool:
    """True for a location with a scheme (``file://``, ``hdfs://``, ``s3a://``), as Spark reads."""
    return "://" in str(location)


def write_parquet_file(frame: DataFrame, final: Path | str) -> Path | str:
    """Write a Spark DataFrame as the single Parquet file ``final``, atomically.

    Spark writes a directory of part files; one partition is written (order preserved) under a
    hidden temporary directory next to ``final`` and its part file is renamed into place.
    ``final`` is a local path or a URI Spark writes (``hdfs://``, ``s3a://``, ``file://``); a URI
    is renamed through Hadoop's FileSystem (on object stores a rename is a copy: the old file
    stays readable until the new one is complete).
    """
    if str(final).startswith("file://"):  # local: a plain rename (no Hadoop .crc files)
        final = Path(str(final).removeprefix("file://"))
    if is_uri(final):
        return _write_parquet_uri(frame, str(final))
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.stem}.{uuid.uuid4().hex}.spark"
    try:
        frame.coalesce(1).write.option("compression", "zstd").parquet(str(staging))
        parts = sorted(staging.glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"Spark wrote {len(parts)} part files to {staging}, expected one")
        os.replace(parts[0], final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _write_parquet_uri(frame: DataFrame, final: str) -> str:
    spark = frame.sparkSession
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    target = jvm.org.apache.hadoop.fs.Path(final)
    fs = target.getFileSystem(conf)
    parent = target.getParent()
    staging = jvm.org.apache.hadoop.fs.Path(parent, f".{target.getName()}.{uuid.uuid4().hex}.spark")
    try:
        frame.coalesce(1).write.option("compression", "zstd").parquet(staging.toString())
        parts = [
            s.getPath() for s in fs.listStatus(staging) if s.getPath().getName().startswith("part-")
        ]
        if len(parts) != 1:
            raise RuntimeError(f"Spark wrote {len(parts)} part files to {staging}, expected one")
        if fs.exists(target):
            fs.delete(target, False)
        if not fs.rename(parts[0], target):
            raise RuntimeError(f"could not rename {parts[0]} to {final}")
    finally:
        fs.delete(staging, True)
    return final


def write_features(
    spark: SparkSession,
    source: Path,
    store: ParquetStore,
    partition_key: str,
    *,
    cadence_seconds: int | None = None,
    dataset: str = "device_features",
    previous: Path | None = None,
) -> Path:
    """Spark counterpart of :func:`refrig_assets.engines.embedded.write_features`;
    ``previous`` is the hour before's clean readings, whose last starts and defrosts the hour's
    running state settles after, as there."""
    features = compute_features(spark, [source], cadence_seconds=cadence_seconds, previous=previous)
    final = store.path(dataset, partition_key)
    write_parquet_file(features, final)
    return final


def spark_schema(contract: Contract) -> str:
    """A contract's columns as a Spark DDL schema string."""
    return ", ".join(f"{c.name} {SPARK_TYPES[c.type]}" for c in contract.columns)


def _group_column(detector: Detector) -> str:
    # Cohort-level models score a cohort together; every other model needs whole devices.
    return "cohort" if detector.config.granularity == "cohort" else "device_id"


def score_on_spark(
    detector: Detector,
    version: str,
    features: DataFrame,
    registry: pd.DataFrame,
    scored_at: datetime,
    *,
    since: pd.Timestamp | None = None,
    groups: int | None = None,
) -> DataFrame:
    """Scores of ``detector`` for a Spark DataFrame of feature windows (model_scores contract).

    The detector and the device → cohort map are broadcast once; each task scores whole devices
    (or whole cohorts) with :func:`refrig_assets.scoring.score.score_windows`, exactly as the embedded
    engine does. ``registry`` needs ``device_id`` and ``cohort``. Windows before ``since`` are
    context for persistence only and are not returned.
    """
    from pyspark.sql import functions as F

    spark = features.sparkSession
    shared = spark.sparkContext.broadcast(
        (detector, registry[["device_id", "cohort"]].reset_index(drop=True))
    )
    contract = load_contract("model_scores")
    key = _group_column(detector)
    n_groups = groups or GROUPS_PER_CORE * spark.sparkContext.defaultParallelism

    def score_group(frame: pd.DataFrame) -> pd.DataFrame:
        from refrig_assets.scoring.score import score_windows, with_cohort

        model, cohorts = shared.value
        frame = with_cohort(_utc(frame.drop(columns=["_group"])), cohorts)
        return score_windows(model, version, frame, scored_at, since=since)

    # Only the columns the detector reads travel to the Python workers.
    features = features.select(*dict.fromkeys(detector.required_columns))
    if key == "cohort":
        cohort_map = spark.createDataFrame(registry[["device_id", "cohort"]])
        keyed = features.join(cohort_map.withColumnRenamed("cohort", "_group"), "device_id", "left")
        keyed = keyed.fillna({"_group": "unknown"})
    else:
        keyed = features.withColumn("_group", F.pmod(F.xxhash64("device_id"), F.lit(n_groups)))
    return keyed.groupBy("_group").applyInPandas(score_group, schema=spark_schema(contract))


def score_paths_on_spark(
    spark: SparkSession,
    detector: Detector,
    version: str,
    feature_paths: Sequence[Path | str],
    registry: pd.DataFrame,
    scored_at: datetime,
    *,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Score feature Parquet files on Spark and bring the scores back as a pandas frame in the
    model_scores contract (sorted like the embedded engine's output)."""
    features = spark.read.parquet(*[str(p) for p in feature_paths])
    scores = score_on_spark(detector, version, features, registry, scored_at, since=since)
    return to_contract_pandas(scores, "model_scores")


def score_partition_on_spark(
    spark: SparkSession,
    detector: Detector,
    version: str,
    feature_paths: Sequence[Path | str],
    registry: pd.DataFrame,
    scored_at: datetime,
    *,
    since: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a score asset needs from Spark: the windows read (``device_id``, ``window_start``;
    for its metadata) and the scores, as :func:`score_paths_on_spark` computes them."""
    windows = pd.concat(
        [pd.read_parquet(p, columns=["device_id", "window_start"]) for p in feature_paths],
        ignore_index=True,
    )
    scores = score_paths_on_spark(
        spark, detector, version, feature_paths, registry, scored_at, since=since
    )
    return windows, scores


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Spark hands timestamps to pandas as naive session-time (UTC) values: make them UTC-aware,
    as the embedded engine's frames are."""
    for name in frame.columns:
        if pd.api.types.is_datetime64_dtype(frame[name]) and frame[name].dt.tz is None:
            frame[name] = frame[name].dt.tz_localize("UTC")
    return frame


def to_contract_pandas(frame: DataFrame, dataset: str) -> pd.DataFrame:
    """A Spark frame of per-window rows as pandas in ``dataset``'s contract, in the embedded
    engine's order (device, window)."""
    out: pd.DataFrame = frame.toPandas()
    out = out.sort_values(["device_id", "window_start"], kind="stable").reset_index(drop=True)
    return _as_contract_dtypes(out, load_contract(dataset))


def _as_contract_dtypes(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    for c in contract.columns:
        if c.type == "timestamp":
            frame[c.name] = pd.to_datetime(frame[c.name], utc=True).astype(c.pandas_dtype)
        elif c.type == "bool":
            frame[c.name] = frame[c.name].astype(bool)
    return frame[contract.column_names]
