"""Progress of ``refrig pipeline run``: each step as ``[12/48] <what> ok 3.1 s, ETA 4 min``.

The runner reports every step as one line indented by two spaces (``  2026-03-03-11:00:
readings → features ok``); deeper-indented lines are details of the step before. The counter,
the step's duration and the estimate of the time left (the run's time so far per step done)
are added here, so the runner stays a plain sequence of ``log`` calls. The hours of a range run
as one Dagster run are reported together when it ends: they count for the time the range took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from rich.console import Console

STEP_INDENT = "  "
NOT_STEPS = ("  run ",)  # notices about earlier runs, not steps of this one


def pipeline_steps(hours: int, days: int) -> int:
    """Steps of a run over ``hours`` hours touching ``days`` days: readings → features and
    scores → alerts per hour, streaming rules, training, daily scores per day, the backtest and
    drift and health per day."""
    return 2 * hours + 2 + days + 1 + days


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{round(seconds / 60)} min" if seconds < 5400 else str(timedelta(seconds=int(seconds)))


class PipelineProgress:
    """A ``log`` callable for :func:`refrig_assets.cli.runner.run_pipeline` that numbers the
    steps and adds their duration and the estimated time left."""

    def __init__(
        self,
        total: int,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.total = total
        self.done = 0
        self._clock = clock
        self._start = self._last = clock()

    def __call__(self, line: str) -> None:
        is_step = (
            line.startswith(STEP_INDENT)
            and not line.startswith(STEP_INDENT + " ")
            and not line.startswith(NOT_STEPS)
        )
        if not is_step:
            self.console.print(line, markup=False)
            return
        now = self._clock()
        took, self._last = now - self._last, now
        self.done = min(self.done + 1, self.total)
        # Steps take seconds to minutes: the estimate is the mean of every step so far.
        left = (now - self._start) / self.done * (self.total - self.done)
        width = len(str(self.total))
        self.console.print(
            f"[{self.done:>{width}}/{self.total}] {line.strip()}  {took:.1f} s, "
            f"ETA {_duration(left)}",
            markup=False,
        )
