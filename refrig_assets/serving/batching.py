"""Concurrent readings requests computed together: one pass of the feature SQL and of each
detector for many.

A single-device request spends most of its time in fixed costs — planning the feature SQL, a
detector's preparation and calls, the diagnosis — not in its rows. Requests that arrive while
the passes are busy wait in a queue; when a pass ends, the next one takes as many waiting
requests as it may (``batching.max_requests``) whose devices do not overlap, whose columns have
the same types and whose ``key`` is the same (the service's: the model snapshot and the
options), and computes them in one pass. Every request gets exactly the answer it would get
alone. A lone request waits for nothing, and a waiting one for at most the passes running when
it came (there is no timer).

No thread polls: a request's own thread runs the pass when a runner slot is free; when its own
answer is ready and requests are still waiting, it hands the slot to the oldest of them (whose
thread runs the next pass) and returns, so its answer is not held back by others' passes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(eq=False)
class _Job:
    table: pa.Table
    devices: frozenset
    key: Hashable
    context: Any
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    lead: bool = False
    result: Any = None


def _devices(table: pa.Table) -> frozenset:
    if "device_id" not in table.column_names:
        return frozenset()
    return frozenset(pc.unique(table.column("device_id")).to_pylist())


class Batcher:
    """Runs ``compute`` (tables and the pass's context → one result or exception per table)
    over queued requests, at most ``runners`` passes at once."""

    def __init__(
        self,
        compute: Callable[[list[pa.Table], Any], list[Any]],
        max_requests: int,
        runners: int,
    ):
        self.compute = compute
        self.max_requests = max_requests
        self.runners = runners
        self._pending: list[_Job] = []
        self._running = 0  # runner slots held (a pass running, or about to)
        self._lock = threading.Lock()
        self.passes = 0  # passes run and requests they answered (for the bench and tests)
        self.requests = 0

    def submit(self, table: pa.Table, key: Hashable = None, context: Any = None) -> Any:
        """The result for ``table`` (an exception the computation gave for it is raised).
        Only requests with equal ``key`` share a pass; ``compute`` gets the first one's
        ``context``."""
        job = _Job(table, _devices(table), key, context)
        with self._lock:
            self._pending.append(job)
            if self._running < self.runners:
                self._running += 1
                job.lead = True
        while True:
            if job.lead:
                self._lead(job)
            if job.done:
                break
            job.wake.wait()
            job.wake.clear()
        if isinstance(job.result, BaseException):
            raise job.result
        return job.result

    def _lead(self, job: _Job) -> None:
        """Hold a runner slot: run passes until ``job`` is answered, then pass the slot on to
        the oldest waiting request, or give it back. (``job.lead`` stays set meanwhile, so no
        other runner hands ``job`` a second slot.)"""
        while True:
            with self._lock:
                if job.done:
                    job.lead = False
                    heir = next((j for j in self._pending if not j.lead), None)
                    if heir is None:
                        self._running -= 1
                    else:
                        heir.lead = True
                        heir.wake.set()
                    return
                batch = self._take()
                if not batch:  # job is in another runner's pass: wait for it there
                    job.lead = False
                    self._running -= 1
                    return
            self._run(batch)

    def _take(self) -> list[_Job]:
        """(Under the lock) the oldest waiting request and the next ones that may join it (same
        column types, no shared device), up to ``max_requests``."""
        if not self._pending:
            return []
        first = self._pending[0]
        batch, seen = [first], set(first.devices)
        for job in self._pending[1:]:
            if len(batch) >= self.max_requests:
                break
            if (
                job.key == first.key
                and job.table.schema.equals(first.table.schema)
                and not (job.devices & seen)
            ):
                batch.append(job)
                seen |= job.devices
        taken = set(map(id, batch))
        self._pending = [j for j in self._pending if id(j) not in taken]
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            results = self.compute([j.table for j in batch], batch[0].context)
        except Exception as exc:  # noqa: BLE001 - handed to every request of the pass
            results = [exc] * len(batch)
        with self._lock:
            self.passes += 1
            self.requests += len(batch)
            for job, result in zip(batch, results, strict=True):
                job.result = result
                job.done = True
        for job in batch:
            job.wake.set()
