"""Run one benchmark step in a fresh subprocess and measure it from outside.

Each step is ``python -m tools.benchmarks.steps <step> <json arguments>``. The parent records
the process wall time, the CPU time of the process tree (``RUSAGE_CHILDREN``) and the peak
resident memory of the whole process tree (polled from ``/proc``, so a Spark JVM started by the
step counts too). The child reports its own in-process timings (without interpreter start and
imports) on a line starting with :data:`RESULT_MARK`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULT_MARK = "BENCH_RESULT "
POLL_SECONDS = 0.1


@dataclass
class StepResult:
    """What one step cost: measured outside the process plus what it reported itself."""

    name: str
    ok: bool
    process_wall_s: float
    cpu_s: float
    peak_rss_mb: float
    report: dict = field(default_factory=dict)
    error: str | None = None
    # 1-minute load average of the machine when the step ended (other work stretches wall times)
    load_average: float | None = None

    @property
    def wall_s(self) -> float:
        """The step's own wall time (``report['wall_s']``), else the process wall time."""
        return float(self.report.get("wall_s", self.process_wall_s))

    def to_json(self) -> dict:
        return asdict(self) | {"wall_s": round(self.wall_s, 3)}


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux ``/proc/<pid>/stat``)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is field 3 of stat(5)
        try:
            pid, ppid, pages = int(entry.name), int(fields[1]), int(fields[21])
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class _PeakSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(self.pid))
            self.done.wait(POLL_SECONDS)


def run_step(
    name: str,
    step: str,
    args: dict,
    env: dict[str, str] | None = None,
    timeout_s: float = 900,
    log_dir: Path | None = None,
) -> StepResult:
    """Run ``step`` with ``args`` in a fresh interpreter; never raises for a failing step."""
    cmd = [sys.executable, "-m", "tools.benchmarks.steps", step, json.dumps(args)]
    full_env = {**os.environ, **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = _PeakSampler(proc.pid)
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        error = None if proc.returncode == 0 else f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        error = f"timed out after {timeout_s:.0f} s"
    wall = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = max(sampler.peak, after.ru_maxrss * 1024 if after.ru_maxrss > before.ru_maxrss else 0)
    report: dict = {}
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            report = json.loads(line[len(RESULT_MARK) :])
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{name}.log").write_text(output)
    if error is None and not report:
        error = "the step printed no result"
    if error is None and report.get("error"):
        error = str(report["error"])
    if error is not None:
        cause = _last_exception_line(output)
        error = f"{error}: {cause}" if cause else error
    return StepResult(
        name=name,
        ok=error is None,
        process_wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        peak_rss_mb=round(peak / 2**20, 1),
        report=report,
        error=error,
        load_average=round(os.getloadavg()[0], 2),
    )


def _last_exception_line(output: str) -> str | None:
    """The last ``SomeError: message`` line of a log (the root cause of a failed step)."""
    for line in reversed(output.splitlines()):
        head = line.strip().split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line.strip()[:300]
    return None


def emit(report: dict) -> None:
    """Child side: print the step's own report for the parent."""
    print(RESULT_MARK + json.dumps(report, default=str), flush=True)
