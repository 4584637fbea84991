"""Quality flags on clean readings: stuck sensors, future timestamps, wrong units, late files —
and what flags do downstream (windows below half completeness are not scored, flags lower
confidence)."""

import os
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
from support.quality_helpers import CONTRACT, HOUR, good_rows, run_hour

from refrig_assets.features.windows import feature_sql
from refrig_assets.quality.rules import decode_mask, quality_rules

STUCK_MINUTES = quality_rules()["stuck_sensor_minutes"]


def flags_by_minute(clean: pd.DataFrame, device: str = "dev-1") -> dict[int, list[str]]:
    rows = clean[clean["device_id"] == device]
    return {r.ts.minute: decode_mask(int(r.quality_mask)) for r in rows.itertuples()}


def test_a_sensor_repeating_one_value_for_the_contract_duration_is_stuck(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(60)
    run = slice(10, 10 + STUCK_MINUTES)  # STUCK_MINUTES + 1 readings span STUCK_MINUTES minutes
    df.loc[run, "ambient_temperature"] = 21.5
    df.loc[45:55, "temperature_condenser"] = 30.0  # 10 minutes: not long enough
    df.loc[:, "current_compressor"] = 0.0  # compressor off all hour: a steady value, not stuck
    df.to_parquet(landing / "h.parquet")
    clean, result = run_hour(landing)
    flags = flags_by_minute(clean)
    stuck = sorted(m for m, f in flags.items() if "STUCK_SENSOR" in f)
    assert stuck == list(range(10, 10 + STUCK_MINUTES + 1))
    assert result.flag_counts["STUCK_SENSOR"] == STUCK_MINUTES + 1
    assert result.sensor_flag_counts[("STUCK_SENSOR", "ambient_temperature")] == STUCK_MINUTES + 1
    assert result.sensor_flag_counts[("STUCK_SENSOR", "temperature_condenser")] == 0
    assert result.sensor_flag_counts[("STUCK_SENSOR", "current_compressor")] == 0


def test_a_repeated_value_one_minute_short_of_the_duration_is_not_stuck(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(60)
    df.loc[10 : 10 + STUCK_MINUTES - 1, "pressure_low_side"] = 300.0
    df.to_parquet(landing / "h.parquet")
    _, result = run_hour(landing)
    assert result.flag_counts["STUCK_SENSOR"] == 0


def test_readings_stamped_after_their_file_arrived_are_future_timestamps(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "early.parquet"
    good_rows(30).to_parquet(path)
    arrived = (HOUR + timedelta(minutes=10)).timestamp()
    os.utime(path, (arrived, arrived))
    clean, result = run_hour(landing)
    tolerance = quality_rules()["future_tolerance_minutes"]
    future = sorted(m for m, f in flags_by_minute(clean).items() if "FUTURE_TIMESTAMP" in f)
    assert future == list(range(10 + tolerance + 1, 30))
    assert result.flag_counts["FUTURE_TIMESTAMP"] == len(future)


def test_a_device_hour_in_fahrenheit_or_psi_is_unit_suspect_per_sensor(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    celsius = good_rows(30, device="dev-1")
    fahrenheit = good_rows(30, device="dev-2")
    fahrenheit["ambient_temperature"] = 21.0 * 1.8 + 32 + np.linspace(0, 1, 30)  # ~70 degF
    psi = good_rows(30, device="dev-3")
    psi["pressure_high_side"] = 1500 * 0.1450377 + np.linspace(0, 2, 30)  # ~218 psi
    hot = good_rows(30, device="dev-4")
    hot["temperature_condenser"] = 80.0 + np.linspace(0, 1, 30)  # a fouled condenser, in degC
    pd.concat([celsius, fahrenheit, psi, hot]).to_parquet(landing / "h.parquet")
    clean, result = run_hour(landing, registered=("dev-1", "dev-2", "dev-3", "dev-4"))
    suspect = clean.groupby("device_id")["quality_flags"].apply(
        lambda f: f.str.contains("UNIT_SUSPECT").mean()
    )
    assert suspect.to_dict() == {"dev-1": 0.0, "dev-2": 1.0, "dev-3": 1.0, "dev-4": 0.0}
    assert result.sensor_flag_counts[("UNIT_SUSPECT", "ambient_temperature")] == 30
    assert result.sensor_flag_counts[("UNIT_SUSPECT", "pressure_high_side")] == 30
    assert result.sensor_flag_counts[("UNIT_SUSPECT", "temperature_condenser")] == 0
    # 70 read as degC is also beyond the physical range: both flags, the value kept as sent
    out_of_range = clean[clean["quality_flags"].str.contains("OUT_OF_RANGE")]
    assert set(out_of_range["device_id"]) == {"dev-2"}


def test_rows_of_a_file_that_arrives_after_the_hour_was_materialized_are_late(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    index = tmp_path / "state" / "index.json"
    good_rows(30).to_parquet(landing / "on_time.parquet")
    first, _ = run_hour(landing, index_path=index)
    assert not first["quality_flags"].str.contains("LATE").any()

    good_rows(30, device="dev-2").to_parquet(landing / "late.parquet")
    again, result = run_hour(landing, index_path=index)
    late = again.groupby("device_id")["quality_flags"].apply(lambda f: f.str.contains("LATE").all())
    assert late.to_dict() == {"dev-1": False, "dev-2": True}
    assert result.flag_counts["LATE"] == 30

    third, _ = run_hour(landing, index_path=index)
    pd.testing.assert_frame_equal(again, third)  # re-running is idempotent


def test_flag_rates_count_dropouts_per_sensor_and_completeness(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    df = good_rows(10)
    df.loc[0:4, "vibration_compressor"] = np.nan
    df.to_parquet(landing / "h.parquet")
    _, result = run_hour(landing)
    assert result.sensor_flag_counts[("SENSOR_DROPOUT", "vibration_compressor")] == 5
    assert result.sensor_flag_counts[("SENSOR_DROPOUT", "pressure_low_side")] == 0
    assert result.flag_counts["SENSOR_DROPOUT"] == 5
    n = len(CONTRACT.sensor_columns)
    assert result.completeness == (10 * n - 5) / (10 * n)


def test_incomplete_windows_are_not_scored_and_flagged_windows_score_with_less_confidence(
    tmp_path,
):
    """Seed rule: sensor_completeness < 0.5 is not scored; a quality flag lowers confidence."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.detectors import build_detector
    from refrig_assets.simulator import FleetSimulator, SimulationConfig

    landing = tmp_path / "landing"
    landing.mkdir()
    sim = FleetSimulator(SimulationConfig(devices=30, hours=1, seed=5, fault_fraction=0.0))
    df = sim.hour(0)
    devices = sorted(df["device_id"].unique())
    sparse, stuck = devices[0], devices[1]
    first_window = (df["device_id"] == sparse) & (df["ts"] < HOUR + timedelta(minutes=15))
    df = df.drop(df.index[first_window][::3].tolist() + df.index[first_window][1::3].tolist())
    stuck_rows = (df["device_id"] == stuck) & (df["ts"] >= HOUR + timedelta(minutes=15))
    df.loc[stuck_rows, "ambient_temperature"] = 18.25
    df.to_parquet(landing / "h.parquet")
    clean, _ = run_hour(landing, registered=devices)

    con = duckdb.connect()
    con.register("clean", clean)
    features = con.execute(feature_sql("clean")).df()
    features["cohort"] = "all"
    detector = build_detector(load_model_config("isolation_forest")).fit(features)
    floor = float(detector.config.settings.get("min_sensor_completeness", 0.5))
    penalty = float(detector.config.settings.get("confidence_flag_penalty", 0.25))
    scores = detector.score(features)

    window_of = features.set_index(["device_id", "window_start"])
    low = window_of.loc[(sparse, pd.Timestamp(HOUR))]
    assert low["sensor_completeness"] < floor
    scored = set(zip(scores["device_id"], scores["window_start"], strict=True))
    assert (sparse, pd.Timestamp(HOUR)) not in scored
    flagged = scores[scores["device_id"] == stuck].set_index("window_start")
    for start in pd.date_range(HOUR + timedelta(minutes=15), periods=3, freq="15min"):
        window = window_of.loc[(stuck, start)]
        assert "STUCK_SENSOR" in window["quality_flags"]
        assert flagged.loc[start, "confidence"] == window["sensor_completeness"] * (1 - penalty)
    clean_window = window_of.loc[(stuck, pd.Timestamp(HOUR))]
    assert clean_window["quality_mask"] == 0
    assert flagged.loc[pd.Timestamp(HOUR), "confidence"] == clean_window["sensor_completeness"]


def test_a_stuck_run_that_began_in_the_previous_hour_counts_from_its_start(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    h0, h1 = good_rows(60), good_rows(60, start_minute=60, value=20.0)
    h0.loc[40:, "ambient_temperature"] = 21.5  # 00:40-00:59, 19 minutes: not yet stuck
    h1.loc[:19, "ambient_temperature"] = 21.5  # continues to 01:19: 39 minutes in all
    pd.concat([h0, h1]).to_parquet(landing / "two_hours.parquet")
    tails0, tails1 = tmp_path / "tails0.parquet", tmp_path / "tails1.parquet"
    first, r0 = run_hour(landing, tails=(None, tails0))
    assert r0.flag_counts["STUCK_SENSOR"] == 0

    second, r1 = run_hour(
        landing, key="2026-01-01-01:00", start=HOUR + timedelta(hours=1), tails=(tails0, tails1)
    )
    stuck = sorted(m for m, f in flags_by_minute(second).items() if "STUCK_SENSOR" in f)
    assert stuck == list(range(0, 20))
    assert r1.sensor_flag_counts[("STUCK_SENSOR", "ambient_temperature")] == 20
    began = pd.read_parquet(tails0).set_index("sensor").loc["ambient_temperature", "run_start"]
    assert began == HOUR + timedelta(minutes=40)
    last = pd.read_parquet(tails1).set_index("sensor").loc["ambient_temperature", "run_start"]
    assert last == HOUR + timedelta(minutes=119)  # the value changed after 01:19

    alone, _ = run_hour(landing, key="2026-01-01-01:00", start=HOUR + timedelta(hours=1))
    assert not alone["quality_flags"].str.contains("STUCK_SENSOR").any()  # 20 minutes on its own
