"""How uvicorn runs the service comes from config/serving.yaml, checked when it is read."""

from __future__ import annotations

import shutil

import pytest
import yaml

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.serving.settings import load_serving_settings, uvicorn_options


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def set_server(config_dir, **values) -> None:
    path = config_dir / "serving.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["server"].update(values)
    path.write_text(yaml.safe_dump(raw))


def test_the_server_settings_are_read_from_the_config(config_dir):
    set_server(config_dir, loop="asyncio", http="h11", backlog=64, keep_alive_seconds=2)
    settings = load_serving_settings()
    assert (settings.server_loop, settings.server_http) == ("asyncio", "h11")
    assert (settings.server_backlog, settings.server_keep_alive_seconds) == (64, 2)


def test_an_unknown_event_loop_is_refused_naming_the_key(config_dir):
    set_server(config_dir, loop="trio")
    with pytest.raises(Exception, match="loop"):
        load_serving_settings()


def test_the_access_log_is_off_unless_the_config_asks_for_it(config_dir):
    quiet = uvicorn_options(load_serving_settings())
    assert (quiet["access_log"], quiet["log_level"]) == (False, "warning")
    set_server(config_dir, access_log=True)
    logged = uvicorn_options(load_serving_settings())
    # uvicorn writes its access lines at info level: logged only when the level is info
    assert (logged["access_log"], logged["log_level"]) == (True, "info")


def test_an_access_log_that_is_not_true_or_false_is_refused_naming_the_key(config_dir):
    set_server(config_dir, access_log="sometimes")
    with pytest.raises(Exception, match="access_log"):
        load_serving_settings()
