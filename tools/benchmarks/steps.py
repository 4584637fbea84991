"""Benchmark steps, each run in its own interpreter: ``python -m tools.benchmarks.steps``.

A step does one piece of work with the project's own code (or a reference implementation),
times it in-process (imports excluded) and prints one result line for the parent
(:func:`tools.benchmarks.measure.emit`). Heavy libraries are imported inside the steps, so a
step pays only for what it uses.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tools.benchmarks.measure import emit

STEPS: dict[str, Callable[[dict], dict]] = {}


def step(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    STEPS[fn.__name__] = fn
    return fn


class Timer:
    """Wall and CPU seconds of a block (``with Timer() as t: ...; t.wall``)."""

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


# ----------------------------------------------------------------------------- inputs
@step
def simulate(a: dict) -> dict:
    """Simulate ``devices`` for one hour into a landing file plus the device registry."""
    from refrig_assets.simulator import FleetSimulator, SimulationConfig
    from refrig_assets.simulator.writer import readings_path, write_frame

    config = SimulationConfig(devices=a["devices"], hours=1, seed=a["seed"])
    with Timer() as t:
        sim = FleetSimulator(config)
        readings = sim.hour(0)
    with Timer() as w:
        write_frame(readings, readings_path(Path(a["landing_dir"]), config.start, "parquet"))
        write_frame(sim.registry(), Path(a["registry_path"]))
    return {
        "wall_s": t.wall + w.wall,
        "simulate_s": t.wall,
        "write_s": w.wall,
        "rows": len(readings),
    }


@step
def scaled_clean_readings(a: dict) -> dict:
    """A clean_readings file of ``devices`` devices cut from, or tiled from, a measured one.

    Tiled copies get distinct device ids (a prefix per copy), so the file keeps the project's
    order (device_id, ts) and every device carries real simulated readings."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with Timer() as t:
        table = pq.read_table(a["source"])
        devices = pc.unique(table.column("device_id")).sort()
        have, want = len(devices), int(a["devices"])
        if want <= have:
            keep = pc.is_in(table.column("device_id"), devices.slice(0, want))
            out = table.filter(keep)
        else:
            copies = -(-want // have)
            parts = []
            for i in range(copies):
                ids = pc.binary_join_element_wise(f"c{i}-", table.column("device_id"), "")
                part = table.set_column(table.schema.get_field_index("device_id"), "device_id", ids)
                if i == copies - 1 and copies * have > want:
                    last = pc.is_in(table.column("device_id"), devices.slice(0, want - i * have))
                    part = part.filter(last)
                parts.append(part)
            out = pa.concat_tables(parts)
        target = Path(a["target"])
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(out, target, compression="zstd", row_group_size=500_000)
    return {"wall_s": t.wall, "rows": out.num_rows, "devices": want}


@step
def tiled_fleet(a: dict) -> dict:
    """A fleet ``copies`` times the size of a simulated one: its landing files and registry
    repeated, each copy's device ids prefixed (``t1-``, ``t2-``, ...; copy 0 keeps them), so
    every device carries real simulated readings. One landing file per copy, written one copy
    at a time (memory stays that of one copy); files keep the source's modification time."""
    import os

    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    copies = int(a["copies"])
    source, target = Path(a["landing_dir"]), Path(a["target_landing_dir"])
    rows = 0
    with Timer() as t:
        for path in sorted(source.rglob("*.parquet")):
            table = pq.read_table(path)
            column = table.schema.get_field_index("device_id")
            stat = path.stat()
            for i in range(copies):
                ids = table.column("device_id")
                if i:
                    ids = pc.binary_join_element_wise(f"t{i}-", ids, "")
                out = target / path.relative_to(source).parent / f"{path.stem}-t{i}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(
                    table.set_column(column, "device_id", ids),
                    out,
                    compression="zstd",
                    compression_level=1,
                    row_group_size=500_000,
                )
                os.utime(out, ns=(stat.st_atime_ns, stat.st_mtime_ns))
                rows += table.num_rows
        registry = pd.read_csv(a["registry_path"])
        tiled = []
        for i in range(copies):
            copy = registry.copy()
            if i:
                copy["device_id"] = f"t{i}-" + copy["device_id"].astype(str)
            tiled.append(copy)
        Path(a["target_registry_path"]).parent.mkdir(parents=True, exist_ok=True)
        pd.concat(tiled, ignore_index=True).to_csv(a["target_registry_path"], index=False)
    return {"wall_s": t.wall, "rows": rows, "devices": len(registry) * copies}


@step
def shifted_feature_hours(a: dict) -> dict:
    """``hours`` hourly feature partitions: copies of a measured hour, shifted in time."""
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from refrig_assets.core.storage import ParquetStore

    store = ParquetStore(a["data_dir"])
    base = pq.read_table(store.path("device_features", a["partition"]))
    start = datetime.strptime(a["partition"], "%Y-%m-%d-%H:%M")
    with Timer() as t:
        for h in range(1, int(a.get("hours", 24))):
            shift = pa.scalar(timedelta(hours=h), type=pa.duration("us"))
            table = base
            for col in ("window_start", "window_end"):
                idx = table.schema.get_field_index(col)
                moved = pc.add(table.column(col), shift).cast(table.schema.field(col).type)
                table = table.set_column(idx, table.schema.field(col), moved)
            target = store.path(
                "device_features", (start + timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M")
            )
            # Fast compression: these are inputs of the measured step, not part of it.
            pq.write_table(table, target, compression="zstd", compression_level=1)
    return {"wall_s": t.wall, "hours": int(a.get("hours", 24)), "rows_per_hour": base.num_rows}


# ----------------------------------------------------------------------------- Dagster
def _definitions():
    with Timer() as t:
        from refrig_assets.definitions import defs
    return defs, t.wall


def pipeline_instance():
    """The Dagster instance ``refrig pipeline run`` uses: the home's, with its batched SQLite
    event log (:func:`refrig_assets.defs.shared.event_log.pipeline_instance`)."""
    from refrig_assets.defs.shared import event_log

    return event_log.pipeline_instance()


def _step_durations(result) -> dict[str, float]:
    return {
        e.step_key: round(e.event_specific_data.duration_ms / 1000, 3)
        for e in result.all_node_events
        if e.is_step_success or e.is_step_failure
        if getattr(e.event_specific_data, "duration_ms", None) is not None
    }


class StepResources:
    """CPU seconds (all threads of this process) and peak resident memory of each Dagster step
    of an in-process run: every event passes through the instance, and the steps of an
    in-process run execute one after the other, so a step's figures are those between its
    STEP_START and its end. RSS is polled from ``/proc/self/statm``; with it, how many of the
    process's threads are running or waiting for a core (``busy_threads``, the mean over the
    step, the sampling thread itself not counted): a demand for cores that the machine's load
    does not change, so a step near 1 on a 2-core machine has a serial part to look at."""

    def __init__(self, instance):
        import os
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.steps: dict[str, dict] = {}
        self._current: str | None = None
        self._cpu = 0.0
        self._peak = 0
        self._busy: list[int] = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        handle = instance.handle_new_event

        def handle_new_event(event, *args, **kwargs):
            self._on_event(event)
            return handle(event, *args, **kwargs)

        instance.handle_new_event = handle_new_event

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    @staticmethod
    def _runnable() -> int:
        """Threads of this process in state R (running or runnable), this one excluded."""
        import os

        busy = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as fh:
                    busy += fh.read().rsplit(")", 1)[1].split()[0] == "R"
            except OSError:  # the thread ended
                continue
        return busy - 1

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self._peak = max(self._peak, self._rss())
            if self._current is not None:
                self._busy.append(self._runnable())

    def _on_event(self, event) -> None:
        dagster_event = getattr(event, "dagster_event", None)
        if dagster_event is None or not dagster_event.step_key:
            return
        kind = dagster_event.event_type_value
        if kind == "STEP_START":
            self._current, self._cpu, self._peak = dagster_event.step_key, time.process_time(), 0
            self._peak, self._busy = self._rss(), []
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and self._current == dagster_event.step_key:
            self._peak = max(self._peak, self._rss())
            busy = list(self._busy)
            self.steps[dagster_event.step_key] = {
                "cpu_s": round(time.process_time() - self._cpu, 2),
                "peak_rss_mb": round(self._peak / 2**20),
                "busy_threads": round(sum(busy) / len(busy), 2) if busy else None,
            }
            self._current = None

    def close(self) -> dict[str, dict]:
        self._done.set()
        return self.steps


@step
def dagster_job(a: dict) -> dict:
    """Execute a job of the project's Definitions in-process (as ``refrig pipeline run`` does)."""
    import dagster as dg

    if a.get("forget_landing_index"):  # the hour is ingested afresh from this landing zone
        from refrig_assets.core.settings import get_settings
        from refrig_assets.core.storage import ParquetStore

        settings = get_settings()
        (settings.home / "state" / "landing_index.json").unlink(missing_ok=True)
        # A partition left by another landing zone (the scale runs switch zones in one home)
        # would otherwise keep its files' readings (landing.authoritative: false) and add them.
        ParquetStore(settings.data_dir).path("sensor_readings", a["partition"]).unlink(
            missing_ok=True
        )
    defs, import_s = _definitions()
    instance = pipeline_instance()
    job = defs.resolve_job_def(a["job"])
    selection = [dg.AssetKey(k) for k in a["assets"]] if a.get("assets") else None
    resources = StepResources(instance)
    with Timer() as t:
        result = job.execute_in_process(
            instance=instance,
            partition_key=a.get("partition"),
            asset_selection=selection,
            run_config=a.get("run_config"),
            raise_on_error=False,
        )
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {
        "devices": a.get("devices"),
        "wall_s": t.wall,
        "cpu_s": t.cpu,
        "import_s": import_s,
        "steps": _step_durations(result),
        "step_resources": resources.close(),
        "success": result.success,
        "failed_steps": failed,
        "failed_checks": sorted(k for k, v in checks.items() if not v),
        "error": None if result.success else f"failed steps: {failed}",
    }


@step
def dagster_materialize(a: dict) -> dict:
    """Materialize assets of the project's Definitions (those outside any partitioned job); the
    assets come with the resources the Definitions bind."""
    import dagster as dg

    defs, import_s = _definitions()
    instance = dg.DagsterInstance.get()
    assets = [defs.resolve_assets_def(dg.AssetKey(k)) for k in a["assets"]]
    resources = StepResources(instance)
    with Timer() as t:
        result = dg.materialize(
            assets,
            instance=instance,
            partition_key=a.get("partition"),
            run_config=a.get("run_config"),
            raise_on_error=False,
        )
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    return {
        "wall_s": t.wall,
        "cpu_s": t.cpu,
        "import_s": import_s,
        "steps": _step_durations(result),
        "step_resources": resources.close(),
        "success": result.success,
        "error": None if result.success else f"failed steps: {failed}",
    }


# ----------------------------------------------------------------------------- feature step
def _max_abs_diff(left_path: str, right_path: str) -> dict:
    """Largest differences between two feature files aligned on device and window (absolute,
    and relative to the value's size where it exceeds 1)."""
    import numpy as np
    import pandas as pd

    keys = ["device_id", "window_start"]
    left = pd.read_parquet(left_path).sort_values(keys).reset_index(drop=True)
    right = pd.read_parquet(right_path).sort_values(keys).reset_index(drop=True)
    if len(left) != len(right) or list(left.columns) != list(right.columns):
        return {"same_shape": False, "rows": [len(left), len(right)]}
    worst, worst_rel, nulls_differ, other_differ = 0.0, 0.0, 0, []
    for col in left.columns:
        a, b = left[col], right[col]
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            nulls_differ += int((np.isnan(x) != np.isnan(y)).sum())
            both = ~np.isnan(x) & ~np.isnan(y)
            if both.any():
                gap = np.abs(x[both] - y[both])
                scale = np.maximum(np.maximum(np.abs(x[both]), np.abs(y[both])), 1.0)
                worst = max(worst, float(gap.max()))
                worst_rel = max(worst_rel, float((gap / scale).max()))
        elif not a.astype(str).equals(b.astype(str)):
            other_differ.append(col)
    return {
        "same_shape": True,
        "max_abs_diff": worst,
        "max_rel_diff": worst_rel,
        "null_mismatches": nulls_differ,
        "columns_differing": other_differ,
    }


@step
def read_floor(a: dict) -> dict:
    """pyarrow read of the whole clean_readings file: the least any step over it can cost."""
    import pyarrow.parquet as pq

    with Timer() as t:
        table = pq.read_table(a["source"])
    return {"wall_s": t.wall, "cpu_s": t.cpu, "rows": table.num_rows, "columns": table.num_columns}


@step
def features_project(a: dict) -> dict:
    """The project's feature step, as the device_features asset runs it on the embedded engine:
    windows computed and written, then the contract check and summary over the file."""
    from refrig_assets.core.contracts import load_contract
    from refrig_assets.core.settings import get_settings
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.defs.features.assets import scoring_floor
    from refrig_assets.engines import embedded

    store = ParquetStore(a["out_root"])
    with Timer() as t:
        with Timer() as w:
            path = embedded.write_features(Path(a["source"]), store, a["partition"])
        with Timer() as c:
            violations = embedded.file_violations(path, load_contract("device_features"))
            summary = embedded.feature_summary(
                path, scoring_floor(get_settings().models_dir) or 0.0
            )
    return {
        "wall_s": t.wall,
        "cpu_s": t.cpu,
        "compute_write_s": w.wall,
        "check_summary_s": c.wall,
        "windows": summary["windows"],
        "contract_failures": int(violations["failures"].sum()) if len(violations) else 0,
        "path": str(path),
    }


@step
def features_pandas(a: dict) -> dict:
    """The reference implementation in vectorized pandas: read, compute, write."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.benchmarks.reference import pandas_features

    target = Path(a["target"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with Timer() as t:
        names = pq.read_schema(a["source"]).names
        columns = [n for n in names if n not in ("quality_flags", "source_file")]
        clean = pd.read_parquet(a["source"], columns=columns)
        features = pandas_features(clean)
        pq.write_table(
            pa.Table.from_pandas(features, preserve_index=False), target, compression="zstd"
        )
    report: dict = {"wall_s": t.wall, "cpu_s": t.cpu, "windows": len(features)}
    if a.get("compare_with"):
        report["agreement"] = _max_abs_diff(a["compare_with"], str(target))
    return report


@step
def features_spark(a: dict) -> dict:
    """The same feature SQL on PySpark (the project's Spark engine), master ``local[*]``."""
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.engines.spark import spark_session, write_features

    with Timer() as s:
        spark = spark_session(a.get("master", "local[*]"))
    store = ParquetStore(a["out_root"])
    with Timer() as t:
        path = write_features(spark, Path(a["source"]), store, a["partition"])
    report: dict = {"wall_s": t.wall, "session_start_s": s.wall, "path": str(path)}
    spark.stop()
    if a.get("compare_with"):
        report["agreement"] = _max_abs_diff(a["compare_with"], str(path))
    return report


def main(argv: list[str]) -> int:
    name, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        report = STEPS[name](args)
    except Exception as exc:  # the parent reports the failure and carries on
        traceback.print_exc()
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
