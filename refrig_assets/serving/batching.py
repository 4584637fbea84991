"""Concurrent readings requests computed together: one pass of the feature SQL and of each
detector for many.

A single-device request spends most of its time in fixed costs — planning the feature SQL, a
detector's preparation and calls, the diagnosis — not in its rows. Requests that arrive while
the passes are busy wait in a queue; the next free runner takes as many as it may
(``batching.max_requests``) whose devices do not overlap, whose columns have the same types and
whose ``key`` is the same (the service's: the model snapshot and the options), and computes
them in one pass. Every request gets exactly the answer it would get alone; a lone request waits
for nothing.
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
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


def _devices(table: pa.Table) -> frozenset:
    if "device_id" not in table.column_names:
        return frozenset()
    return frozenset(pc.unique(table.column("device_id")).to_pylist())


class Batcher:
    """Runs ``compute`` (tables and the pass's context → one result or exception per table)
    over queued requests."""

    def __init__(
        self,
        compute: Callable[[list[pa.Table], Any], list[Any]],
        max_requests: int,
        runners: int,
    ):
        self.compute = compute
        self.max_requests = max_requests
        self._pending: list[_Job] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(runners)

    def submit(self, table: pa.Table, key: Hashable = None, context: Any = None) -> Any:
        """The result for ``table`` (an exception the computation gave for it is raised).
        Only requests with equal ``key`` share a pass; ``compute`` gets the first one's
        ``context``."""
        job = _Job(table, _devices(table), key, context)
        with self._lock:
            self._pending.append(job)
        while not job.done.is_set():
            if not self._slots.acquire(timeout=0.01):
                continue
            try:
                # answered by another request's pass while waiting for the slot: return now and
                # leave the next pass to a request still waiting (else this answer waits a pass)
                batch = [] if job.done.is_set() else self._take()
                if batch:
                    self._run(batch)
            finally:
                self._slots.release()
        if isinstance(job.result, BaseException):
            raise job.result
        return job.result

    def _take(self) -> list[_Job]:
        """The oldest waiting request and the next ones that may join it (same column types,
        no shared device), up to ``max_requests``."""
        with self._lock:
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
            self._pending = [j for j in self._pending if j not in batch]
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            results = self.compute([j.table for j in batch], batch[0].context)
        except Exception as exc:  # noqa: BLE001 - handed to every request of the pass
            results = [exc] * len(batch)
        for job, result in zip(batch, results, strict=True):
            job.result = result
            job.done.set()
