"""Scoring on one BLAS thread.

The scoring products are tall and thin (hundreds of thousands of windows × a dozen features):
OpenBLAS splits each over every core and its threads spin while they wait for the next one,
which about doubled the CPU of a scoring step for no shorter wall time on a shared machine.
On one thread each output element is the same dot product, so the scores are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import ParamSpec, TypeVar

from threadpoolctl import ThreadpoolController

P = ParamSpec("P")
R = TypeVar("R")


def one_blas_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with BLAS limited to one thread (restored afterwards)."""

    @wraps(fn)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        with _controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return limited


@cache
def _controller() -> ThreadpoolController:
    """The process's thread pools, found once (finding them costs about 1.5 ms, a limit
    through them 0.07 ms: an online request is scored through this too)."""
    return ThreadpoolController()
