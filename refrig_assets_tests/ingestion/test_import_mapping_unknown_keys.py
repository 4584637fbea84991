"""A mapping with a misspelt key (`time_zone:` for `timezone:`) was read without it: the
default applied in silence (Berlin wall-clock times taken for UTC, every reading an hour off).
Every key the mapping format does not have is refused, named with the keys its section takes."""

import pytest

from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.ingestion.mapping import MappingError, load_mapping

BASE = (
    "layout: long\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts, format: iso, timezone: Europe/Berlin}\n"
    "long: {sensor_column: sensor, value_column: value}\n"
    "sensors:\n"
    "  T_evap: {to: temperature_evaporator, unit: degC}\n"
)


def _mapping(tmp_path, text):
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("typo", "named"),
    [
        (("timezone: Europe/Berlin", "time_zone: Europe/Berlin"), "timestamp.time_zone"),
        (("sensors:", "sensor:"), "sensor (known: layout"),
        (("unit: degC", "unit: degC, true_value: [on]"), "sensors.T_evap.true_value"),
        (("device_id: {column: device}", "device_id: {colum: device}"), "device_id.colum"),
        (("layout: long\n", "layout: long\ncsv: {delimeter: ';'}\n"), "csv.delimeter"),
    ],
)
def test_a_misspelt_key_is_refused_by_name(tmp_path, typo, named):
    with pytest.raises(MappingError, match="unknown key") as refused:
        load_mapping(_mapping(tmp_path, BASE.replace(*typo)))
    assert named in str(refused.value)


def test_the_correct_keys_and_every_shipped_example_load(tmp_path):
    assert load_mapping(_mapping(tmp_path, BASE)).timezone == "Europe/Berlin"
    for path in (PROJECT_ROOT / "examples" / "mappings").glob("*.yaml"):
        load_mapping(path)
