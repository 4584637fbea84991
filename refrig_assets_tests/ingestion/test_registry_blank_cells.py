"""A registry exported from an asset list has blank cells and stray spaces. A blank ``site_id``
was read as the site ``nan``: every device without a site became one site, so a site-wide event
could span devices that share nothing. A blank ``device_id`` became a device ``nan``, an id
with a trailing space never matched its readings, and a threshold that is not a number failed
with pandas' bare "could not convert string to float"."""

import pytest

from refrig_assets.ingestion.device_registry import (
    UNKNOWN_SITE,
    load_device_registry,
    load_registry_policy,
    registry_findings,
)


def _registry(tmp_path, text):
    path = tmp_path / "device_registry.csv"
    path.write_text(text)
    return path


def test_blank_cells_and_spaces(tmp_path):
    path = _registry(
        tmp_path,
        "device_id,site_id,cohort\n"
        "dev-1 ,s1,walk_in\n"  # row 1
        ",s1,walk_in\n"  # row 2: no device
        "dev-2,,walk_in\n"  # row 3: no site
        "dev-3,  ,walk_in\n"  # row 4: a blank site
        "dev-1,s1,walk_in\n",  # row 5: dev-1 again
    )
    registry = load_device_registry(path)
    assert registry["device_id"].tolist() == ["dev-1", "dev-2", "dev-3", "dev-1"]
    assert registry["site_id"].tolist() == ["s1", UNKNOWN_SITE, UNKNOWN_SITE, "s1"]
    assert "nan" not in set(registry["site_id"]) | set(registry["device_id"])
    findings = registry_findings(registry, load_registry_policy())
    # Rows keep their numbers in the file although row 2 is left out.
    assert findings.duplicates == {"dev-1": [1, 5]}
    assert findings.without_device == [2]
    assert findings.without_site == ["dev-2", "dev-3"]
    messages = "\n".join(findings.messages("reg.csv"))
    assert "reg.csv: row(s) 2 have no device_id and are left out" in messages
    assert "dev-2, dev-3 (2 device(s)) have no site_id" in messages


def test_a_threshold_that_is_not_a_number_is_named_with_its_row(tmp_path):
    path = _registry(
        tmp_path,
        'device_id,site_id,cohort,current_threshold\nd1,s1,walk_in,12.5\nd2,s1,walk_in,"12,5"\n',
    )
    with pytest.raises(ValueError, match=r"current_threshold' row 2: '12,5' is not a number"):
        load_device_registry(path)


def test_a_ragged_line_is_refused_naming_the_file(tmp_path):
    path = _registry(tmp_path, "device_id,site_id,cohort\nd1,s1,walk_in\nd2,s1,walk,in\n")
    with pytest.raises(ValueError, match=f"{path}: .*line 3"):
        load_device_registry(path)


def test_a_semicolon_registry_is_refused_naming_its_one_column(tmp_path):
    path = _registry(tmp_path, "device_id;site_id;cohort\nd1;s1;walk_in\n")
    with pytest.raises(ValueError, match="one column, 'device_id;site_id;cohort'"):
        load_device_registry(path)
