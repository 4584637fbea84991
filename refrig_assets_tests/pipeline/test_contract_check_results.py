"""The hourly steps' contract checks give pandera's own failure table for every frame, whether
conformance was shown without pandera (the usual case) or pandera had to run."""

import numpy as np
import pandas as pd
import pytest

from refrig_assets.core.contracts import ColumnSpec, Contract, all_contracts, load_contract
from refrig_assets.defs.shared.contract_checks import contract_check_result
from refrig_assets.scoring.conformance import contract_failures

START = pd.Timestamp("2026-01-01 00:00", tz="UTC")
ROWS = 5


def column_values(spec: ColumnSpec) -> pd.Series:
    """``ROWS`` values of ``spec`` that follow its contract, distinct where they can be."""
    if spec.type == "timestamp":
        return pd.Series(START + pd.to_timedelta(np.arange(ROWS) * 15, unit="min"))
    if spec.type == "bool":
        return pd.Series([True, False] * ROWS, dtype=spec.pandas_dtype).iloc[:ROWS]
    if spec.type == "string":
        allowed = spec.allowed or tuple(f"{spec.name}-{i}" for i in range(ROWS))
        return pd.Series([allowed[i % len(allowed)] for i in range(ROWS)], dtype=object)
    low, high = spec.range or (0.0, 100.0)
    values = np.linspace(low, min(high, low + 10.0), ROWS)
    return pd.Series(values.round() if spec.type == "int" else values, dtype=spec.pandas_dtype)


def valid(contract: Contract) -> pd.DataFrame:
    """Rows that follow ``contract``, keys distinct and in reverse order (not increasing)."""
    frame = pd.DataFrame({c.name: column_values(c) for c in contract.columns})
    return frame.iloc[::-1].reset_index(drop=True)


def without_text(contract: Contract) -> pd.DataFrame:
    """Valid rows whose first nullable text column has no value (Arrow types it null)."""
    frame = valid(contract)
    spec = first(contract, lambda c: c.type == "string" and c.nullable)
    return frame if spec is None else frame.assign(**{spec.name: None})


def first(contract: Contract, want) -> ColumnSpec | None:
    return next((c for c in contract.columns if want(c)), None)


def broken(contract: Contract) -> dict[str, pd.DataFrame]:
    """Ways to break ``contract`` that its columns allow, by name."""
    cases: dict[str, pd.DataFrame] = {}
    frame = valid(contract)
    if spec := first(contract, lambda c: not c.nullable):
        cases["null where not nullable"] = frame.assign(
            **{spec.name: frame[spec.name].astype(object).where(frame.index != 2, None)}
        )
    if spec := first(contract, lambda c: c.range is not None and c.type == "float"):
        cases["out of range"] = frame.assign(**{spec.name: spec.range[1] + 1.0})
        cases["infinite"] = frame.assign(**{spec.name: np.inf})
    if spec := first(contract, lambda c: c.allowed is not None):
        cases["not allowed"] = frame.assign(**{spec.name: "no-such-value"})
    if spec := first(contract, lambda c: c.type == "float"):
        cases["float32"] = frame.astype({spec.name: "float32"})
    if spec := first(contract, lambda c: c.type == "timestamp"):
        cases["naive time"] = frame.assign(**{spec.name: frame[spec.name].dt.tz_localize(None)})
        cases["not UTC"] = frame.assign(**{spec.name: frame[spec.name].dt.tz_convert("Asia/Tokyo")})
    if contract.primary_key:
        cases["repeated key"] = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)
    if spec := first(contract, lambda c: c.type == "string" and not c.nullable):
        cases["text column all null"] = frame.assign(**{spec.name: None})
    cases["extra column"] = frame.assign(note="x")
    cases["missing column"] = frame.drop(columns=contract.column_names[-1])
    return cases


CONTRACTS = sorted(all_contracts())


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_frame_gets_pandera_s_failure_table(name):
    contract = load_contract(name)
    frames = {
        "valid": valid(contract),
        "valid, a text column without a value": without_text(contract),
        "empty": contract.empty_frame(),
        **broken(contract),
    }
    for case, frame in frames.items():
        expected = contract.validate(frame)
        pd.testing.assert_frame_equal(contract_failures(contract, frame), expected, obj=case)
        if not case.startswith(("valid", "empty")):
            assert not expected.empty, case  # each case really breaks the contract


@pytest.mark.parametrize("name", ["device_status", "device_incidents", "device_alerts"])
def test_a_conforming_hour_is_shown_to_conform_without_pandera(name, monkeypatch):
    contract = load_contract(name)
    frame = without_text(contract)
    assert contract.validate(frame).empty

    def pandera(*args, **kwargs):
        raise AssertionError("pandera ran on a conforming frame")

    monkeypatch.setattr(Contract, "validate", pandera)
    result = contract_check_result(name, contract, frame)
    assert result.passed
    assert result.metadata["rows"].value == ROWS
