"""A value derived from an object the service hands every request until its file changes (the
device registry as a frame or an Arrow table), built again only when that object is replaced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")
V = TypeVar("V")


class LastDerived(Generic[S, V]):
    """``build(source)`` for the last ``source`` seen (by identity): derived once per registry,
    not once per request."""

    def __init__(self, build: Callable[[S], V]):
        self.build = build
        self._last: tuple[S, V] | None = None

    def __call__(self, source: S) -> V:
        last = self._last
        if last is None or last[0] is not source:
            last = self._last = (source, self.build(source))
        return last[1]
