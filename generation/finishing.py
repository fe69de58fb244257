"""Finishing work (adherence, mastering, encoding, writing) on a thread of its own.

Finishing a job is CPU work: about 1.6 s for four 30 s candidates on a laptop-class core, several
seconds for 2-minute tracks. Done on the thread that owns the GPU, the GPU idles for all of it.
The GPU thread hands each generated job over and goes on with the next one. At most `max_pending`
jobs wait or run here: if the CPU falls behind, the GPU thread waits for a free place instead of
piling up audio in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class FinishingThread:
    """Runs submitted work in order on one thread; `background=False` runs it in the caller."""

    def __init__(self, max_pending: int, *, background: bool = True, name: str = "restyle-finish") -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._places = threading.BoundedSemaphore(max_pending)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name) if background else None

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Queue `work`, waiting first for a free place; its outcome (or error) is in the future."""
        if self._executor is None:
            return _run_now(work)
        self._places.acquire()
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._places.release()
            raise
        future.add_done_callback(lambda _: self._places.release())
        return future

    def close(self) -> None:
        """Wait for everything submitted to finish; nothing may be submitted afterwards."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> FinishingThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _run_now(work: Callable[[], T]) -> Future[T]:
    future: Future[T] = Future()
    try:
        future.set_result(work())
    except Exception as exc:
        future.set_exception(exc)
    return future
