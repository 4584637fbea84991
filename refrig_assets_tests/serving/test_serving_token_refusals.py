"""`refrig serve` says why a request is refused: no token, or a token that does not
authenticate (unknown, revoked, expired). Was: both answered "sign in first ... or sign in on
/login", a page the scoring service does not have, to a gateway that had sent its token."""

from __future__ import annotations

import pytest

from refrig_assets.access import Unauthenticated
from refrig_assets.access.store import AccessStore
from refrig_assets.core.settings import get_settings
from refrig_assets.serving.service import ScoringService


@pytest.fixture
def service(refrig_home):
    scoring = ScoringService(single_user=False)
    yield scoring
    scoring.close()


def test_an_unknown_or_revoked_token_is_named_as_such(service):
    access = AccessStore(get_settings().alerts_db_url)
    access.add_user("gateway", "viewer", "tester")
    row, token = access.create_token("gateway", "tester", days=1)
    assert service.authenticate(token).name == "gateway"
    access.revoke_token(row["token_id"], "tester")
    access.alerts.close()

    for sent in (token, "rfa_nope"):
        with pytest.raises(Unauthenticated) as refused:
            service.authenticate(sent)
        assert "unknown, revoked or expired" in str(refused.value)
        assert "/login" not in str(refused.value)


def test_a_request_without_a_token_is_told_how_to_send_one(service):
    with pytest.raises(Unauthenticated, match="Authorization: Bearer") as refused:
        service.authenticate(None)
    assert "/login" not in str(refused.value)
