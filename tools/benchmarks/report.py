"""The benchmark report: one table of steps, the feature-step ratios, growth and the targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.benchmarks.measure import StepResult
    from tools.benchmarks.run import BenchRun

# Targets of the hourly path and the feature step (seed SLA: scores within one hour). Time
# targets of the hourly path are ratios to the read floor measured in the same run, so they
# hold up on a loaded machine; ``_cpu`` ratios (step CPU / read-floor CPU) are shown next to them.
TARGETS = {
    "ingest_vs_read_floor": 1.5,
    "quality_vs_read_floor": 2.0,
    "hourly_total_vs_read_floor": 5.0,
    "hourly_total_rss_mb": 4096.0,
    "feature_vs_read_floor": 1.2,
    "feature_speedup_vs_spark": 15.0,
    "feature_speedup_vs_pandas": 5.0,
    "daily_scores_wall_s": 60.0,
    "daily_scores_rss_mb": 4096.0,
    "growth_100k_to_300k": 3.3,
    # --scale: the hourly path at 1M devices (one Dagster run, readings → alerts)
    "scale_hourly_total_wall_s": 600.0,
    "scale_hourly_total_rss_mb": 4096.0,
    "scale_growth_hourly_total": 10.5,
}
# Steps whose time is held against the read floor: target name → step.
FLOOR_RATIOS = {
    "ingest_vs_read_floor": "ingest",
    "quality_vs_read_floor": "quality",
    "hourly_total_vs_read_floor": "hourly_total",
}

SECTIONS = [
    (
        "Hourly partition through Dagster (one asset per fresh process)",
        ["registry", "ingest", "quality", "features", "scores", "alerts", "incidents"],
    ),
    ("Whole hourly partition, readings → alerts, one Dagster run", ["hourly_total"]),
    (
        "Feature step on the same clean_readings file",
        ["read_floor", "features_project", "features_pandas", "features_spark"],
    ),
    ("Feature step growth", ["growth_*"]),
    ("Daily detectors", ["daily_scores", "daily_scores_*"]),
    ("Hourly path at scale (--scale)", ["scale_*"]),
    (
        "Setup (not part of the targets)",
        ["simulate", "prepare_*", "train_hourly", "daily_features", "train_daily"],
    ),
]

DESCRIPTIONS = {
    "registry": "device_registry asset",
    "ingest": "sensor_readings asset (landing file → typed readings)",
    "quality": "clean_readings + quarantined_readings assets",
    "features": "device_features asset (embedded engine)",
    "scores": "hourly score assets",
    "alerts": "device_alerts asset",
    "incidents": "device_incidents asset (causes, grouping, site events, sensor tickets, store)",
    "hourly_total": "hourly_pipeline job, cold landing index (+ loading the Definitions)",
    "read_floor": "pyarrow read of the clean_readings file",
    "features_project": "project: DuckDB feature SQL → Parquet + contract check",
    "features_pandas": "reference: vectorized pandas, read → compute → write",
    "features_spark": "reference: same SQL on PySpark local[*] (job only)",
    "daily_scores": "daily score assets over 24 feature hours",
    "simulate": "fleet simulator, one hour",
    "train_hourly": "train hourly detectors on the hour",
    "daily_features": "24 feature hours for the daily detectors",
    "train_daily": "train daily detectors on the day",
    "scale_prepare": "the simulated fleet tiled (device ids prefixed per copy), cached",
}


def _size(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


def _order(name: str) -> tuple[int, str]:
    """Sizes in numeric order (growth_10000 before growth_100000), other names by name."""
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), "") if tail.isdigit() else (0, name)


def _matching(run: BenchRun, pattern: str) -> list[tuple[str, StepResult]]:
    if pattern.endswith("*"):
        found = [(n, r) for n, r in run.results.items() if n.startswith(pattern[:-1])]
        return sorted(found, key=lambda item: _order(item[0]))
    return [(pattern, run.results[pattern])] if pattern in run.results else []


def _ok(run: BenchRun, name: str) -> StepResult | None:
    result = run.results.get(name)
    return result if result is not None and result.ok else None


def _step_cpu(result: StepResult | None) -> float | None:
    value = result.report.get("cpu_s") if result is not None else None
    return float(value) if value else None


def summary(run: BenchRun) -> dict:
    """Ratios, growth and every target with its measured value and verdict."""
    out: dict = {"ratios": {}, "growth": {}, "targets": {}}
    project, floor = _ok(run, "features_project"), _ok(run, "read_floor")
    pandas, spark = _ok(run, "features_pandas"), _ok(run, "features_spark")
    if project and floor:
        out["ratios"]["project_over_read_floor"] = round(project.wall_s / floor.wall_s, 3)
    if project and pandas:
        out["ratios"]["project_over_pandas"] = round(project.wall_s / pandas.wall_s, 3)
    cpu = {n: _step_cpu(r) for n, r in (("p", project), ("f", floor), ("d", pandas))}
    p_cpu, f_cpu, d_cpu = cpu["p"], cpu["f"], cpu["d"]
    if p_cpu and f_cpu:
        out["ratios"]["project_over_read_floor_cpu"] = round(p_cpu / f_cpu, 3)
    if p_cpu and d_cpu:
        out["ratios"]["project_over_pandas_cpu"] = round(p_cpu / d_cpu, 3)
    if project and spark:
        out["ratios"]["project_over_spark"] = round(project.wall_s / spark.wall_s, 3)
        with_start = spark.wall_s + float(spark.report.get("session_start_s", 0.0))
        out["ratios"]["project_over_spark_with_session_start"] = round(
            project.wall_s / with_start, 4
        )
        # Like for like: the project's SQL and write alone (no contract check and summary,
        # which the Spark job does not run) against the Spark job.
        sql_only = project.report.get("compute_write_s")
        if sql_only:
            out["ratios"]["project_sql_over_spark"] = round(float(sql_only) / spark.wall_s, 4)
    grown = [(_size(n), r) for n, r in _matching(run, "growth_*") if r.ok]
    growth = {k: r.wall_s for k, r in grown}
    out["growth"] = {str(k): round(v, 3) for k, v in sorted(growth.items())}
    if 100_000 in growth and 300_000 in growth:
        out["growth"]["ratio_100k_to_300k"] = round(growth[300_000] / growth[100_000], 3)
        cpu_growth = {k: _step_cpu(r) for k, r in grown}
        small, large = cpu_growth.get(100_000), cpu_growth.get(300_000)
        if small and large:
            out["growth"]["ratio_100k_to_300k_cpu"] = round(large / small, 3)

    def target(name: str, value: float | None, passed: bool | None) -> None:
        out["targets"][name] = {
            "target": TARGETS[name],
            "measured": None if value is None else round(value, 3),
            "met": passed,
        }

    for name, step_name in FLOOR_RATIOS.items():
        measured = _ok(run, step_name)
        if measured is None or floor is None:
            target(name, None, None)
            continue
        ratio = measured.wall_s / floor.wall_s
        target(name, ratio, ratio <= TARGETS[name])
        step_cpu = _step_cpu(measured)
        if step_cpu and f_cpu:
            out["ratios"][f"{step_name}_over_read_floor_cpu"] = round(step_cpu / f_cpu, 3)
        out["ratios"][f"{step_name}_over_read_floor"] = round(ratio, 3)
    total = _ok(run, "hourly_total")
    if total is None:
        target("hourly_total_rss_mb", None, None)
    else:
        rss = total.peak_rss_mb
        target("hourly_total_rss_mb", rss, rss <= TARGETS["hourly_total_rss_mb"])
    ratios = out["ratios"]
    for name, key, better_below in (
        ("feature_speedup_vs_spark", "project_over_spark", False),
        ("feature_speedup_vs_pandas", "project_over_pandas", False),
        ("feature_vs_read_floor", "project_over_read_floor", True),
    ):
        if key not in ratios:
            target(name, None, None)
        elif better_below:
            target(name, ratios[key], ratios[key] <= TARGETS[name])
        else:
            speedup = 1 / ratios[key]
            target(name, speedup, speedup >= TARGETS[name])
    daily = _ok(run, "daily_scores")
    if daily is None:
        target("daily_scores_wall_s", None, None)
        target("daily_scores_rss_mb", None, None)
    else:
        target("daily_scores_wall_s", daily.wall_s, daily.wall_s <= TARGETS["daily_scores_wall_s"])
        rss = daily.peak_rss_mb
        target("daily_scores_rss_mb", rss, rss <= TARGETS["daily_scores_rss_mb"])
    g = out["growth"].get("ratio_100k_to_300k")
    target("growth_100k_to_300k", g, None if g is None else g <= TARGETS["growth_100k_to_300k"])
    scale = _ok(run, "scale_hourly_total")
    if scale is not None:
        wall = scale.wall_s
        target("scale_hourly_total_wall_s", wall, wall <= TARGETS["scale_hourly_total_wall_s"])
        rss = scale.peak_rss_mb
        target("scale_hourly_total_rss_mb", rss, rss <= TARGETS["scale_hourly_total_rss_mb"])
        scale_growth = wall / total.wall_s if total is not None and total.wall_s else None

        target(
            "scale_growth_hourly_total",
            scale_growth,
            None if scale_growth is None else scale_growth <= TARGETS["scale_growth_hourly_total"],
        )
    return out


def _row(name: str, result: StepResult) -> str:
    desc = DESCRIPTIONS.get(name, "")
    if name.startswith("growth_"):
        desc = f"project feature step, {_size(name):,} devices"
    if name.startswith("daily_scores_"):
        desc = f"{name.removeprefix('daily_scores_')}_scores alone over 24 feature hours"
    if name.startswith("scale_"):
        base = DESCRIPTIONS.get(name.removeprefix("scale_"), "")
        devices = run_devices(result)
        desc = f"{base}, {devices:,} devices" if base and devices else base or desc
    if name.startswith("prepare_"):
        desc = f"clean_readings of {_size(name):,} devices (cut from / tiled over the hour)"
    notes = []
    r = result.report
    if "session_start_s" in r:
        notes.append(f"+ {r['session_start_s']:.1f} s session start")
    if "import_s" in r:
        notes.append(f"definitions import {r['import_s']:.1f} s")
    agreement = r.get("agreement") or {}
    if "max_rel_diff" in agreement:
        notes.append(f"max relative Δ vs project {agreement['max_rel_diff']:.0e}")
    elif agreement:
        notes.append(f"DIFFERS from project: {agreement}")
    if r.get("steps") and name == "hourly_total":
        slowest = sorted(r["steps"].items(), key=lambda kv: -kv[1])[:4]
        notes.append(", ".join(f"{k} {v:.1f}" for k, v in slowest))
    busy = [s.get("busy_threads") for s in (r.get("step_resources") or {}).values()]
    if len(busy) == 1 and busy[0] is not None:
        notes.append(f"{busy[0]:.1f} threads busy")
    if not result.ok:
        notes.append(f"FAILED: {(result.error or '').splitlines()[0][:80]}")
    step_cpu = r.get("cpu_s")
    cpu = "—" if step_cpu is None else f"{float(step_cpu):.1f}"
    load = "—" if result.load_average is None else f"{result.load_average:.1f}"
    return (
        f"| {name} | {desc} | {result.wall_s:.2f} | {cpu} | {result.cpu_s:.1f} | "
        f"{result.peak_rss_mb:,.0f} | {result.process_wall_s:.1f} | {load} | {'; '.join(notes)} |"
    )


def run_devices(result: StepResult) -> int:
    """Fleet size a scale step ran on (its report says; 0 when it does not)."""
    return int(result.report.get("devices") or 0)


def markdown(run: BenchRun) -> str:
    """The report as Markdown: table, ratios, growth, targets, notes."""
    env = run.environment
    lines = [
        f"Benchmark of {run.config.devices:,} devices, one hourly partition "
        f"({env.get('date', '')}, {env.get('cpus')} CPUs, {env.get('memory_gb')} GB, "
        f"commit {env.get('commit') or '?'}, load average {env.get('load_average_at_start')} → "
        f"{env.get('load_average_at_end')}, benchmark {env.get('benchmark_wall_s')} s).",
        "",
        "wall and step CPU = the step's own time in its process (imports excluded; CPU of all its "
        "threads, not of a Spark JVM); tree CPU = the whole process tree, imports included; "
        "RSS = peak of the process tree; process = interpreter start to exit. On a shared "
        "machine (load average above the CPU count) wall times stretch; CPU times much less. "
        "load = the machine's 1-minute load average when the step ended.",
        "",
        "| step | what | wall s | step CPU s | tree CPU s | peak RSS MB | process s | load | "
        "notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for title, patterns in SECTIONS:
        rows = [r for p in patterns for r in _matching(run, p)]
        if rows:
            lines.append(f"| **{title}** | | | | | | | | |")
            lines.extend(_row(n, r) for n, r in rows)
    s = summary(run)
    lines += ["", "Ratios (step / other in the same run; `_cpu`: step CPU instead of wall):", ""]
    for k, v in s["ratios"].items():
        lines.append(f"- {k}: {v} ({1 / v:.1f}× faster)" if v < 1 else f"- {k}: {v} ({v:.1f}×)")
    if s["growth"]:
        lines += ["", "Feature step growth (wall s): " + json_line(s["growth"])]
    lines += [
        "",
        "Targets (`*_vs_read_floor`: wall time over the read floor's in this run; "
        "`*_speedup_*`: times faster):",
        "",
        "| target | goal | measured | met |",
        "|---|---:|---:|---|",
    ]
    for name, t in s["targets"].items():
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        measured = "—" if t["measured"] is None else f"{t['measured']:,.2f}"
        lines.append(f"| {name} | {t['target']} | {measured} | {met} |")
    loads = [r.load_average for r in run.results.values() if r.load_average is not None]
    cpus = env.get("cpus") or 1
    if loads and max(loads) > cpus:
        lines += [
            "",
            f"**The machine was shared** (load average up to {max(loads):.1f} on {cpus} CPUs): "
            "wall times, and the verdicts on wall-time ratios above, are not reliable; the "
            "`_cpu` ratios are closer to what the steps cost. Rerun on a quiet machine.",
        ]
    if run.notes:
        lines += ["", *[f"- {n}" for n in run.notes]]
    return "\n".join(lines)


def json_line(values: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in values.items())
