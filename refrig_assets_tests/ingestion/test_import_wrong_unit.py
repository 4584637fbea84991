"""`refrig import` with a mapping that names the wrong unit (pressures exported in kPa, mapped
as psi): every converted value lands outside the contract's range, and the pipeline would flag
every reading OUT_OF_RANGE and page about it. The import says so, per column, with the source
column and the unit it was converted from, and counts it in its summary."""

import json

from typer.testing import CliRunner

from refrig_assets.cli import app


def _export(tmp_path, pressure_kpa: float):
    source = tmp_path / "pumps.csv"
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    lines = ["asset,epoch,p_suction,t_evap"]
    lines += [f"pump-1,{t0 + 60 * i},{pressure_kpa},{-18 + 0.01 * i}" for i in range(30)]
    lines.append(f"pump-1,{t0 + 60 * 30},,-17.0")  # no pressure: not counted as a value
    source.write_text("\n".join(lines) + "\n")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "layout: wide\n"
        "device_id: {column: asset}\n"
        "timestamp: {column: epoch, format: epoch_s}\n"
        "sensors:\n"
        "  p_suction: {to: pressure_low_side, unit: psi}\n"
        "  t_evap: {to: temperature_evaporator, unit: degC}\n"
    )
    return source, mapping


def _import(source, mapping):
    result = CliRunner().invoke(app, ["import", str(source), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    summary = json.loads(next(line for line in result.output.splitlines() if line[:1] == "{"))
    return summary, result.output


def test_values_a_wrong_unit_puts_outside_the_contract_range_are_named(refrig_home, tmp_path):
    summary, output = _import(*_export(tmp_path, 350.0))  # kPa read as psi: 2,413 kPa

    assert summary["out_of_range"] == {"pressure_low_side": {"outside": 30, "values": 30}}
    assert (
        "30 of 30 pressure_low_side values (from 'p_suction' in psi) are outside its range "
        "[0.0, 1500.0] kPa" in output
    )


def test_values_inside_the_range_say_nothing(refrig_home, tmp_path):
    summary, output = _import(*_export(tmp_path, 50.0))  # 50 psi: 345 kPa

    assert summary["out_of_range"] == {}
    assert "outside its range" not in output
