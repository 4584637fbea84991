"""Access policy of the console and its API, read from ``config/access.yaml``.

Proxy header and trusted proxies, allowed hosts and origins, body limit, session and CSRF
settings, token lifetime, pagination, triage and links. Every value has its one default in the
YAML file; :func:`load_access_policy` checks each and names file and key when one is wrong.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refrig_assets.access.identity import ROLES
from refrig_assets.core.config import Section, config_path, read_yaml

TOPIC = "access"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SessionPolicy:
    """Browser sessions: cookie name, lifetime, HTTPS-only, and the CSRF header."""

    cookie_name: str
    max_age_hours: float
    secure_cookie: bool
    csrf_header: str


@dataclass(frozen=True)
class AccessPolicy:
    """Everything ``config/access.yaml`` decides (see the comments there)."""

    proxy_header: str
    trusted_proxies: tuple[IPNetwork, ...]
    proxy_default_role: str
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    max_body_bytes: int
    session: SessionPolicy
    token_days: float
    backdate_tolerance_minutes: float
    default_limit: int
    max_limit: int
    refresh_seconds: float
    bulk_max: int
    silence_max_days: float
    dagster_url: str | None
    mlflow_url: str | None

    def trusts_proxy(self, address: str | None) -> bool:
        """Whether ``address`` (the TCP peer) is one of the trusted proxies."""
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def _texts(section: Section, name: str) -> tuple[str, ...]:
    raw = section.value(name)
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise section.fail(name, f"must be a list of texts (may be empty), not {raw!r}")
    return tuple(raw)


def _networks(section: Section, name: str) -> tuple[IPNetwork, ...]:
    out = []
    for value in _texts(section, name):
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise section.fail(name, f"{value!r} is not an IP address or network") from None
    return tuple(out)


def _origin(value: str) -> str:
    return value.rstrip("/").lower()


def parse_access_policy(path: Path, raw: dict[str, Any]) -> AccessPolicy:
    """Check and type one access policy mapping (``path`` names it in errors)."""
    top = Section(path, raw)
    proxy = top.section("proxy")
    session = top.section("session")
    pages = top.section("pagination")
    triage = top.section("triage")
    links = top.section("links")
    default_limit = pages.number("default_limit", minimum=1, integer=True)
    max_limit = pages.number("max_limit", minimum=1, integer=True)
    if default_limit > max_limit:
        raise pages.fail("default_limit", f"must be at most max_limit ({max_limit})")
    for origin in _texts(top, "allowed_origins"):
        if "://" not in origin:
            raise top.fail("allowed_origins", f"{origin!r} must be scheme://host[:port]")
    return AccessPolicy(
        proxy_header=proxy.text("header"),
        trusted_proxies=_networks(proxy, "trusted"),
        proxy_default_role=proxy.choice("default_role", ROLES),
        allowed_hosts=tuple(h.lower().strip("[]") for h in _texts(top, "allowed_hosts")),
        allowed_origins=tuple(_origin(o) for o in _texts(top, "allowed_origins")),
        max_body_bytes=top.number("max_body_bytes", minimum=1024, integer=True),
        session=SessionPolicy(
            cookie_name=session.text("cookie_name"),
            max_age_hours=session.number("max_age_hours", minimum=0.1),
            secure_cookie=session.flag("secure_cookie"),
            csrf_header=session.text("csrf_header"),
        ),
        token_days=top.number("token_days", minimum=0.01),
        backdate_tolerance_minutes=top.number("backdate_tolerance_minutes", minimum=0),
        default_limit=default_limit,
        max_limit=max_limit,
        refresh_seconds=triage.number("refresh_seconds", minimum=0),
        bulk_max=triage.number("bulk_max", minimum=1, integer=True),
        silence_max_days=triage.number("silence_max_days", minimum=0.01),
        dagster_url=(links.optional_text("dagster_url") or "").rstrip("/") or None,
        mlflow_url=(links.optional_text("mlflow_url") or "").rstrip("/") or None,
    )


def load_access_policy(path: Path | None = None) -> AccessPolicy:
    """The access policy of ``path`` (default ``config/access.yaml``)."""
    path = path or config_path(TOPIC)
    return parse_access_policy(path, read_yaml(path))
