"""Site-wide events as an operator lives with them: one incident per site event, of a severity
that says what is at stake, and the devices' own faults meanwhile still in sight."""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from support.incident_world import CAUSES, alert, diagnosis, registry

from refrig_assets.incidents.policy import incident_policy
from refrig_assets_tests.incidents.test_site_sensor_severity import SITE, build, fleet


@pytest.fixture
def policy():
    base = incident_policy()
    return replace(base, hysteresis_windows=2, reopen=timedelta(minutes=120))


def test_a_site_gateway_outage_is_one_low_ticket_of_lost_data_never_paged(policy):
    # Every device of S2 silent for 3 hours: long enough for every raise of a fault's severity.
    silent = fleet(
        range(16),
        lambda d, i: {"readings": 0, "completeness": 0.0} if d[0] == "E" and i >= 2 else None,
    )

    inc = build(quality=silent, devices=registry(SITE), policy=policy).incidents

    seen = inc[~inc["inhibited"]]
    assert seen[["scope", "site_id", "cause"]].values.tolist() == [
        ["site", "S2", "communications_loss"]
    ]
    assert seen["severity"].tolist() == [policy.severity.sensor]
    assert policy.severity.sensor not in policy.notify_severities
    # each device's own communications ticket is explained by the site's
    assert set(inc.loc[inc["inhibited"], "device_id"]) == set(SITE["S2"])


def test_a_defrost_under_an_incident_is_no_evaporator_excursion(policy):
    # A heat wave's long compressor runs flagged for an hour; a defrost (coil heated to +10 °C)
    # falls in it. The heater warming the coil says nothing of the cabinet.
    rows = [alert("D1", i, models=1) for i in range(4)]
    dx = [diagnosis("D1", i, "refrigerant_leak") for i in range(4)]
    quality = fleet(
        range(4), lambda d, i: {"evaporator": 10.0} if (d, i) == ("D1", 2) else None
    ).assign(defrost_minutes=0.0)
    heated = quality["device_id"].eq("D1") & quality["window_start"].eq(
        quality["window_start"].sort_values().unique()[2]
    )
    quality.loc[heated, "defrost_minutes"] = 15.0

    inc = build(rows, dx, quality=quality, devices=registry(SITE), policy=policy).incidents

    (row,) = inc[inc["device_id"].eq("D1")].itertuples()
    assert row.severity == CAUSES.severity("refrigerant_leak")
    assert "evaporator" not in row.severity_reasons
    # the same window without its defrost is the excursion it looks like
    cold = build(
        rows, dx, quality=quality.assign(defrost_minutes=0.0), devices=registry(SITE), policy=policy
    ).incidents
    assert cold.loc[cold["device_id"].eq("D1"), "severity"].tolist() == ["CRITICAL"]


def test_a_power_cut_shorter_than_two_windows_and_across_them_is_a_site_power_loss(policy):
    # A 20-minute cut from the middle of window 3 to the middle of window 4: each window ran
    # part of the time, none was off throughout; while idle, no device drew its fans' current.
    def cut(d, i):
        return {"duty": 0.4, "current": 2.0} if d[0] == "D" and i in (3, 4) else None

    quality = fleet(range(8), cut)
    lost = quality["device_id"].str.startswith("D") & quality["window_start"].isin(
        sorted(quality["window_start"].unique())[3:5]
    )
    quality["current_compressor_idle_max"] = np.where(lost, 0.0, 0.4)
    quality["compressor_idle_longest_minutes"] = 8.0

    inc = build(quality=quality, devices=registry(SITE), policy=policy).incidents

    site = inc[inc["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]
    starts = sorted(quality["window_start"].unique())
    assert site.iloc[0]["first_window_start"] == starts[3]
    # the same windows with the fans drawing while idle: thermostat stops, no cut
    calm = quality.assign(current_compressor_idle_max=0.4)
    assert build(quality=calm, devices=registry(SITE), policy=policy).incidents.empty


def test_a_site_quorum_counts_the_devices_that_report_not_those_gone_for_days(policy):
    # Two of S1's five registered devices have sent nothing for days; the three left all stop
    # (3 of 5 registered is under the quorum, 3 of 3 reporting is all of them).
    def off(d, i):
        return {"duty": 0.0, "current": 0.0} if d in ("D1", "D2", "D3") and i >= 2 else None

    quality = fleet(range(6), off)
    quality = quality[~quality["device_id"].isin(["D4", "D5"])]

    inc = build(quality=quality, devices=registry(SITE), policy=policy).incidents

    site = inc[inc["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]
    # with the two reporting and running, three stopped devices are no site event
    reported = fleet(range(6), off)
    assert (
        not build(quality=reported, devices=registry(SITE), policy=policy)
        .incidents["scope"]
        .eq("site")
        .any()
    )


def test_a_site_power_loss_begins_with_the_window_its_cut_began_in(policy):
    # The cut begins inside window 1 (the compressors ran before it, then idled without
    # supply) and holds through window 5: most of the windows seen draw nothing, which says
    # nothing of what the devices draw when they have supply.
    def cut(d, i):
        if d[0] != "D":
            return None
        return {1: {"duty": 0.4, "current": 2.0}}.get(
            i, {"duty": 0.0, "current": 0.0} if 2 <= i <= 5 else None
        )

    quality = fleet(range(8), cut)
    starts = sorted(quality["window_start"].unique())
    index = quality["window_start"].map({s: i for i, s in enumerate(starts)})
    without = quality["device_id"].str.startswith("D") & index.between(1, 5)
    quality["current_compressor_idle_max"] = np.where(without, 0.0, 0.4)

    inc = build(quality=quality, devices=registry(SITE), policy=policy).incidents

    site = inc[inc["scope"].eq("site")]
    assert site[["site_id", "cause"]].values.tolist() == [["S1", "power_loss"]]
    assert site.iloc[0]["first_window_start"] == starts[1]


def test_a_supply_blip_of_a_minute_or_two_at_one_minute_windows_is_no_site_event(policy):
    # 1-minute windows (a 1 s fleet): every S1 device idles without its fans' draw for two of
    # them; a stop shorter than min_off_minutes, and no window long enough to say more.
    def blip(d, i):
        return {"duty": 0.0, "current": 0.0} if d[0] == "D" and i in (3, 4) else None

    quality = fleet(range(8), blip)
    quality["window_end"] = quality["window_start"] + pd.Timedelta(minutes=1)
    starts = sorted(quality["window_start"].unique())
    index = quality["window_start"].map({s: i for i, s in enumerate(starts)})
    cut = quality["device_id"].str.startswith("D") & index.isin([3, 4])
    quality["current_compressor_idle_max"] = np.where(cut, 0.0, 0.4)
    quality["compressor_idle_longest_minutes"] = np.where(cut, index.sub(2).clip(0), 0.0)

    inc = build(quality=quality, devices=registry(SITE), policy=policy).incidents

    assert not inc["scope"].eq("site").any()
