"""Progress of ``refrig pipeline run``: each step as ``[12/48] <what> ok 3.1 s, ETA 4 min``.

The runner reports every step as one line indented by two spaces (``  2026-03-03-11:00:
readings → features ok``); deeper-indented lines are details of the step before. The counter,
the step's duration and the estimate of the time left (rich's, from the steps so far) are added
here, so the runner stays a plain sequence of ``log`` calls.
"""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console
from rich.progress import Progress

STEP_INDENT = "  "
NOT_STEPS = ("  run ",)  # notices about earlier runs, not steps of this one


def pipeline_steps(hours: int, days: int) -> int:
    """Steps of a run over ``hours`` hours touching ``days`` days: readings → features and
    scores → alerts per hour, streaming rules, training, daily scores per day, the backtest and
    drift and health per day."""
    return 2 * hours + 2 + days + 1 + days


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{round(seconds / 60)} min" if seconds < 5400 else str(timedelta(seconds=int(seconds)))


class PipelineProgress:
    """A ``log`` callable for :func:`refrig_assets.cli.runner.run_pipeline` that numbers the
    steps and adds their duration and the estimated time left."""

    def __init__(self, total: int, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.total = total
        self.done = 0
        # Steps take seconds to minutes: estimate from all of them, not the last 30 s.
        self._progress = Progress(
            console=self.console, auto_refresh=False, speed_estimate_period=24 * 3600
        )
        self._task = self._progress.add_task("pipeline", total=total)
        self._last = time.monotonic()
        self._progress.start_task(self._task)

    def __call__(self, line: str) -> None:
        is_step = (
            line.startswith(STEP_INDENT)
            and not line.startswith(STEP_INDENT + " ")
            and not line.startswith(NOT_STEPS)
        )
        if not is_step:
            self.console.print(line, markup=False)
            return
        now = time.monotonic()
        took, self._last = now - self._last, now
        self.done = min(self.done + 1, self.total)
        self._progress.update(self._task, completed=self.done)
        left = self._progress.tasks[0].time_remaining if self.done < self.total else 0.0
        width = len(str(self.total))
        self.console.print(
            f"[{self.done:>{width}}/{self.total}] {line.strip()}  {took:.1f} s, "
            f"ETA {_duration(left)}",
            markup=False,
        )
