"""Three-layer health: metrics kept per layer and tagged by model version; each alert rule fires
just past its configured threshold and not at it."""

import pandas as pd
import pytest

from refrig_assets.core.storage import ParquetStore
from refrig_assets.monitoring import pipeline_health as health
from refrig_assets.monitoring.settings import load_monitoring_settings

RULES = load_monitoring_settings().health


def steps(step: str, durations=(), statuses=None, model=None) -> pd.DataFrame:
    """Executions of one step, in time order."""
    statuses = statuses or [health.SUCCESS] * len(durations)
    return pd.DataFrame(
        [
            {
                "step": step,
                "run_id": f"r{i}",
                "partition": f"2026-01-01-{i:02d}:00",
                "status": status,
                "started_at": 1_000.0 + 60 * i,
                "duration_s": d,
                "attempts": 1,
                "model_id": model,
                "model_version": "4" if model else None,
            }
            for i, (d, status) in enumerate(zip(durations, statuses, strict=True))
        ],
        columns=health.STEP_COLUMNS,
    )


def latency(recent: list[float], baseline: float = 2.0) -> list[health.HealthAlert]:
    history = [baseline] * RULES.latency_min_baseline_runs + recent
    return health.sustained_latency_alerts(steps("m_scores", history, model="m"), RULES)


def test_sustained_latency_increase_fires_just_past_its_ratio():
    n, limit = RULES.latency_sustained_runs, RULES.latency_ratio * 2.0
    assert latency([limit] * n) == []  # at the threshold: no alert
    assert latency([limit * 1.01] * (n - 1) + [limit * 0.99]) == []  # one fast run: not sustained
    (alert,) = latency([limit * 1.01] * n)
    assert alert.rule == "sustained_latency_increase" and alert.layer == "infrastructure"
    assert (alert.subject, alert.model_id, alert.model_version) == ("m_scores", "m", "4")
    assert f"last {n} runs" in alert.message and "median 2.0 s" in alert.message


def test_latency_of_sub_second_steps_is_not_judged():
    tiny = RULES.latency_min_baseline_seconds / 2
    assert latency([tiny * 100] * RULES.latency_sustained_runs, baseline=tiny) == []


def test_elevated_error_rate_fires_just_past_its_rate():
    runs = max(RULES.error_min_runs, round(2 / RULES.max_error_rate))  # 200 runs at 1 %
    at_limit = round(runs * RULES.max_error_rate)

    def failures(k):
        statuses = [health.FAILURE] * k + [health.SUCCESS] * (runs - k)
        return health.error_rate_alerts(steps("clean_readings", [1.0] * runs, statuses), RULES)

    assert failures(at_limit) == []
    (alert,) = failures(at_limit + 1)
    assert alert.rule == "elevated_error_rate" and alert.subject == "clean_readings"
    assert f"{at_limit + 1} of {runs} runs failed" in alert.message


def hourly(values: list[float]) -> pd.Series:
    index = pd.date_range("2026-01-01", periods=len(values), freq="h", tz="UTC")
    return pd.Series(values, index=index)


@pytest.mark.parametrize("rule_name", ["alert_drop", "score_drop"])
def test_sudden_drop_fires_just_past_its_share(rule_name):
    rule = getattr(RULES, rule_name)
    base = max(10 * rule.min_baseline, 0.5)
    floor = (1 - rule.drop) * base

    def drop(recent_value):
        series = hourly([base] * rule.baseline_hours + [recent_value] * rule.recent_hours)
        return health.sudden_drop_alert(
            series, rule, rule_name=rule_name, subject="m@4", what="x", model_id="m"
        )

    assert drop(floor) is None
    alert = drop(floor * 0.99)
    assert alert is not None and alert.rule == rule_name and alert.model_id == "m"
    assert "sudden drop in x" in alert.message
    assert alert.value == pytest.approx(1 - floor * 0.99 / base)


def test_drops_from_an_idle_baseline_or_without_history_are_not_alerts():
    rule = RULES.alert_drop
    idle = hourly([rule.min_baseline * 0.9] * rule.baseline_hours + [0.0] * rule.recent_hours)
    short = hourly([100.0] * (rule.recent_hours - 1) + [0.0] * rule.recent_hours)
    for series in (idle, short):
        assert health.sudden_drop_alert(series, rule, rule_name="a", subject="s", what="w") is None


def score_frame(model_id, version, scores, flags) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": model_id,
            "model_version": version,
            "window_start": pd.Timestamp("2026-01-01", tz="UTC"),
            "anomaly_score": scores,
            "anomaly_flag": flags,
        }
    )


def alert_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "severity": ["CRITICAL", "HIGH", "HIGH", "LOW"],
            "suppressed": [False, False, True, False],
            "model_versions": ["m@4,n@1", "m@4", "m@4", "n@1"],
            "source": ["batch", "streaming", "streaming", "streaming"],
            "alert_type": [
                "ANOMALY_DETECTED",
                "ANOMALY_SUSTAINED",
                "ANOMALY_SUSTAINED",
                "ANOMALY_RESOLVED",
            ],
        }
    )


def test_model_layer_is_tagged_by_model_version_and_counts_empty_predictions():
    scores = pd.concat(
        [
            score_frame("m", "4", [0.1, 0.2, 0.9], [False, False, True]),
            score_frame("n", "1", [0.05] * 4, [False] * 4),
        ]
    )
    rows = pd.DataFrame(health.model_metrics(scores, feature_windows=5, alerts=alert_frame()))
    m = rows[rows["subject"] == "m@4"].set_index("metric")["value"]
    assert set(rows["layer"]) == {"model"}
    assert set(zip(rows["model_id"], rows["model_version"], strict=True)) == {
        ("m", "4"),
        ("n", "1"),
    }
    assert m["windows_scored"] == 3 and m["flag_rate"] == pytest.approx(1 / 3)
    assert m["empty_prediction_rate"] == pytest.approx(0.4)  # 2 of 5 windows got no score
    assert (m["alerts_critical"], m["alerts_high"], m["alerts_low"]) == (1, 1, 0)  # active only

    alerts = health.empty_prediction_alerts(rows.to_dict("records"), RULES)
    over = 0.4 > RULES.max_empty_prediction_rate
    assert [a.subject for a in alerts] == (["m@4"] if over else [])


def test_a_day_whose_alerts_were_all_suppressed_counts_zero_alerts_per_model():
    scores = score_frame("m", "4", [0.1, 0.9], [False, True])
    suppressed = alert_frame().assign(suppressed=True)
    rows = pd.DataFrame(health.model_metrics(scores, feature_windows=2, alerts=suppressed))
    m = rows.set_index("metric")["value"]
    assert (m["alerts_critical"], m["alerts_high"], m["alerts_low"]) == (0, 0, 0)


def test_empty_predictions_fire_just_past_their_rate():
    rate = RULES.max_empty_prediction_rate
    rows = health.metric_rows("model", "m@4", {"empty_prediction_rate": rate}, "m", "4")
    assert health.empty_prediction_alerts(rows, RULES) == []
    rows = health.metric_rows("model", "m@4", {"empty_prediction_rate": rate + 0.001}, "m", "4")
    (alert,) = health.empty_prediction_alerts(rows, RULES)
    assert alert.model_id == "m" and alert.model_version == "4" and "got no score" in alert.message


def test_streaming_vs_batch_agreement_is_the_share_of_confirmed_streaming_alerts():
    assert health.streaming_batch_agreement(alert_frame()) == pytest.approx(2 / 3)
    assert health.streaming_batch_agreement(alert_frame().iloc[:1]) is None


def test_stale_data_fires_past_the_contract_sla():
    as_of = pd.Timestamp("2026-01-02", tz="UTC")
    sla = {"fresh": 90, "edge": 90, "late": 90, "never": 90}
    ends = {
        "fresh": as_of - pd.Timedelta(minutes=10),
        "edge": as_of - pd.Timedelta(minutes=90),
        "late": as_of - pd.Timedelta(minutes=91),
        "never": None,
    }
    table = health.freshness_table(ends, {}, as_of, sla)
    alerts = health.stale_data_alerts(table, as_of)
    assert [a.subject for a in alerts] == ["late", "never"]
    assert "SLA 90 min" in alerts[0].message and "has no partition" in alerts[1].message


def test_infrastructure_layer_summarises_each_step():
    frame = steps("a", [1.0, 3.0, 2.0], [health.SUCCESS, health.FAILURE, health.SUCCESS])
    frame.loc[2, "attempts"] = 3
    rows = pd.DataFrame(health.infrastructure_metrics(frame)).set_index("metric")["value"]
    assert rows["executions"] == 3 and rows["failures"] == 1
    assert rows["error_rate"] == pytest.approx(1 / 3) and rows["retries"] == 2
    assert rows["duration_p50_s"] == 1.5 and rows["duration_last_s"] == 2.0


def test_data_layer_reads_flag_rates_from_the_quality_mask(tmp_path):
    store = ParquetStore(tmp_path)
    clean = pd.DataFrame({"quality_mask": [0, 1, 3, 2]})  # bit 1: A, bit 2: B
    path = store.write("clean_readings", "2026-01-01-00:00", clean)
    rates = health.quality_flag_rates([path, tmp_path / "missing.parquet"], {"A": 1, "B": 2})
    assert rates == {"A": 0.5, "B": 0.5}


def test_alert_counts_per_partition_count_empty_hours_as_zero(tmp_path):
    store = ParquetStore(tmp_path)
    hours = pd.date_range("2026-01-01", periods=3, freq="h", tz="UTC")
    frames = [[False, True, False], [], [True]]
    paths = {}
    for hour, suppressed in zip(hours, frames, strict=True):
        key = hour.strftime("%Y-%m-%d-%H:00")
        paths[hour] = store.write(
            "device_alerts", key, pd.DataFrame({"suppressed": pd.Series(suppressed, dtype=bool)})
        )
    assert health.active_alerts_per_partition(paths).tolist() == [2.0, 0.0, 0.0]


def test_a_model_of_hourly_profiles_is_expected_to_score_one_row_per_device_hour(tmp_path):
    """Four 15-minute windows per device-hour are one hourly profile: a model that scores
    profiles has no empty predictions for scoring a quarter as many rows as there are windows."""
    from refrig_assets.monitoring.pipeline_health import expected_rows

    starts = pd.date_range("2026-01-01 00:00", periods=8, freq="15min", tz="UTC")
    windows = pd.DataFrame({"device_id": ["a"] * 8 + ["b"] * 8, "window_start": list(starts) * 2})
    path = tmp_path / "2026-01-01T00.parquet"
    windows.to_parquet(path)

    assert expected_rows([path], row_minutes=60) == 4  # 2 devices x 2 hours
    assert expected_rows([path], row_minutes=15) == 16
    assert expected_rows([path, tmp_path / "missing.parquet"], row_minutes=60) == 4
