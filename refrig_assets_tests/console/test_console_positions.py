"""A page position beyond what a database can skip to, or a `since` that is no time, is refused
or an empty page, not a server error."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from support.operator_world import seed_store

from refrig_assets.console import create_app
from refrig_assets.console.paging import CursorError, decode_cursor


@pytest.fixture
def client(refrig_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    seed_store(url)
    app = create_app(url, tmp_path / "data", single_user="ana")
    return TestClient(
        app,
        base_url="http://127.0.0.1:8080",
        client=("127.0.0.1", 50000),
        raise_server_exceptions=False,
    )


def test_an_offset_beyond_a_64_bit_integer_is_refused(client):
    answer = client.get("/api/alerts", params={"offset": str(2**64)})
    assert answer.status_code == 422
    assert client.get("/api/alerts", params={"offset": "3"}).status_code == 200


def test_a_cursor_beyond_a_64_bit_integer_is_not_one_the_console_handed_out():
    forged = base64.urlsafe_b64encode(f"o:{2**64}".encode()).decode().rstrip("=")
    with pytest.raises(CursorError):
        decode_cursor(forged)
    assert decode_cursor(base64.urlsafe_b64encode(b"o:40").decode().rstrip("=")) == 40


def test_a_page_number_past_any_position_is_an_empty_page(client):
    answer = client.get("/alerts", params={"page": str(2**64)})
    assert answer.status_code == 200


@pytest.mark.parametrize("since", ["nan", "NaT", "99999999999d"])
def test_a_since_that_is_no_time_is_refused(client, since):
    assert client.get("/api/alerts", params={"since": since}).status_code == 422
    assert client.get("/alerts", params={"since": since}).status_code < 500
