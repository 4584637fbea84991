"""Secrets never appear in logs, notes, database rows or UI messages.

URLs carry them (a database password, a webhook token in the path or the query): any text that
may hold a URL goes through :func:`mask_secrets` before it is shown or stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"
# Path segments at least this long are treated as tokens (Slack, Teams and generic webhooks).
_SECRET_SEGMENT = 16
WEB_SCHEMES = ("http", "https")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def masked_url(url: str) -> str:
    """``url`` without its secrets: the password (or a bare user token), every query value, the
    fragment and, in web URLs, path segments long enough to be tokens (a database URL's path
    is a database or file name, kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username is not None:
        user = MASK if parts.password is None else f"{parts.username}:{MASK}"
        netloc = f"{user}@{netloc}"
    path = parts.path
    if parts.scheme.lower() in WEB_SCHEMES:
        path = "/".join(
            MASK if len(segment) >= _SECRET_SEGMENT else segment for segment in path.split("/")
        )
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    query = query.replace("%2A", "*")
    # Built by hand: urlunsplit drops the slashes of an empty host (sqlite:////abs/path).
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that :func:`masked_url` hides, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password or "", parts.username if parts.password is None else ""]
    if parts.scheme.lower() in WEB_SCHEMES:
        found += [s for s in parts.path.split("/") if len(s) >= _SECRET_SEGMENT]
    found += [v for _, v in parse_qsl(parts.query) if len(v) >= 4]
    found.append(parts.fragment)
    return sorted({s for s in found if s}, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it masked (:func:`masked_url`) and each of ``secrets``
    replaced by ``***`` wherever it still appears."""
    text = _URL.sub(_masked_match, text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _masked_match(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = url.rstrip(".,:;)]}")
    return masked_url(kept) + url[len(kept) :]
