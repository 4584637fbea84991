"""Real asset lists name devices `Kühlzelle 3`, `Freezer #2`, `Walk-in Cooler 1`: ids the
contract refuses (spaces, accents, `#`), so every reading of such a device was quarantined as
invalid_device_id and nothing could rename them. `device_id: {column: x, normalize: true}`
rewrites such an id as letters, digits and dashes, never merging two devices into one."""

import pandas as pd

from refrig_assets.ingestion.mapping import convert_frame, load_mapping

MAPPING = (
    "layout: wide\n"
    "device_id: {column: device, normalize: true}\n"
    "timestamp: {column: ts}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
)


def _convert(tmp_path, devices, mapping=MAPPING):
    path = tmp_path / "m.yaml"
    path.write_text(mapping)
    frame = pd.DataFrame(
        {
            "device": devices,
            "ts": [f"2026-01-01T00:{i:02d}:00Z" for i in range(len(devices))],
            "temp": ["-18"] * len(devices),
        }
    )
    return convert_frame(frame, load_mapping(path), "x.csv")


def test_ids_the_contract_refuses_are_rewritten(tmp_path):
    out = _convert(tmp_path, ["Kühlzelle 3", "Freezer #2", "dev_1.a", "Walk-in Cooler 1", "É"])
    assert out.readings.sort_values("ts")["device_id"].tolist() == [
        "Kuhlzelle-3",
        "Freezer-2",
        "dev_1.a",  # the contract takes it: kept as it is
        "Walk-in-Cooler-1",
        "E",
    ]
    assert len(out.quarantine) == 0


def test_two_ids_that_would_become_one_are_both_left_to_the_quarantine(tmp_path):
    out = _convert(tmp_path, ["Freezer 2", "Freezer #2", "Freezer-2", "Kühl 1", "冷蔵庫"])
    # "Freezer 2" and "Freezer #2" would both be "Freezer-2", the id of a third device.
    assert out.readings["device_id"].tolist() == ["Freezer-2", "Kuhl-1"]
    q = out.quarantine.sort_values("row")
    assert q[["row", "rule", "value"]].values.tolist() == [
        [0, "invalid_device_id", "Freezer 2"],
        [1, "invalid_device_id", "Freezer #2"],
        [4, "invalid_device_id", "冷蔵庫"],  # nothing of it is ASCII
    ]


def test_without_normalize_such_ids_are_quarantined_as_before(tmp_path):
    out = _convert(tmp_path, ["Kühlzelle 3"], MAPPING.replace(", normalize: true", ""))
    assert out.readings.empty
    assert out.quarantine["rule"].tolist() == ["invalid_device_id"]
