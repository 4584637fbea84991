"""The landing index scans its new files in one DuckDB database (a new connection to it per
file) and finds exactly what a new database per file finds: the same spans, rejections, hours
and extra columns, whatever the files before it left in their connection (a CSV file's tables)."""

import dataclasses
import gzip

import pandas as pd
from support.quality_helpers import CONTRACT, arrived_in_hour, good_rows

from refrig_assets.core.duck import connect
from refrig_assets.ingestion.landing.index import LandingIndex, scan_file


def _landing(landing):
    landing.mkdir()
    good_rows(3).to_parquet(landing / "a.parquet", index=False)
    good_rows(2, device="dev-2").to_csv(landing / "b.csv", index=False)
    bad = good_rows(4, device="dev-3").to_csv(index=False).splitlines()
    bad[2] = bad[2] + ",1,2,3"  # a malformed line: a rejects table of the connection
    (landing / "c.csv").write_text("\n".join(bad) + "\n")
    (landing / "d.csv.gz").write_bytes(
        gzip.compress(good_rows(2, device="dev-4", start_minute=50).to_csv(index=False).encode())
    )
    late = good_rows(3, device="dev-5", start_minute=58).assign(extra_col=1)
    late.to_csv(landing / "e.csv", index=False)  # spans two hours, one column beyond the contract
    (landing / "f.csv").write_text(good_rows(2).to_csv(index=False, sep=";"))  # wrong delimiter
    (landing / "g.parquet").write_bytes(b"PAR1 truncated")
    (landing / "h.csv").write_text("")
    gappy = pd.concat(
        [good_rows(2, device="dev-6"), good_rows(2, device="dev-6", start_minute=180)]
    )
    gappy.to_parquet(landing / "i.parquet", index=False)
    arrived_in_hour(*sorted(landing.iterdir()))


def _without_first_seen(span):
    return dataclasses.replace(span, first_seen=None)


def test_files_scanned_in_one_database_give_the_spans_of_a_database_per_file(tmp_path):
    landing = tmp_path / "landing"
    _landing(landing)
    files = sorted(landing.iterdir())
    alone = {p.name: scan_file(p, landing, CONTRACT, p.stat()) for p in files}
    shared = connect()
    try:
        together = {p.name: scan_file(p, landing, CONTRACT, p.stat(), shared) for p in files}
        # nothing of a scan is left in the database
        left = shared.execute("SELECT count(*) FROM duckdb_tables()").fetchall()[0][0]
    finally:
        shared.close()
    index = LandingIndex(tmp_path / "index.json")
    by_index = {p.name: index.span(p, landing, CONTRACT) for p in files}

    expected = {k: _without_first_seen(v) for k, v in alone.items()}
    assert {k: _without_first_seen(v) for k, v in together.items()} == expected
    assert {k: _without_first_seen(v) for k, v in by_index.items()} == expected
    assert left == 0
    # the landing zone above covers what the scan tells apart
    assert expected["e.csv"].hours == ["2026-01-01-00:00", "2026-01-01-01:00"]
    assert expected["e.csv"].extra_columns == ["extra_col"]
    assert expected["i.parquet"].hours == ["2026-01-01-00:00", "2026-01-01-03:00"]
    rules = {k: v.rejection["rule"] for k, v in expected.items() if v.rejection}
    assert rules == {
        "f.csv": "wrong_delimiter",
        "g.parquet": "truncated_file",
        "h.csv": "empty_file",
    }
    assert expected["c.csv"].rows == 4 and expected["b.csv"].rows == 2
