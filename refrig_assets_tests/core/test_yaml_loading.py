"""The project's YAML (contracts, policy, detector settings) reads the same with the fast loader."""

from pathlib import Path

import pytest
import yaml

from refrig_assets.core.config import ConfigError, read_yaml, safe_load_yaml
from refrig_assets.core.settings import CONTRACTS_DIR, PROJECT_ROOT

PROJECT_YAML = sorted(
    p
    for folder in (CONTRACTS_DIR, PROJECT_ROOT / "config", PROJECT_ROOT / "models")
    for p in folder.rglob("*.yaml")
)


def test_the_project_has_yaml_to_compare():
    assert len(PROJECT_YAML) > 10


@pytest.mark.parametrize("path", PROJECT_YAML, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_project_file_parses_to_the_same_values_and_types_as_pyyaml_safe_load(path: Path):
    text = path.read_text()
    assert safe_load_yaml(text) == yaml.safe_load(text)


def test_scalars_keep_the_safe_loaders_types():
    text = "a: 1\nb: 1.5\nc: true\nd: null\ne: '01'\nf: 2026-01-01\ng: [x, {h: .inf}]\n"
    fast, pure = safe_load_yaml(text), yaml.safe_load(text)
    assert fast == pure
    assert [type(v) for v in fast.values()] == [type(v) for v in pure.values()]


def test_python_tags_are_refused_as_by_safe_load():
    with pytest.raises(yaml.YAMLError):
        safe_load_yaml("!!python/object/apply:os.system ['true']")


def test_invalid_yaml_is_a_configuration_error_naming_the_file(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        read_yaml(bad)
