"""A generation worker on a Ray node: loads its models once and runs the bot's batches with the
same `BatchRunner` as the local worker, streaming each batch's events back to the bot.

Ray serves this actor's methods on threads of its process, in two concurrency groups: `load` and
`run` on the two "batches" threads (one batch generating while the one before it finishes), and
`cancel`, `stop` and `about` on the "control" thread, so a cancel is served while a batch
generates. Generation itself runs on the actor's one GPU thread; finishing on the runner's
finishing thread, as in the bot.

`run` is a streaming generator: each event (started, progress, finished, failed, cancelled) is
yielded as `(name, args)` the moment it happens, the finished files' bytes riding in the object
store; `GENERATED` says the GPU is free for the next batch. Progress is throttled by the runner
before it is yielded (one per `progress_interval_s` per job), so the stream stays small. One ordered
stream per batch keeps a job's events in order and needs no queue or actor of its own to clean up.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import ray

from bot.worker.failures import member_message
from bot.worker.loading import Separator
from bot.worker.runner import BatchRunner, Engines, Finished, RenderSettings, WorkOrder
from generation.errors import RestyleError
from generation.interface import Engine

log = logging.getLogger(__name__)

GENERATED = "generated"  # the batch is off the GPU: args are the measured seconds per step, by model
EVENTS = frozenset({"started", "progress", "finished", "failed", "cancelled"})  # WorkerEvents' methods
NO_AUDIO = np.zeros((0, 0), np.float32)
BATCH_FAILED = "The worker could not get ready for this job; the error has been logged."

Event = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs besides its batches; sent by value when the actor is created."""

    load_engine: Callable[[str], Engine]
    settings: RenderSettings
    max_rows: int
    stems: Separator | None = None  # the stem separation, loaded on the worker
    layers: Separator | None = None  # what a loop's layers are split with, loaded on first use


class _Stream:
    """One batch's events, in the order they happen, from the worker's threads to `run`."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[Event | None] = queue.SimpleQueue()

    def put(self, name: str, *args: Any) -> None:
        self._items.put((name, args))

    def close(self) -> None:
        self._items.put(None)

    def __iter__(self) -> Iterator[Event]:
        while (item := self._items.get()) is not None:
            yield item


class _Router:
    """The runner's `WorkerEvents`: each job's events go to the stream of the batch it came in."""

    def __init__(self) -> None:
        self._streams: dict[int, _Stream] = {}
        self._lock = threading.Lock()

    def open(self, job_ids: list[int], stream: _Stream) -> None:
        with self._lock:
            self._streams.update(dict.fromkeys(job_ids, stream))

    def close(self, job_ids: list[int]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._streams.pop(job_id, None)

    def _put(self, name: str, job_id: int, *args: Any) -> None:
        with self._lock:
            stream = self._streams.get(job_id)
        if stream is not None:
            stream.put(name, *args)

    def started(self, job_id: int) -> None:
        self._put("started", job_id, job_id)

    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None:
        self._put("progress", job_id, job_id, done, total, seconds_left)

    def finished(self, outcome: Finished) -> None:
        self._put("finished", outcome.job_id, _files_only(outcome))

    def failed(self, job_id: int, message: str) -> None:
        self._put("failed", job_id, job_id, message)

    def cancelled(self, job_id: int) -> None:
        self._put("cancelled", job_id, job_id)


def _files_only(outcome: Finished) -> Finished:
    """The bot keeps files, seeds and scores, never the raw audio: no need to ship megabytes of it."""
    strip = lambda item: replace(item, candidate=replace(item.candidate, audio=NO_AUDIO))  # noqa: E731
    return Finished(
        outcome.job_id, [strip(item) for item in outcome.rendered], [strip(g) for g in outcome.game]
    )


@ray.remote(concurrency_groups={"batches": 2, "control": 1})
class WorkerActor:
    def __init__(self, setup: WorkerSetup) -> None:
        self._setup = setup
        self._router = _Router()
        self._runner = BatchRunner(
            Engines(setup.load_engine),
            self._router,
            setup.settings,
            max_rows=setup.max_rows,
            layer_separator=setup.layers.load if setup.layers is not None else None,
        )
        self._gpu = ThreadPoolExecutor(1, thread_name_prefix="restyle-gpu")  # the one GPU thread
        self._loaded = False

    @ray.method(concurrency_group="batches")
    def load(self, models: list[str]) -> dict[str, Any]:
        """Load `models` (and the stem separator, if asked) on the GPU thread; raises what failed."""
        self._gpu.submit(self._load, models).result()
        return self.about()

    def _load(self, models: list[str]) -> None:
        if not self._loaded and self._setup.stems is not None:
            self._setup.stems.load()
            self._runner.separate = self._setup.stems
        self._loaded = True
        for model in models:
            self._runner.engines.get(model)

    @ray.method(concurrency_group="batches")
    def run(self, orders: list[WorkOrder]) -> Iterator[Event]:
        job_ids = [order.job_id for order in orders]
        stream = _Stream()
        self._router.open(job_ids, stream)
        self._gpu.submit(self._generate, orders, stream)
        try:
            yield from stream
        finally:
            self._router.close(job_ids)

    def _generate(self, orders: list[WorkOrder], stream: _Stream) -> None:
        """On the GPU thread: the batch, then `GENERATED`; the stream closes once it is finished."""
        try:
            self._load([])
            finishing = self._runner.run(orders)
        except Exception as exc:  # the separator failed to load: the batch fails, the worker lives
            log.exception("batch %s failed", [order.job_id for order in orders])
            finishing = []
            message = member_message(exc) if isinstance(exc, RestyleError) else BATCH_FAILED
            for order in orders:
                stream.put("failed", order.job_id, message)
        stream.put(GENERATED, dict(self._runner.seconds_per_step))
        _close_when_done(stream, finishing)

    @ray.method(concurrency_group="control")
    def cancel(self, job_id: int) -> None:
        self._runner.cancel(job_id)

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        """The bot is shutting down: stop generating; what is generated still finishes."""
        self._runner.interrupt()

    @ray.method(concurrency_group="control")
    def about(self) -> dict[str, Any]:
        import torch

        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "threads": torch.get_num_threads(),
        }


def _close_when_done(stream: _Stream, work: list[Future]) -> None:
    """Close `stream` once every future in `work` is done (at once if there is none)."""
    remaining = [len(work)]
    lock = threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            stream.close()

    if not work:
        stream.close()
    for future in work:
        future.add_done_callback(one_done)
