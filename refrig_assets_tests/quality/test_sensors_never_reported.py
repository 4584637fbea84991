"""A sensor without a value in any clean reading of an hour is named in the quality report as
never reported: the fleet most likely does not have it and should say so in REFRIG_SENSORS."""

from refrig_assets.quality.report import never_reported


def summary(**dropout_rates) -> dict:
    return {"rows_clean": 120, "flag_rates_by_sensor": {"SENSOR_DROPOUT": dropout_rates}}


def test_a_sensor_missing_from_every_reading_is_never_reported():
    rates = summary(temperature_evaporator=0.0, vibration_compressor=1.0, door_open=0.25)

    assert never_reported(rates) == ["vibration_compressor"]


def test_an_hour_without_clean_readings_names_no_sensor():
    assert never_reported({**summary(vibration_compressor=1.0), "rows_clean": 0}) == []
