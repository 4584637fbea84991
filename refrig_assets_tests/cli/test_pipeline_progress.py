"""``refrig pipeline run`` numbers its steps and says how long each took and how long is left;
detail lines and notices pass through unnumbered."""

import io
import re

from rich.console import Console

from refrig_assets.cli.progress import PipelineProgress, pipeline_steps


def test_steps_are_numbered_with_their_duration_and_an_estimate_of_the_time_left():
    out = io.StringIO()
    progress = PipelineProgress(3, Console(file=out, width=200))
    progress("  run abc was left unfinished by a process that is gone: marked failed")
    progress("  2026-03-03-11:00: readings → features ok")
    progress("    autoencoder_scores held: too few windows")
    progress("  2026-03-03-12:00: readings → features ok")
    progress("  2026-03-03: drift and health ok")
    lines = out.getvalue().splitlines()

    assert lines[0].startswith("  run abc")
    assert re.fullmatch(
        r"\[1/3\] 2026-03-03-11:00: readings → features ok  \d+\.\d s, ETA .+", lines[1]
    )
    assert lines[2] == "    autoencoder_scores held: too few windows"
    assert re.fullmatch(r"\[2/3\] .* ok  \d+\.\d s, ETA \d+ (s|min)", lines[3])
    assert lines[4].startswith("[3/3] 2026-03-03: drift and health ok") and lines[4].endswith(
        "ETA 0 s"
    )


def test_a_run_of_48_hours_over_three_days_has_105_steps():
    # readings → features and scores → alerts per hour, streaming, training, daily scores per
    # day, backtest, drift and health per day
    assert pipeline_steps(hours=48, days=3) == 96 + 2 + 3 + 1 + 3


class StepClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hours_reported_together_after_one_range_run_do_not_shrink_the_estimate():
    # A range of hours runs as one Dagster run: its six hours are reported at once, 25 s in.
    out, clock = io.StringIO(), StepClock()
    progress = PipelineProgress(17, Console(file=out, width=200), clock=clock)
    clock.now = 25.0
    for hour in range(6):
        progress(f"  2026-01-01-0{hour}:00: readings → features ok")
    etas = re.findall(r"ETA (.+)$", out.getvalue(), flags=re.M)
    # 25 s for 6 of 17 steps: about 46 s left, not the one second of six steps in no time
    assert etas[-1] == "46 s", etas
    assert etas[1] == "3 min", etas
