"""Probable causes: every signature of config/causes.yaml fires just past its edge and not just
before it, against baselines built from a device's own history; missing sensors skip the
signatures that need them; nothing matched is "unknown", never a guess."""

import json

import numpy as np
import pandas as pd
import pytest
from support.cause_world import COHORT, healthy_window, history

from refrig_assets.core.config import ConfigError
from refrig_assets.incidents.baselines import build_baselines, lookup
from refrig_assets.incidents.causes import OUTPUT_COLUMNS, cause_for_streaming_rule, diagnose
from refrig_assets.incidents.signatures import Condition, load_signatures
from refrig_assets.quality.rules import quality_flag_names

TABLE = load_signatures()
BASELINES = build_baselines(history(), TABLE)


def edge_value(cond: Condition, past: bool) -> tuple[str, float]:
    """The value of ``cond``'s feature just past (or just short of) its threshold."""
    eps = 1e-3
    step = eps if past else -eps
    sign = 1.0 if cond.direction == "up" else -1.0
    if cond.reference == "limit":
        return cond.feature, float(cond.limit_for(COHORT)) + sign * step
    dev = np.array(["dev-1"], dtype=object)
    center, scale, _, _ = lookup(
        BASELINES, dev, np.array([COHORT], dtype=object), cond.baseline_feature, own=True
    )
    if cond.sigma is not None:
        return cond.feature, float(center[0] + sign * (cond.sigma + step) * scale[0])
    return cond.feature, float(cond.ratio * center[0] + sign * step * abs(center[0]))


def window_for(name: str, past: bool = True, everything: bool = True, fewer: int = 0) -> dict:
    """A window where signature ``name``'s required conditions sit just past (or, with
    ``past=False``, the first required one just short of) their edge, and enough others hold."""
    sig = TABLE.get(name)
    values: dict = {}
    optional = [c for c in sig.conditions if not c.required]
    needed = sig.min_conditions - sum(c.required for c in sig.conditions)
    # Optional conditions first: a required one on the same feature sets the final value.
    chosen = optional[: len(optional) if everything else max(needed - fewer, 0)]
    chosen += [c for c in sig.conditions if c.required]
    first_required = True
    for cond in chosen:
        member = cond.any_of[0] if cond.any_of else cond
        if member.reference == "flags":
            bits = sum(1 << quality_flag_names().index(f) for f in member.flags[:1])
            values["quality_mask"] = bits if (past or not first_required) else 0
            values["quality_flags"] = member.flags[0] if (past or not first_required) else ""
        else:
            beyond = past or not (cond.required and first_required)
            feature, value = edge_value(member, beyond)
            values[feature] = value
        if cond.required:
            first_required = False
    return healthy_window(**values)


def causes(*rows, baselines=BASELINES):
    return diagnose(pd.DataFrame(list(rows)), baselines, TABLE)


def test_the_table_names_every_cause_operators_need():
    names = {s.name for s in TABLE}
    assert {
        "refrigerant_leak",
        "condenser_fouling",
        "evaporator_airflow",
        "short_cycling",
        "compressor_overload",
        "mechanical_wear",
        "total_cooling_loss",
        "defrost_failure",
        "door_ajar",
        "sensor_fault",
        "power_loss",
        "communications_loss",
    } <= names


def test_a_healthy_window_is_unknown_with_no_evidence():
    out = causes(healthy_window())
    assert list(out.columns) == OUTPUT_COLUMNS
    row = out.iloc[0]
    assert row["cause"] == "unknown"
    assert row["confidence"] == 0.0
    assert json.loads(row["evidence"]) == []
    assert not row["standalone"]


@pytest.mark.parametrize("name", [s.name for s in TABLE])
def test_each_signature_fires_just_past_its_edge(name):
    row = causes(window_for(name, past=True)).iloc[0]
    sig = TABLE.get(name)
    assert row["cause"] == sig.cause
    assert row["cause_kind"] == sig.kind
    assert row["standalone"] == sig.standalone
    assert 0.0 < row["confidence"] <= 1.0
    evidence = json.loads(row["evidence"])
    assert evidence and all("feature" in e and "held" in e for e in evidence)


@pytest.mark.parametrize("name", [s.name for s in TABLE])
def test_each_signature_stays_silent_just_short_of_its_edge(name):
    row = causes(window_for(name, past=False)).iloc[0]
    assert row["cause"] != TABLE.get(name).cause


@pytest.mark.parametrize(
    "name",
    [
        s.name
        for s in TABLE
        if s.min_conditions > sum(c.required for c in s.conditions)
        # (optional conditions on a feature of a required one cannot be left out)
        and not {c.feature for c in s.conditions if not c.required}
        & {f for c in s.conditions if c.required for f in c.features}
    ],
)
def test_a_signature_needs_its_minimum_number_of_conditions(name):
    cause = TABLE.get(name).cause
    assert causes(window_for(name, everything=False)).iloc[0]["cause"] == cause
    assert causes(window_for(name, everything=False, fewer=1)).iloc[0]["cause"] != cause


def test_evidence_names_value_unit_baseline_direction_and_sigma():
    row = causes(window_for("refrigerant_leak")).iloc[0]
    evidence = json.loads(row["evidence"])
    low = next(e for e in evidence if e.get("threshold_sigma") and "low_side" in e["feature"])
    assert low["feature"] == "pressure_low_side_running_mean"
    assert low["unit"] == "kPa"
    assert low["direction"] == "down"
    assert low["reference"] == "device"
    assert low["baseline"] == pytest.approx(270.0)
    assert low["sigma"] == pytest.approx(-5.0, abs=0.01)
    assert low["held"] is True


def test_a_new_device_is_judged_against_its_cohort_baseline():
    row = causes(window_for("refrigerant_leak") | {"device_id": "dev-new"}).iloc[0]
    assert row["cause"] == "refrigerant_leak"
    low = next(e for e in json.loads(row["evidence"]) if e["feature"].startswith("pressure_low"))
    assert low["reference"] == "cohort"


def test_door_ajar_is_high_when_the_evaporator_warms_and_medium_otherwise():
    still = causes(healthy_window(door_open_longest_minutes=45.0)).iloc[0]
    warming = causes(
        healthy_window(door_open_longest_minutes=45.0, temperature_evaporator_mean=0.0)
    ).iloc[0]
    assert (still["cause"], still["base_severity"]) == ("door_ajar", "MEDIUM")
    assert (warming["cause"], warming["base_severity"]) == ("door_ajar", "HIGH")


def test_the_door_limit_is_per_cohort():
    walk_in = healthy_window(door_open_longest_minutes=25.0, cohort="walk_in_cooler")
    reach_in = healthy_window(door_open_longest_minutes=25.0)
    out = causes(walk_in, reach_in)
    assert out["cause"].tolist() == ["unknown", "door_ajar"]


def test_a_stop_as_long_as_a_defrost_is_no_cooling_loss_but_a_longer_one_is():
    warm_idle = dict(
        evaporator_ambient_difference=-5.0,
        temperature_evaporator_slope=1.0,
        current_compressor_mean=0.05,
        duty_cycle=0.0,
        defrost_minutes=12.0,
    )
    defrost = causes(healthy_window(**warm_idle, compressor_idle_longest_minutes=30.0)).iloc[0]
    stopped = causes(healthy_window(**warm_idle, compressor_idle_longest_minutes=50.0)).iloc[0]
    assert defrost["cause"] == "unknown"
    assert stopped["cause"] == "total_cooling_loss"
    assert stopped["base_severity"] == "CRITICAL"


def test_running_more_while_the_evaporator_warms_is_a_cooling_loss():
    row = causes(
        healthy_window(
            evaporator_ambient_difference=-5.0, duty_cycle=1.0, temperature_evaporator_slope=1.0
        )
    ).iloc[0]
    assert row["cause"] == "total_cooling_loss"


def test_a_missing_sensor_skips_the_signatures_that_need_it():
    worn = window_for("mechanical_wear")
    assert causes(worn).iloc[0]["cause"] == "mechanical_wear"
    no_vibration = {k: v for k, v in worn.items() if not k.startswith("vibration")}
    assert causes(no_vibration).iloc[0]["cause"] == "unknown"
    # A cohort whose vibration column is empty is the same as one without it.
    empty = worn | {k: np.nan for k in worn if k.startswith("vibration")}
    assert causes(empty).iloc[0]["cause"] == "unknown"


def test_power_loss_without_a_vibration_sensor_needs_the_evaporator_warming():
    dark = {
        k: v for k, v in healthy_window(current_compressor_max=0.0).items() if "vibration" not in k
    }
    assert causes(dark).iloc[0]["cause"] == "unknown"
    dark["evaporator_ambient_difference"] = -15.0
    assert causes(dark).iloc[0]["cause"] == "power_loss"


def test_running_features_are_ignored_when_the_compressor_barely_ran():
    leak = window_for("refrigerant_leak")
    assert causes(leak | {"duty_cycle": 0.1}).iloc[0]["cause"] != "refrigerant_leak"


def test_without_baselines_only_limit_and_flag_signatures_can_match():
    empty = build_baselines(history().iloc[0:0], TABLE)
    out = causes(
        window_for("refrigerant_leak"),
        healthy_window(door_open_longest_minutes=45.0),
        baselines=empty,
    )
    assert out["cause"].tolist() == ["unknown", "door_ajar"]


def test_defrost_interval_baseline_is_the_median_time_between_defrosts():
    center, _, level, _ = lookup(
        BASELINES,
        np.array(["dev-1"], dtype=object),
        np.array([COHORT], dtype=object),
        "defrost_interval_hours",
        own=True,
    )
    # defrosts start at windows 5, 33, 61 and 89: every 28 windows of 15 min
    assert center[0] == pytest.approx(7.0)
    assert level[0] == 2


def test_streaming_rules_map_to_their_cause():
    assert cause_for_streaming_rule("total_cooling_loss") == "total_cooling_loss"
    assert cause_for_streaming_rule("acute_pressure_loss") == "refrigerant_leak"
    assert cause_for_streaming_rule("door_ajar") == "door_ajar"
    assert cause_for_streaming_rule("no_such_rule") is None


def test_an_empty_frame_gives_an_empty_result():
    out = diagnose(pd.DataFrame(columns=["device_id", "window_start", "window_end"]), BASELINES)
    assert out.empty and list(out.columns) == OUTPUT_COLUMNS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reference": "median"}, "reference"),
        ({"sigma": None}, "exactly one of sigma, ratio"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_a_bad_signature_is_refused_with_file_and_key(tmp_path, change, message):
    import yaml

    raw = yaml.safe_load(TABLE.path.read_text())
    cond = raw["signatures"][0]["conditions"][0]
    for k, v in change.items():
        if v is None:
            cond.pop(k, None)
            cond.pop("ratio", None)
        else:
            cond[k] = v
    bad = tmp_path / "causes.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as info:
        load_signatures(bad)
    assert str(bad) in str(info.value)
