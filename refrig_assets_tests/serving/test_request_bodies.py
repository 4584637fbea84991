"""A JSON request body is read to exactly the rows the standard library's reader gives, whichever
parser reads it (orjson for speed, ``json`` where the two could differ)."""

from __future__ import annotations

import json

import pytest

from refrig_assets.serving.inputs import RequestRejected, table_from_records
from refrig_assets.serving.service import _json_rows

READING = (
    '{"device_id": %s, "ts": "2026-01-01T02:00:00Z", "temperature_evaporator": %s, '
    '"door_open": false, "note": %s}'
)


def _body(*rows: tuple[str, str, str]) -> bytes:
    return ('{"readings": [' + ", ".join(READING % row for row in rows) + "]}").encode()


BODIES = {
    "plain": _body(('"dev-1"', "-21.3", '"x"'), ('"dev-1"', "-21", "null")),
    "small floats with many digits": _body(('"dev-1"', "-0.0024086961123722184", '"x"')),
    "NaN and Infinity literals": _body(('"dev-1"', "NaN", '"x"'), ('"dev-1"', "Infinity", '"y"')),
    "a number beyond a double": _body(('"dev-1"', "1e400", '"x"')),
    "an integer beyond 64 bits among floats": _body(
        ('"dev-1"', "123456789012345678901234567890", '"x"'), ('"dev-1"', "-21.5", '"y"')
    ),
    "an integer beyond 64 bits among text": _body(
        ('"dev-1"', "-21.5", "123456789012345678901234567890"), ('"dev-1"', "-21", '"y"')
    ),
    "an integer beyond 64 bits as a device id": _body(
        ("123456789012345678901234567890", "-21.5", '"x"')
    ),
    "the largest 64-bit integers": _body(
        ('"dev-1"', "18446744073709551615", '"x"'), ('"dev-1"', "-9223372036854775808", '"y"')
    ),
    "windows": b'{"windows": [{"device_id": "dev-1", "sensor_completeness": 1.0}]}',
}


def _outcome(read):
    """What reading a body gives: its kind and rows (NaN written out, so NaN equals NaN), or
    the type of the error it raises."""
    try:
        kind, table = read()
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the error's type
        return type(exc)
    return kind, table.schema, repr(table.to_pylist())


def _standard(body: bytes):
    payload = json.loads(body)
    [key] = payload
    dataset = "sensor_readings" if key == "readings" else "device_features"
    return key, table_from_records(payload[key], dataset)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_json_body_reads_to_what_the_standard_library_gives(name):
    body = BODIES[name]
    assert _outcome(lambda: _json_rows(body)) == _outcome(lambda: _standard(body))


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'["readings"]', b'{"readings": [], "windows": []}', b'{"readings": [1]}'],
)
def test_a_malformed_json_body_is_refused(body):
    with pytest.raises(RequestRejected) as refused:
        _json_rows(body)
    assert refused.value.violations[0].rule == "malformed_body"
