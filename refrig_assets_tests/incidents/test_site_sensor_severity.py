"""Site events and inhibition, sensor-health tickets, severity by impact."""

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from support.incident_world import (
    CAUSES,
    alert,
    alerts,
    diagnoses,
    diagnosis,
    feature_window,
    registry,
)

from refrig_assets.incidents.build import build_incidents
from refrig_assets.incidents.policy import incident_policy

SITE = {"S1": ["D1", "D2", "D3", "D4", "D5"], "S2": ["E1", "E2", "E3", "E4", "E5"]}


@pytest.fixture
def policy():
    base = incident_policy()
    return replace(
        base,
        hysteresis_windows=2,
        reopen=timedelta(0),
        site_events=replace(
            base.site_events, min_site_devices=3, quorum_share=0.8, current_off_amps=0.5
        ),
        sensor_tickets=replace(base.sensor_tickets, persistence=timedelta(minutes=60)),
    )


def fleet(windows, change=None):
    """Feature windows of every device of SITE; ``change(device, i)`` returns overrides."""
    rows = []
    for devices in SITE.values():
        for d in devices:
            for i in windows:
                rows.append(feature_window(d, i, **((change and change(d, i)) or {})))
    return pd.DataFrame(rows)


def build(alert_rows=(), dx=(), **kwargs):
    return build_incidents(alerts(alert_rows), diagnoses(dx), causes=CAUSES, **kwargs)


def test_a_site_whose_compressors_all_stop_is_one_power_loss_incident(policy):
    off = fleet(range(4), lambda d, i: {"duty": 0.0, "current": 0.0} if d[0] == "D" else None)

    result = build(quality=off, devices=registry(SITE), policy=policy)

    site = result.incidents[result.incidents["scope"].eq("site")]
    assert len(site) == 1
    assert site.iloc[0][["site_id", "cause", "kind", "severity"]].tolist() == [
        "S1",
        "power_loss",
        "site",
        "CRITICAL",
    ]
    assert site.iloc[0]["device_id"] is None


def test_the_device_incidents_a_site_incident_explains_are_inhibited_kept_and_linked(
    policy,
):
    off = fleet(range(4), lambda d, i: {"duty": 0.0, "current": 0.0} if d[0] == "D" else None)
    rows = [alert("D1", 1), alert("D2", 2), alert("E1", 1, site="S2")]
    dx = [
        diagnosis("D1", 1, "total_cooling_loss"),
        diagnosis("D2", 2, "total_cooling_loss"),
    ]

    result = build(rows, dx, quality=off, devices=registry(SITE), policy=policy)

    inc = result.incidents
    site_id = inc.loc[inc["scope"].eq("site"), "incident_id"].item()
    devices = inc[inc["scope"].eq("device")].set_index("device_id")
    assert devices.loc[["D1", "D2"], "inhibited"].tolist() == [True, True]
    assert devices.loc[["D1", "D2"], "parent_incident_id"].tolist() == [
        site_id,
        site_id,
    ]
    # another site's device is not explained by it
    assert not devices.loc["E1", "inhibited"]
    assert set(result.evidence["alert_id"].dropna()) == {r["alert_id"] for r in rows}


def test_readings_stopping_from_a_whole_site_is_a_communications_loss(policy):
    silent = fleet(
        range(3),
        lambda d, i: {"readings": 0, "completeness": 0.0} if d[0] == "E" else None,
    )

    result = build(quality=silent, devices=registry(SITE), policy=policy)

    site = result.incidents[result.incidents["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S2", "communications_loss"]]


def test_a_few_devices_of_a_site_stopping_is_no_site_event(policy):
    some = fleet(
        range(4),
        lambda d, i: {"duty": 0.0, "current": 0.0} if d in ("D1", "D2") else None,
    )

    result = build(quality=some, devices=registry(SITE), policy=policy)

    assert not result.incidents["scope"].eq("site").any()


def idle_site(windows, draw):
    """Every S1 device idle (no run, stopped all window) with the compressor current at the
    idle draw ``draw(i)`` of its controller and fans; S2 running."""
    rows = fleet(
        windows,
        lambda d, i: {"duty": 0.0, "current": draw(i)} if d[0] == "D" else None,
    )
    rows["current_compressor_idle_max"] = [
        draw(i) if d[0] == "D" else 0.4
        for d, i in zip(rows["device_id"], windows_of(rows), strict=True)
    ]
    return rows


def windows_of(rows):
    starts = sorted(rows["window_start"].unique())
    return rows["window_start"].map({s: i for i, s in enumerate(starts)}).tolist()


def test_a_site_idling_together_with_its_fans_still_drawing_is_no_power_loss(policy):
    # Synchronised defrost or long off-cycles: compressors stopped, 0.4 A of fans and
    # controller still drawn (below current_off_amps, so current alone reads "no power").
    idle = idle_site(range(6), lambda i: 0.4)

    result = build(quality=idle, devices=registry(SITE), policy=policy)

    assert not result.incidents["scope"].eq("site").any()


def test_a_site_whose_idle_draw_falls_to_nothing_is_a_power_loss(policy):
    cut = idle_site(range(8), lambda i: 0.0 if i >= 5 else 0.4)

    result = build(quality=cut, devices=registry(SITE), policy=policy)

    site = result.incidents[result.incidents["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]
    first = sorted(cut["window_start"].unique())[5]
    assert site.iloc[0]["first_window_start"] == first


def test_an_idle_draw_no_clamp_tells_from_zero_leaves_the_current_rules_alone(policy):
    # A clamp on the compressor alone reads a few hundredths idle and 0 without supply: too
    # little to judge, so the stopped site is a power loss as the current rules say.
    off = idle_site(range(4), lambda i: 0.04)

    result = build(quality=off, devices=registry(SITE), policy=policy)

    site = result.incidents[result.incidents["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]


def test_a_heat_wave_across_the_fleet_is_context_not_an_incident(policy):
    hot = fleet(range(4), lambda d, i: {"evaporator": -12.0 + i, "duty": 0.95, "current": 12.0})

    result = build(quality=hot, devices=registry(SITE), policy=policy)

    assert result.incidents.empty


def test_small_sites_never_raise_a_site_incident(policy):
    small = {"S9": ["X1", "X2"]}
    rows = [feature_window(d, i, duty=0.0, current=0.0) for d in small["S9"] for i in range(4)]

    result = build(quality=pd.DataFrame(rows), devices=registry(small), policy=policy)

    assert result.incidents.empty


def test_a_stuck_sensor_persisting_for_the_ticket_time_is_a_low_sensor_ticket(policy):
    stuck = pd.DataFrame([feature_window("D1", i, flags="STUCK_SENSOR") for i in range(4)])

    result = build(quality=stuck, policy=policy)

    ticket = result.incidents.iloc[0]
    assert ticket[["kind", "severity", "cause", "detail"]].tolist() == [
        "sensor",
        "LOW",
        "sensor_fault",
        "STUCK_SENSOR",
    ]


def test_a_sensor_flag_shorter_than_the_ticket_time_raises_nothing_yet(policy):
    brief = pd.DataFrame([feature_window("D1", i, flags="SENSOR_DROPOUT") for i in range(3)])

    assert build(quality=brief, policy=policy).incidents.empty


def test_alerts_diagnosed_as_a_sensor_fault_are_a_sensor_ticket_never_a_refrigeration_fault(
    policy,
):
    dx = [diagnosis("D1", i, "sensor_fault") for i in range(2)]

    result = build([alert("D1", 0), alert("D1", 1)], dx, policy=policy)

    assert result.incidents[["kind", "severity"]].values.tolist() == [["sensor", "LOW"]]


def test_a_silent_device_is_never_reported_as_a_cooling_failure(policy):
    quiet = pd.DataFrame([feature_window("D1", i, readings=0, completeness=0.0) for i in range(2)])
    dx = [diagnosis("D1", i, "total_cooling_loss") for i in range(2)]

    result = build([alert("D1", 0), alert("D1", 1)], dx, quality=quiet, policy=policy)

    assert not result.incidents["kind"].isin(["refrigeration", "operational"]).any()
    assert set(result.incidents["severity"]) == {"LOW"}
    assert "total_cooling_loss" not in set(result.incidents["cause"])


def test_severity_comes_from_the_cause_class_not_from_saturated_scores(policy):
    rows = [alert(d, 0, score=1.0) for d in ("D1", "D2", "D3", "D4")]
    dx = [
        diagnosis("D1", 0, "total_cooling_loss"),
        diagnosis("D2", 0, "compressor_overload"),
        diagnosis("D3", 0, "condenser_fouling"),
        diagnosis("D4", 0, "unknown"),
    ]

    result = build(rows, dx, policy=policy)

    severity = result.incidents.set_index("device_id")["severity"].to_dict()
    assert severity == {
        "D1": "CRITICAL",
        "D2": "CRITICAL",
        "D3": "MEDIUM",
        "D4": "MEDIUM",
    }


def test_impact_raises_the_base_one_level_each_but_not_past_the_cap(policy):
    sev = replace(policy.severity, agreement_models=3, excursion_celsius=3.0, raise_cap="HIGH")
    policy = replace(policy, severity=sev)
    rows = [alert("D1", 0, models=3), alert("D1", 1, models=3)]
    warm = pd.DataFrame(
        [
            feature_window("D1", 0, evaporator=-18.0),
            feature_window("D1", 1, evaporator=-14.0),
        ]
    )
    dx = [diagnosis("D1", i, "condenser_fouling") for i in range(2)]

    result = build(rows, dx, quality=warm, policy=policy)

    incident = result.incidents.iloc[0]
    assert (incident["base_severity"], incident["severity"]) == ("MEDIUM", "HIGH")
    assert "models agree" in incident["severity_reasons"]


def test_a_large_evaporator_excursion_is_critical_whatever_the_cause(policy):
    warm = pd.DataFrame(
        [
            feature_window("D1", 0, evaporator=-18.0),
            feature_window("D1", 1, evaporator=-8.0),
        ]
    )

    result = build([alert("D1", 0), alert("D1", 1)], quality=warm, policy=policy)

    assert result.incidents.iloc[0]["severity"] == "CRITICAL"
    assert result.incidents.iloc[0]["evaporator_peak_c"] == -8.0


def test_a_power_loss_rule_firing_across_a_site_is_one_site_incident_that_inhibits_the_devices(
    policy,
):
    causes = replace(CAUSES, rules={**CAUSES.rules, "power_loss": "power_loss"})
    rows = [alert(d, 0, source="streaming", rule="power_loss") for d in SITE["S1"][:3]]
    rows.append(alert("E1", 0, source="streaming", rule="power_loss", site="S2"))  # alone

    result = build_incidents(alerts(rows), None, causes=causes, policy=policy)

    inc = result.incidents
    site = inc[inc["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]
    devices = inc[inc["scope"].eq("device")].set_index("device_id")
    assert devices.loc[["D1", "D2", "D3"], "inhibited"].all()
    assert not devices.loc["E1", "inhibited"]  # one device without power is its own incident


def test_a_device_fault_that_began_before_a_site_event_or_outlasts_it_is_not_explained_by_it(
    policy,
):
    # the site loses power in windows 4-7; D1 had been leaking since window 0, D3's fouling
    # shows during the cut and goes on for an hour after it, D2 only warms during the cut
    off = fleet(
        range(12),
        lambda d, i: {"duty": 0.0, "current": 0.0} if d[0] == "D" and 4 <= i < 8 else None,
    )
    leak = [(alert("D1", i), diagnosis("D1", i, "refrigerant_leak")) for i in range(10)]
    fouling = [(alert("D3", i), diagnosis("D3", i, "condenser_fouling")) for i in range(6, 12)]
    warming = [(alert("D2", 5), diagnosis("D2", 5, "total_cooling_loss"))]
    rows, dx = zip(*(leak + fouling + warming), strict=True)

    inc = build(rows, dx, quality=off, devices=registry(SITE), policy=policy).incidents

    devices = inc[inc["scope"].eq("device")].set_index("device_id")
    assert devices.loc["D1", ["cause", "inhibited"]].tolist() == ["refrigerant_leak", False]
    assert devices.loc["D3", ["cause", "inhibited"]].tolist() == ["condenser_fouling", False]
    assert devices.loc["D2", ["cause", "inhibited"]].tolist() == ["total_cooling_loss", True]
