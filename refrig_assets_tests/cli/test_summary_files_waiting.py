"""A history run (`refrig pipeline run --start 2026-01-01T00:00 ...`) over a landing zone that
also holds files without a usable reading time (empty, no `ts` column, epoch milliseconds in a
CSV): such a file belongs to the hour it arrived in, which this run does not cover, so neither
its quarantine nor the summary showed it and its readings looked taken in. The summary names
each such file, why, and the hour that will quarantine it."""

from refrig_assets.cli.pipeline import FILES_NAMED, files_waiting_lines
from refrig_assets.ingestion.landing.index import FileSpan, LandingIndex

RUN = ["2026-01-01-00:00", "2026-01-01-01:00"]
ARRIVAL = "2026-12-07-14:00"


def _rejected(path: str, rule: str, message: str, hour: str) -> FileSpan:
    rejection = {"source_file": path, "rule": rule, "message": message, "column": None}
    return FileSpan(1, 1, None, None, 0, rejection=rejection, hours=[hour])


def _index(tmp_path, files: dict[str, FileSpan], ran: list[str]) -> LandingIndex:
    index = LandingIndex(tmp_path / "landing_index.json")
    index.entries = files
    index.hours = {h: {"files": {}} for h in ran}
    return index


def test_files_placed_in_an_hour_not_run_are_named_with_their_reason(tmp_path):
    files = {
        "odd/empty.csv": _rejected("odd/empty.csv", "empty_file", "odd/empty.csv: empty", ARRIVAL),
        "odd/epoch_ms.csv": FileSpan(1, 1, None, None, 60, hours=[ARRIVAL]),
        # In the run: its quarantine row is in the run's summary already.
        "2026-01-01/bad.csv": _rejected("2026-01-01/bad.csv", "not_utf8", "bad", RUN[0]),
        # Its hour ran before: quarantined there.
        "old/x.csv": _rejected("old/x.csv", "empty_file", "old", "2025-12-31-23:00"),
        # Readings of a later hour: ordinary data the run does not cover.
        "2026-01-02/r.csv": FileSpan(
            1, 1, "2026-01-02T00:00:00+00:00", "2026-01-02T00:59:00+00:00", 60, hours=[ARRIVAL]
        ),
    }
    lines = files_waiting_lines(_index(tmp_path, files, [*RUN, "2025-12-31-23:00"]), RUN)

    assert lines[0].startswith("landing files without a reading time in these hours: 2,")
    assert lines[1:] == [
        f"  odd/empty.csv: empty [empty_file; {ARRIVAL}]",
        "  odd/epoch_ms.csv: 60 rows, none with a usable reading time (unparsable or "
        f"implausible) [{ARRIVAL}]",
    ]


def test_nothing_waiting_says_nothing_and_many_are_counted(tmp_path):
    assert files_waiting_lines(_index(tmp_path, {}, RUN), RUN) == []
    many = {
        f"odd/{i}.csv": _rejected(f"odd/{i}.csv", "empty_file", f"odd/{i}.csv: empty", ARRIVAL)
        for i in range(FILES_NAMED + 2)
    }
    lines = files_waiting_lines(_index(tmp_path, many, RUN), RUN)
    assert len(lines) == 1 + FILES_NAMED + 1
    assert lines[-1] == "  ... and 2 more"
