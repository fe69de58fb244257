"""The waiting room in front of the GPU: fair across people, shared by the event loop and the worker.

The next job goes to whoever was served least recently (a newcomer first), so someone with five
jobs queued never delays another person's first one. Jobs that can share a batch (same model,
length and sampling) may ride along with the chosen one. Thread-safe: the loop pushes, removes
and reads; the GPU worker takes.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


class QueueFull(Exception):
    """The queue holds as many jobs as it may."""


@dataclass(frozen=True)
class QueuedJob:
    job_id: int
    user_id: int
    rows: int  # candidates: what the job costs in a batch
    batch_key: Hashable  # jobs with equal keys may share a batch
    steps: int  # decoding steps, for ETAs


@dataclass
class _Entry:
    job: QueuedJob
    order: int


@dataclass
class FairQueue:
    max_size: int
    _entries: list[_Entry] = field(default_factory=list)
    _last_served: dict[int, int] = field(default_factory=dict)
    _orders: itertools.count = field(default_factory=itertools.count)
    _serves: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ready: threading.Condition = field(default_factory=threading.Condition)

    def push(self, job: QueuedJob, *, first: bool = False, recovered: bool = False) -> None:
        """Queue `job`; `first` puts it before everything, whoever was served last (a job a restart
        or a lost worker interrupted: it has had its turn).
        A `recovered` job (rebuilt from the database at start-up) was accepted long ago: the cap,
        which only refuses new requests, never refuses it, even if that overfills the queue."""
        with self._ready:
            if not recovered and len(self._entries) >= self.max_size:
                raise QueueFull
            order = -1_000_000 + next(self._orders) if first else next(self._orders)
            self._entries.append(_Entry(job, order))
            self._ready.notify_all()

    def remove(self, job_id: int) -> QueuedJob | None:
        with self._ready:
            for entry in self._entries:
                if entry.job.job_id == job_id:
                    self._entries.remove(entry)
                    return entry.job
        return None

    def ordered(self) -> list[QueuedJob]:
        """The jobs in the order they would run if nobody else queued."""
        with self._ready:
            entries = list(self._entries)
            served = dict(self._last_served)
        return [entry.job for entry in _fair_order(entries, served)]

    def position(self, job_id: int) -> int | None:
        """1-based place in `ordered()`, or None if not waiting."""
        for index, job in enumerate(self.ordered(), start=1):
            if job.job_id == job_id:
                return index
        return None

    def count_for(self, user_id: int) -> int:
        with self._ready:
            return sum(1 for entry in self._entries if entry.job.user_id == user_id)

    def __len__(self) -> int:
        with self._ready:
            return len(self._entries)

    def take(self, max_rows: int, stop: threading.Event, timeout: float | None = None) -> list[QueuedJob]:
        """Block until a job waits (or `stop` is set); return it and any compatible jobs that fit."""
        with self._ready:
            while not self._entries and not stop.is_set():
                if not self._ready.wait(timeout):
                    return []
            if stop.is_set():
                return []
            first = _next_entry(self._entries, self._last_served)
            batch = [first, *self._companions(first, max_rows - first.job.rows)]
            for entry in batch:
                self._entries.remove(entry)
                self._last_served[entry.job.user_id] = next(self._serves)
            return [entry.job for entry in batch]

    def wake(self) -> None:
        """Wake a blocked `take` (used when stopping)."""
        with self._ready:
            self._ready.notify_all()

    def _companions(self, first: _Entry, room: int) -> list[_Entry]:
        """Compatible jobs that fit beside `first`, picked in the fair order that would follow it,
        so riding along never lets someone's fifth job overtake a newcomer's first."""
        served = dict(self._last_served)
        served[first.job.user_id] = max(served.values(), default=0) + 1
        others = [entry for entry in self._entries if entry is not first]
        chosen: list[_Entry] = []
        for entry in _fair_order(others, served):
            if entry.job.batch_key == first.job.batch_key and entry.job.rows <= room:
                chosen.append(entry)
                room -= entry.job.rows
        return chosen


def _fair_order(entries: list[_Entry], last_served: dict[int, int]) -> list[_Entry]:
    """`entries` in the order they would be served, each serve making its owner the most recent."""
    entries, served = list(entries), dict(last_served)
    order: list[_Entry] = []
    clock = max(served.values(), default=0)
    while entries:
        entry = _next_entry(entries, served)
        entries.remove(entry)
        clock += 1
        served[entry.job.user_id] = clock
        order.append(entry)
    return order


def _next_entry(entries: list[_Entry], last_served: dict[int, int]) -> _Entry:
    """An interrupted job (`first`), else the oldest job of whoever was served least recently."""
    key: Callable[[_Entry], tuple[bool, int, int]] = lambda e: (  # noqa: E731
        e.order >= 0,
        last_served.get(e.job.user_id, 0),
        e.order,
    )
    return min(entries, key=key)
