"""Limit/cursor pagination for every list the console's API returns.

A cursor is opaque to clients: pass the ``next_cursor`` of one page to get the next; a page
without one is the last. It encodes the position in the list's stable order.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from refrig_assets.access.policy import AccessPolicy

# The largest position a database can skip to (a signed 64-bit integer): beyond it SQLite and
# PostgreSQL refuse the query itself, which would be a server error instead of a refusal.
MAX_POSITION = 2**63 - 1


class CursorError(ValueError):
    """A cursor this console did not hand out."""


def encode_cursor(position: int) -> str:
    """The cursor of a position in a list."""
    return base64.urlsafe_b64encode(f"o:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor stands for (0 without one)."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        position = int(value)
    except (ValueError, UnicodeDecodeError):
        raise CursorError(f"cursor {cursor!r} is not one this console handed out") from None
    if kind != "o" or not 0 <= position <= MAX_POSITION:
        raise CursorError(f"cursor {cursor!r} is not one this console handed out")
    return position


def page_limit(policy: AccessPolicy, limit: int | None) -> int:
    """``limit`` checked against ``pagination.max_limit`` (default ``default_limit``)."""
    if limit is None:
        return policy.default_limit
    if limit < 1 or limit > policy.max_limit:
        raise CursorError(f"limit must be between 1 and {policy.max_limit}; got {limit}")
    return limit


def page(
    items: Sequence[Any], position: int, limit: int, total: int | None = None
) -> dict[str, Any]:
    """One page of ``items`` (already sliced from ``position`` when ``total`` is given)."""
    if total is None:
        total = len(items)
        items = items[position : position + limit]
    end = position + len(items)
    return {
        "items": list(items),
        "limit": limit,
        "total": total,
        "next_cursor": encode_cursor(end) if end < total else None,
    }
