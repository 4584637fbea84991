"""Validating a contract's frames: an empty frame's outcome is decided by its columns and their
types alone, and stays right however often frames of the same or other shapes are checked."""

import pandas as pd

from refrig_assets.core.contracts import load_contract


def test_empty_frames_pass_or_fail_by_their_columns_and_types_every_time():
    contract = load_contract("device_alerts")
    good = contract.empty_frame()
    wrong_type = good.assign(window_start=pd.Series(dtype="datetime64[ns]"))  # not UTC
    missing = good.drop(columns="severity")
    for _ in range(2):  # the second round is answered from what the first found
        assert contract.validate(good).empty
        assert not contract.validate(wrong_type).empty
        failures = contract.validate(missing)
        assert "severity" in set(failures["failure_case"].astype(str))


def test_a_frame_with_rows_is_checked_row_by_row_after_an_empty_one_of_its_shape():
    contract = load_contract("device_status")
    empty = contract.empty_frame()
    assert contract.validate(empty).empty
    row = pd.DataFrame({c: empty[c].reindex([0]) for c in empty.columns})  # nulls everywhere
    assert not contract.validate(row).empty
    failures = contract.validate(row)
    failures["column"] = "changed"  # the caller's copy
    assert (contract.validate(row)["column"] != "changed").all()


def test_a_contract_built_from_a_checked_ones_fields_checks_its_own_columns():
    contract = load_contract("device_status")
    assert contract.validate(contract.empty_frame()).empty  # remembers its schema
    first, *rest = contract.columns
    narrower = type(contract)(**{**contract.__dict__, "columns": rest})
    assert narrower.validate(contract.empty_frame().drop(columns=first.name)).empty
    assert not contract.validate(contract.empty_frame().drop(columns=first.name)).empty


def test_every_caller_gets_its_own_empty_frame_typed_as_the_contract_says():
    contract = load_contract("device_alerts")
    first = contract.empty_frame()
    first["extra"] = pd.Series(dtype="float64")
    first["severity"] = first["severity"].astype("float64")
    second = contract.empty_frame()
    assert list(second.columns) == contract.column_names
    assert {name: str(dtype) for name, dtype in second.dtypes.items()} == {
        c.name: str(pd.Series(dtype=c.pandas_dtype).dtype) for c in contract.columns
    }
    assert second is not contract.empty_frame()
