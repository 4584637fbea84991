"""The feedback loop: false-positive marks become labels, repeated ones a per-device rule, and the
next alert run respects the rule. Real SQLite database; the last test runs the real
``device_alerts`` asset over Parquet score partitions."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from support.operator_world import (
    BACKENDS,
    T0,
    Clock,
    alert_frame,
    drop_all,
    fresh_store,
    operations,
    write_operations_file,
)

from refrig_assets.alerts.store import AlertStore
from refrig_assets.evaluation.backtest import backtest
from refrig_assets.operations.feedback import (
    ACTIVE,
    APPEND_ONLY_MESSAGE,
    PROPOSED,
    REVOKED,
    FeedbackLoop,
    RuleDecisionError,
    incident_labels,
    judge_on_operator_labels,
    operator_labels,
)
from refrig_assets.operations.suppression import SuppressionLog, apply_operator_suppression

DEVICE, OTHER = "dev-100", "dev-200"
LEAD = "vibration_compressor"


def fp_alerts(device=DEVICE, contributor=LEAD, n=3, start=T0, score=0.86, spacing_hours=5):
    """``n`` alerts of one device and lead contributor, far enough apart not to be repeats."""
    return alert_frame(
        [
            {
                "device_id": device,
                "site_id": "site-A",
                "window_start": start + timedelta(hours=spacing_hours * i),
                "severity": "MEDIUM",
                "max_score": score + 0.01 * i,
                "top_contributors": f"{contributor},current_compressor",
            }
            for i in range(n)
        ]
    )


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = fresh_store(request.param, tmp_path)
    yield s
    drop_all(s)
    s.close()


def loop_for(store, tmp_path, **feedback):
    return FeedbackLoop(store, clock=Clock(), settings=operations(tmp_path, feedback=feedback))


def mark_all(loop, frame, note="technician on site"):
    return [loop.mark_false_positive(a, "ana", note) for a in frame["alert_id"]]


def test_three_false_positives_on_one_device_and_contributor_propose_a_rule(store, tmp_path):
    alerts = fp_alerts()
    store.upsert(alerts)
    loop = loop_for(store, tmp_path)
    outcomes = mark_all(loop, alerts)
    assert [o["false_positives"] for o in outcomes[:2]] == [1, 2]
    assert [len(o["rules"]) for o in outcomes] == [0, 0, 1]
    rule = outcomes[2]["rules"][0]
    assert (rule["device_id"], rule["contributor"], rule["status"]) == (DEVICE, LEAD, PROPOSED)
    assert rule["kind"] == "raise_threshold"
    # Above the strongest score operators called false (0.88), by the configured margin.
    assert rule["min_score"] == pytest.approx(0.88 + 0.02)
    assert sorted(rule["evidence"].split(",")) == sorted(alerts["alert_id"])
    # Covers alerts after the last false positive, for rule_days.
    assert pd.Timestamp(rule["effective_from"]) == alerts["window_end"].max()
    assert pd.Timestamp(rule["expires_at"]) - pd.Timestamp(rule["effective_from"]) == timedelta(
        days=30
    )
    audit = loop.audit_log()
    assert audit["event"].tolist() == ["proposed"]
    assert audit["actor"].tolist() == ["feedback-loop"]


def test_fewer_marks_or_other_contributors_propose_nothing(store, tmp_path):
    two = fp_alerts(n=2)
    other_contributor = fp_alerts(contributor="duty_cycle", n=1, start=T0 + timedelta(days=1))
    other_device = fp_alerts(device=OTHER, n=1)
    store.upsert(pd.concat([two, other_contributor, other_device]))
    loop = loop_for(store, tmp_path)
    for frame in (two, other_contributor, other_device):
        mark_all(loop, frame)
    assert loop.rules().empty
    assert loop.evaluate() == []


def test_false_positives_outside_the_lookback_do_not_add_up(store, tmp_path):
    alerts = fp_alerts(spacing_hours=24 * 20)  # 0, 20 and 40 days apart
    store.upsert(alerts)
    loop = loop_for(store, tmp_path, lookback_days=30)
    mark_all(loop, alerts)
    assert loop.rules().empty


def test_evaluate_is_idempotent_and_sees_marks_made_outside_the_console(store, tmp_path):
    alerts = fp_alerts()
    store.upsert(alerts)
    for alert_id in alerts["alert_id"]:  # as `refrig alerts false-positive` does
        store.mark_false_positive(alert_id, "bo", "defrost")
    loop = loop_for(store, tmp_path)
    assert len(loop.evaluate()) == 1
    assert loop.evaluate() == []
    assert len(loop.rules()) == 1


def later_batch(store, frame_rows):
    """A later partition's alerts, as device_alerts generates them, through operator suppression."""
    return alert_frame(frame_rows, run_id="run-2")


def test_an_applied_rule_suppresses_the_next_runs_alerts_with_a_reason(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path, auto_apply=True)
    mark_all(loop, fp_alerts())
    (rule,) = loop.rules().to_dict("records")
    assert rule["status"] == ACTIVE
    assert loop.audit_log()["event"].tolist() == ["proposed", "applied"]

    later = T0 + timedelta(days=2)
    batch = alert_frame(
        [
            # same device and contributor, score within what operators called false
            {"device_id": DEVICE, "site_id": "site-A", "window_start": later,
             "severity": "MEDIUM", "max_score": 0.87, "top_contributors": f"{LEAD},duty_cycle"},
            # same device, same contributor, far stronger: still raised
            {"device_id": DEVICE, "site_id": "site-A", "window_start": later + timedelta(hours=5),
             "severity": "CRITICAL", "max_score": 0.99, "top_contributors": LEAD},
            # same device, another contributor: raised
            {"device_id": DEVICE, "site_id": "site-A", "window_start": later + timedelta(hours=10),
             "severity": "MEDIUM", "max_score": 0.85, "top_contributors": "pressure_low_side"},
            # another device, same contributor: raised
            {"device_id": OTHER, "site_id": "site-A", "window_start": later,
             "severity": "MEDIUM", "max_score": 0.86, "top_contributors": LEAD},
        ]
    )  # fmt: skip
    out = apply_operator_suppression(batch, store, settings=loop.settings)
    assert len(out) == len(batch)  # kept, not lost
    assert out["suppressed"].tolist() == [True, False, False, False]
    reason = SuppressionLog(store).reason(batch["alert_id"].iat[0])
    assert reason["kind"] == "feedback_rule" and reason["ref"] == rule["rule_id"]
    assert "3 false positives" in reason["reason"]


def test_a_proposed_rule_waits_for_approval_and_a_revoked_one_stops(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path, auto_apply=False)
    mark_all(loop, fp_alerts())
    rule_id = loop.rules()["rule_id"].iat[0]
    batch = alert_frame(
        [{"device_id": DEVICE, "site_id": "site-A", "window_start": T0 + timedelta(days=2),
          "severity": "MEDIUM", "max_score": 0.86, "top_contributors": LEAD}]
    )  # fmt: skip

    def suppressed() -> bool:
        return bool(
            apply_operator_suppression(batch, store, settings=loop.settings)["suppressed"].iat[0]
        )

    assert not suppressed()
    loop.decide(rule_id, ACTIVE, "lead", "checked the three events")
    assert suppressed()
    loop.decide(rule_id, REVOKED, "lead", "door gasket replaced")
    assert not suppressed()
    with pytest.raises(RuleDecisionError, match="only a PROPOSED rule can become ACTIVE"):
        loop.decide(rule_id, ACTIVE, "lead")
    assert loop.audit_log()["event"].tolist() == ["proposed", "applied", "revoked"]


def test_suppress_action_silences_every_later_alert_of_the_pair(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path, auto_apply=True, action="suppress")
    mark_all(loop, fp_alerts())
    batch = alert_frame(
        [{"device_id": DEVICE, "site_id": "site-A", "window_start": T0 + timedelta(days=2),
          "severity": "CRITICAL", "max_score": 1.0, "top_contributors": LEAD}]
    )  # fmt: skip
    assert apply_operator_suppression(batch, store, settings=loop.settings)["suppressed"].all()


def test_rules_cover_only_their_period(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path, auto_apply=True, rule_days=1)
    mark_all(loop, fp_alerts())
    rows = [
        {"device_id": DEVICE, "site_id": "site-A", "window_start": start, "severity": "MEDIUM",
         "max_score": 0.86, "top_contributors": LEAD}
        for start in (T0 - timedelta(hours=6), T0 + timedelta(hours=12), T0 + timedelta(days=3))
    ]  # fmt: skip
    out = apply_operator_suppression(alert_frame(rows), store, settings=loop.settings)
    # before the false positives / inside the rule's day after them / after it expired
    assert out["suppressed"].tolist() == [False, True, False]


def test_more_false_positives_after_a_rule_propose_a_stronger_one(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path, auto_apply=True)
    mark_all(loop, fp_alerts())
    stronger = fp_alerts(start=T0 + timedelta(days=3), score=0.95)
    store.upsert(stronger)
    mark_all(loop, stronger)
    rules = loop.rules().set_index("status")
    assert rules.loc[ACTIVE, "min_score"] == pytest.approx(0.97 + 0.02)
    assert rules.loc["SUPERSEDED", "min_score"] == pytest.approx(0.90)


def test_the_audit_trail_is_append_only(store, tmp_path):
    store.upsert(fp_alerts())
    loop = loop_for(store, tmp_path)
    mark_all(loop, fp_alerts())
    with store.engine.begin() as conn:
        with pytest.raises(sa.exc.DatabaseError, match=APPEND_ONLY_MESSAGE):
            conn.execute(sa.text("UPDATE feedback_audit SET actor = 'mallory'"))
    with store.engine.begin() as conn:
        with pytest.raises(sa.exc.DatabaseError, match=APPEND_ONLY_MESSAGE):
            conn.execute(sa.text("DELETE FROM feedback_audit"))
    assert loop.audit_log()["actor"].tolist() == ["feedback-loop"]


def test_operator_labels_feed_the_backtest(store, tmp_path):
    confirmed = fp_alerts(device="dev-300", n=1)
    false = fp_alerts(device="dev-400", n=2)
    open_ = fp_alerts(device="dev-500", n=1)
    store.upsert(pd.concat([confirmed, false, open_]))
    store.resolve(confirmed["alert_id"].iat[0], "ana", "bearing replaced")
    for alert_id in false["alert_id"]:
        store.mark_false_positive(alert_id, "bo", "cleaning")
    labels = operator_labels(store.url)
    assert sorted(labels["label"]) == ["confirmed_incident", "false_positive", "false_positive"]
    assert set(labels["labelled_by"]) == {"ana", "bo"}
    assert labels.set_index("label").loc["confirmed_incident", "note"] == "bearing replaced"

    incidents = incident_labels(labels)
    assert incidents[["device_id", "fault_type"]].values.tolist() == [
        ["dev-300", "operator_confirmed"]
    ]
    # A candidate that raises the confirmed incident and one of the two false positives.
    candidate = pd.concat([confirmed, false.iloc[:1]])
    per_type, totals = backtest(candidate, incidents, device_hours=24.0)
    assert totals["recall"] == 1.0 and per_type["fault_type"].tolist() == ["operator_confirmed"]
    judged = judge_on_operator_labels(candidate, labels)
    assert judged["confirmed_recall"] == 1.0
    assert judged["false_positives"] == 2 and judged["false_positive_repeat_rate"] == 0.5


def scores_frame(rows):
    """model_scores rows of the statistical baseline (hourly)."""
    out = pd.DataFrame(
        [
            {
                "device_id": device,
                "window_start": start,
                "window_end": start + timedelta(minutes=15),
                "model_id": "statistical_baseline",
                "model_version": "4",
                "granularity": "device",
                "anomaly_score": score,
                "anomaly_flag": score >= 0.8,
                "top_contributors": f"{LEAD},current_compressor",
                "contributor_detail": f"{LEAD}_running_mean 5.0σ above this device's baseline",
                "confidence": 1.0,
                "scored_at": start + timedelta(minutes=15),
            }
            for device, start, score in rows
        ]
    )
    for column in ("window_start", "window_end", "scored_at"):
        out[column] = pd.to_datetime(out[column], utc=True)
    return out


def test_the_next_device_alerts_run_respects_an_applied_rule(refrig_home, tmp_path, monkeypatch):
    """Three false positives in one hour → a rule (auto-applied) → the real device_alerts asset
    suppresses that device's next alert, with the reason, and still raises the neighbour's."""
    from refrig_assets.core.settings import get_settings
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.defs.alerts.assets import device_alerts
    from refrig_assets.defs.shared.resources import RefrigResource

    monkeypatch.setenv(
        "REFRIG_OPERATIONS_FILE",
        str(write_operations_file(tmp_path, feedback={"auto_apply": True})),
    )
    settings = get_settings()
    data = ParquetStore(settings.data_dir)
    data.write(
        "device_registry",
        None,
        pd.DataFrame(
            {"device_id": [DEVICE, OTHER], "site_id": ["site-A", "site-A"],
             "cohort": ["display_case", "display_case"]}
        ),
    )  # fmt: skip
    first, later = (
        pd.Timestamp("2026-01-05T00:00", tz="UTC"),
        pd.Timestamp("2026-01-05T06:00", tz="UTC"),
    )
    quarter = timedelta(minutes=15)
    data.write(
        "statistical_baseline_scores",
        "2026-01-05-00:00",
        scores_frame(
            [(DEVICE, first + i * quarter, 0.9) for i in range(3)] + [(OTHER, first, 0.1)]
        ),
    )
    data.write(
        "statistical_baseline_scores",
        "2026-01-05-06:00",
        scores_frame([(DEVICE, later, 0.9), (OTHER, later, 0.9)]),
    )
    resources = {"refrig": RefrigResource()}
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [device_alerts],
            partition_key="2026-01-05-00:00",
            resources=resources,
            instance=instance,
        ).success
        store = AlertStore(settings.alerts_db_url)
        first_alerts = store.list(include_suppressed=True)
        assert len(first_alerts) == 3  # one alert and two repeats within the dedup window
        loop = FeedbackLoop(store)
        for alert_id in first_alerts["alert_id"]:
            loop.mark_false_positive(alert_id, "ana", "compressor service test runs")
        assert loop.rules()["status"].tolist() == [ACTIVE]

        assert dg.materialize(
            [device_alerts],
            partition_key="2026-01-05-06:00",
            resources=resources,
            instance=instance,
        ).success
    parquet = data.read("device_alerts", "2026-01-05-06:00").set_index("device_id")
    assert bool(parquet.loc[DEVICE, "suppressed"]) and not bool(parquet.loc[OTHER, "suppressed"])
    stored = store.list(include_suppressed=True).set_index("alert_id")
    suppressed_id = parquet.loc[DEVICE, "alert_id"]
    assert bool(stored.loc[suppressed_id, "suppressed"])
    reason = SuppressionLog(store).reason(suppressed_id)
    assert reason["kind"] == "feedback_rule" and "vibration_compressor" in reason["reason"]
    visible = store.list(status="OPEN")
    assert visible["device_id"].tolist() == [OTHER]
    store.close()
