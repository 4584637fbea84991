"""The DuckDB → Spark SQL translation the Spark engine runs the project's rules through.

(Whether Spark computes the same results is the parity suite, test_spark_hourly.py; here:
the text, without a Spark session.)
"""

import pytest

from refrig_assets.engines.spark_sql import TranslationError, to_spark


def test_string_literals_keep_their_quotes_and_backslashes():
    duck = "SELECT 'it''s' || ' a\\b' AS \"column\""
    assert to_spark(duck) == "SELECT 'it\\'s' || ' a\\\\b' AS `column`"


def test_types_and_functions_take_their_spark_names():
    duck = (
        "SELECT CAST(x AS VARCHAR), CAST(NULL AS TIMESTAMPTZ), arg_min_null(v, ts), "
        "arg_max_null(v, ts), regexp_matches(d, '^a'), error('stop')"
    )
    assert to_spark(duck) == (
        "SELECT CAST(x AS STRING), CAST(NULL AS TIMESTAMP), min_by(v, ts), "
        "max_by(v, ts), regexp_like(d, '^a'), raise_error('stop')"
    )


def test_intervals_filters_and_decimal_literals():
    duck = "SELECT count(*) FILTER (ts > r + INTERVAL (5.0 * 60) SECOND) WHERE v BETWEEN 0.5 AND 2"
    assert to_spark(duck) == (
        "SELECT count(*) FILTER (WHERE ts > r + make_dt_interval(0, 0, 0, 5.0D * 60)) "
        "WHERE v BETWEEN 0.5D AND 2"
    )


def test_a_timestamp_as_text_keeps_the_utc_offset_duckdb_prints():
    assert to_spark("SELECT CAST(d.ts AS VARCHAR)") == (
        "SELECT concat(CAST(d.ts AS STRING), '+00')"
    )
    # a raw text column of a landing file is not a timestamp, whatever its name
    assert to_spark('SELECT CAST("ts" AS VARCHAR)') == "SELECT CAST(`ts` AS STRING)"


def test_strftime_becomes_a_java_date_pattern():
    assert to_spark("SELECT strftime(ts, '%Y-%m-%dT%H:%M:%SZ')") == (
        # every character that is not a directive is quoted text in the Java pattern
        "SELECT date_format(ts, 'yyyy\\'-\\'MM\\'-\\'dd\\'T\\'HH\\':\\'mm\\':\\'ss\\'Z\\'')"
    )


def test_parquet_reads_and_row_numbers():
    assert to_spark("SELECT * FROM read_parquet('s3a://b/x.parquet')") == (
        "SELECT * FROM parquet.`s3a://b/x.parquet`"
    )
    assert to_spark(
        "SELECT * EXCLUDE (a) FROM read_parquet('/d/x.parquet', file_row_number = true)"
    ) == (
        "SELECT * EXCEPT (a) FROM (SELECT *, _metadata.row_index AS file_row_number "
        "FROM parquet.`/d/x.parquet`)"
    )


def test_an_empty_window_needs_the_order_it_stands_for():
    with pytest.raises(TranslationError, match="window order"):
        to_spark("SELECT lag(ts) OVER () FROM t")
    assert to_spark("SELECT lag(ts) OVER () FROM t", window_order="PARTITION BY d ORDER BY ts") == (
        "SELECT lag(ts) OVER (PARTITION BY d ORDER BY ts) FROM t"
    )


def test_csv_fields_are_one_based_elements_of_a_literal_split():
    assert to_spark("SELECT trim(string_split(csv_line, '|')[3])") == (
        "SELECT trim(element_at(split(csv_line, '\\\\Q|\\\\E'), 3))"
    )
