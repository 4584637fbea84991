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
