"""The local worker pool: one thread in the bot's process owns the GPU and feeds `BatchRunner`
from the fair queue."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from bot.fair_queue import FairQueue, QueuedJob
from bot.worker.runner import BatchRunner, Engines, RenderSettings, WorkerEvents, WorkOrder


class GpuWorker(BatchRunner):
    """Runs queued jobs one batch at a time on its own thread: the local worker pool."""

    def __init__(
        self,
        queue: FairQueue,
        orders: Callable[[int], WorkOrder | None],
        engines: Engines,
        events: WorkerEvents,
        settings: RenderSettings,
        **options,
    ) -> None:
        super().__init__(engines, events, settings, **options)
        self.queue = queue
        self.orders = orders  # thread-safe lookup of a queued job's order
        self._thread: threading.Thread | None = None
        self.ready: Future = Future()

    def start(self, preload: list[str] = ()) -> Future:
        """Start the thread; the returned future resolves once `preload` models are loaded on it."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(list(preload),), name="restyle-gpu", daemon=True
            )
            self._thread.start()
        return self.ready

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current step; the interrupted job stays 'running' and is requeued at start.
        Jobs already generated are finished (their results are not lost) before this returns."""
        self.interrupt()
        self.queue.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self.finishing.close()

    def _run(self, preload: list[str]) -> None:
        try:
            for model in preload:
                self.engines.get(model)
        except Exception as exc:
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        while not self._stop.is_set():
            batch = self.queue.take(self.max_rows, self._stop)
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[QueuedJob]) -> None:
        orders = [order for order in (self.orders(job.job_id) for job in batch) if order is not None]
        if orders:
            self.run(orders)
