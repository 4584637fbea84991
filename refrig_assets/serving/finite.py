"""Finding NaN and the infinities in an answer: JSON has no such number (an answer holding one
is an error, not a missing value)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def non_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or an infinity anywhere in its dicts, lists and tuples (no
    path kept)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def all_finite(numbers: Iterable[Any]) -> bool:
    """Whether every one of ``numbers`` is a finite number (False where one is not a number)."""
    try:
        return all(map(math.isfinite, numbers))
    except TypeError:
        return False
