"""Identity and access: users, API tokens, roles, the trusted proxy header, the access audit.

Services authenticate a request with :func:`authenticate_token` (``Authorization: Bearer``) and
check what it may do with :func:`require_role`; the policy lives in ``config/access.yaml``.
"""

from refrig_assets.access.identity import (
    ADMIN,
    OPERATOR,
    ROLES,
    VIEWER,
    AccessError,
    Forbidden,
    Identity,
    Unauthenticated,
    has_role,
    require_role,
)
from refrig_assets.access.policy import AccessPolicy, load_access_policy
from refrig_assets.access.store import AccessStore, AccessStoreError, authenticate_token

__all__ = [
    "ADMIN",
    "OPERATOR",
    "ROLES",
    "VIEWER",
    "AccessError",
    "AccessPolicy",
    "AccessStore",
    "AccessStoreError",
    "Forbidden",
    "Identity",
    "Unauthenticated",
    "authenticate_token",
    "has_role",
    "load_access_policy",
    "require_role",
]
