"""read_scores_for_hour gives the frame that converting each detector's rows and concatenating
the frames gives: joined in Arrow and converted once when the detectors' files share one schema,
converted one by one when they do not (a file written by pandas next to one written by DuckDB,
a flag stored as plain booleans next to nullable ones)."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refrig_assets.core.storage import ParquetStore, reads_kept
from refrig_assets.scoring import reads
from refrig_assets.scoring.reads import read_scores_for_hour
from refrig_assets_tests.scoring.test_score_reads_kept import (
    CALLS,
    KEY,
    MODELS,
    START,
    _scores,
    store,  # noqa: F401 (fixture)
)

END = START + pd.Timedelta(hours=1)


def each_converted(home: ParquetStore, call: dict) -> pd.DataFrame:
    """The hour's rows read and converted file by file, then concatenated."""
    frames = []
    for path in reads.score_paths_for_hour(home, KEY):
        filters = [("window_start", ">=", START), ("window_start", "<", END)]
        filters += call["shard"].filters() if "shard" in call else []
        if "device_ids" in call:
            filters.append(("device_id", "in", sorted(set(call["device_ids"]))))
        if call.get("flagged_only"):
            filters.append(("anomaly_flag", "==", True))
        table = pq.read_table(path, columns=call.get("columns"), filters=filters)
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True)


def rewrite(home: ParquetStore, model: str, change) -> None:
    """Replace ``model``'s partition by its rows as Arrow, changed by ``change``."""
    table = pa.Table.from_pandas(_scores(model), preserve_index=False)
    pq.write_table(change(table), home.path(f"{model}_scores", KEY))


MIXED = {
    "microsecond times (DuckDB's)": lambda t: t.cast(
        pa.schema(
            [
                f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
                for f in t.schema
            ],
            metadata=t.schema.metadata,
        )
    ),
    "plain boolean flags": lambda t: t.set_column(
        t.schema.get_field_index("anomaly_flag"),
        "anomaly_flag",
        pa.compute.fill_null(t["anomaly_flag"], False),
    ),
    "no pandas metadata": lambda t: t.replace_schema_metadata(None),
}


@pytest.mark.parametrize("call", CALLS)
def test_files_of_one_schema_are_converted_once(store, monkeypatch, call):  # noqa: F811
    converted = []
    concat = pa.concat_tables
    monkeypatch.setattr(reads.pa, "concat_tables", lambda ts: converted.append(ts) or concat(ts))
    with reads_kept():
        found = read_scores_for_hour(store, KEY, START, END, **call)
    assert len(converted) == 1
    pd.testing.assert_frame_equal(found, each_converted(store, call))


@pytest.mark.parametrize("mixed", list(MIXED))
@pytest.mark.parametrize("call", CALLS)
def test_files_of_other_schemas_give_what_each_conversion_gives(store, call, mixed):  # noqa: F811
    rewrite(store, MODELS[1], MIXED[mixed])
    with reads_kept():
        found = read_scores_for_hour(store, KEY, START, END, **call)
    pd.testing.assert_frame_equal(found, each_converted(store, call))
