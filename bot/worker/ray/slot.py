"""One Ray worker's place in the bot: the thread that feeds it and reads what it streams back.

Whenever its worker is free, the slot takes the next fair batch from the pool (the bot's queue),
sends it with the seeds' bytes, and replays the worker's events to the bot. The worker is free
again as soon as its GPU is (`GENERATED`); the rest of that batch's stream (finishing, and the
results' bytes from the object store) is read on a drain thread meanwhile, so the GPU never waits
for the bot. A stream that breaks (`RayError`: the worker died, its node was lost) hands its
unfinished jobs back to the pool; the slot then waits for Ray to start the worker again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from bot.config import WorkersSection
from bot.fair_queue import QueuedJob
from bot.worker.ray.actor import GENERATED, WorkerActor, WorkerSetup
from bot.worker.runner import SEED_GONE, WorkOrder
from generation.errors import RestyleError

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a wait for the worker looks up to see whether the bot is stopping
RELOAD_PAUSES_S = (1.0, 5.0, 30.0)  # between attempts to load a worker's models again
FIRST_LOAD_DEATHS = 3  # a worker that dies this often while first loading stops the bot's start


class SlotPool(Protocol):
    """What a slot needs of its pool (`RayPool`): the queue's batches, the jobs it holds, the bot's events.
    The pool creates its slots; a slot knows the pool only through this, so neither imports the other."""

    workers: WorkersSection
    setup: WorkerSetup
    preload: list[str]
    stopping: threading.Event
    orders: Callable[[int], WorkOrder | None]

    def take(self, slot: WorkerSlot) -> list[QueuedJob]: ...
    def put_back(self, slot: WorkerSlot, jobs: list[QueuedJob]) -> None: ...
    def attempt(self, attempt: object, job_ids: list[int]) -> None: ...
    def replay(self, attempt: object, name: str, args: tuple) -> bool: ...
    def end(self, name: str, job_id: int, *args: Any) -> None: ...
    def release(self, job_id: int) -> None: ...
    def measured(self, seconds_per_step: dict[str, float]) -> None: ...
    def lost(self, slot: WorkerSlot, job_ids: set[int], why: str) -> None: ...


class WorkerSlot:
    def __init__(self, pool: SlotPool, index: int, actor: Any) -> None:
        self.pool = pool
        self.index = index
        self.actor = actor
        self.about: dict[str, Any] = {}  # pid, node and torch threads, as the worker reports them
        self.first_load = threading.Event()  # tried once (pool.start waits for the first slot)
        self.load_error: BaseException | None = None
        self._ready = threading.Event()  # loaded, and not known to have died since
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @classmethod
    def create(cls, pool: SlotPool, index: int) -> WorkerSlot:
        workers = pool.workers
        actor = WorkerActor.options(
            name=None,
            num_cpus=1,  # finishing (mastering, encoding) needs a core beside the GPU
            num_gpus=workers.gpus_per_worker,
            max_restarts=-1,  # a worker that dies is started again, on any node with room
            max_task_retries=0,  # its batches are not: the bot requeues them itself
        ).remote(pool.setup)
        return cls(pool, index, actor)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        self._spawn(self._serve, f"restyle-ray-{self.index}")

    def _spawn(self, target, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    def cancel(self, job_id: int) -> None:
        self.actor.cancel.remote(job_id)  # fire and forget: the job's stream says how it ended

    def interrupt(self) -> None:
        self.actor.stop.remote()

    def kill(self) -> None:
        ray.kill(self.actor, no_restart=True)

    # -- the slot's thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self.pool.stopping.is_set():
            batch: list[QueuedJob] = []
            try:
                if not self._ready.is_set() and not self._load():
                    continue
                batch = self.pool.take(self)
                if batch:
                    self._send(batch)
            except Exception:  # a slot must outlive anything one batch does to it
                log.exception("worker %d: the slot's loop failed; it goes on", self.index)
                self.pool.put_back(self, batch)
                self.pool.stopping.wait(RELOAD_PAUSES_S[0])

    def _load(self) -> bool:
        """Wait for the worker (started, or started again by Ray) to load the models; False if
        it could not, or the bot is stopping."""
        attempt = 0
        while not self.pool.stopping.is_set():
            ref = self.actor.load.remote(self.pool.preload)
            try:
                about = self._wait(ref)
            except RayError as exc:  # died while loading (Ray starts it again), or the models
                attempt += 1  # cannot load there (a missing file, say)
                log.error("worker %d cannot load its models: %s", self.index, ray_cause(exc))
                dead = isinstance(exc, RayActorError)
                if not self.first_load.is_set() and (not dead or attempt >= FIRST_LOAD_DEATHS):
                    self.load_error = exc
                    self.first_load.set()  # start-up fails with the reason
                    return False
            else:
                if about is None:  # the bot is stopping
                    return False
                self.about = about
                log.info("worker %d is ready: %s", self.index, about)
                self._ready.set()
                self.first_load.set()
                return True
            if self.pool.stopping.wait(RELOAD_PAUSES_S[min(attempt, len(RELOAD_PAUSES_S)) - 1]):
                break
        return False

    def _wait(self, ref: Any) -> Any:
        """`ray.get(ref)`, or None once the bot is stopping (a worker may wait long for a GPU)."""
        while not self.pool.stopping.is_set():
            try:
                return ray.get(ref, timeout=POLL_S)
            except GetTimeoutError:
                continue
        return None

    def _send(self, batch: list[QueuedJob]) -> None:
        if not self._ready.is_set():  # died while this batch was being taken: it never left the bot
            self.pool.put_back(self, batch)
            return
        orders = [order for order in (self._with_seed(job.job_id) for job in batch) if order is not None]
        if not orders:
            return
        attempt = object()  # events of this send only: a stream given up on never speaks again
        self.pool.attempt(attempt, [order.job_id for order in orders])
        stream = self.actor.run.remote(orders)
        self._follow(stream, attempt, {order.job_id for order in orders}, until_free=True)

    def _with_seed(self, job_id: int) -> WorkOrder | None:
        """The job's order with its seed's bytes (the bot alone reads the data dir)."""
        order = self.pool.orders(job_id)
        if order is None:  # ended meanwhile
            self.pool.release(job_id)
            return None
        try:
            return replace(order, seed_data=order.seed_path.read_bytes())
        except OSError:  # deleted while queued
            self.pool.end("failed", job_id, job_id, SEED_GONE)
            return None

    def _follow(self, stream: Any, attempt: object, open_jobs: set[int], until_free: bool = False) -> None:
        """Replay `stream`'s events until it ends (or, with `until_free`, until the worker's GPU is
        free: the rest is read on a drain thread); jobs it leaves open go back to the pool."""
        try:
            for ref in stream:
                name, args = ray.get(ref)
                if name == GENERATED:
                    self.pool.measured(args[0])
                    if until_free:
                        self._spawn(
                            self._follow, f"restyle-ray-{self.index}-drain", stream, attempt, open_jobs
                        )
                        return
                    continue
                if self.pool.replay(attempt, name, args):
                    open_jobs.discard(_job_of(name, args))
        except RayError as exc:
            self._ready.clear()  # the serve loop waits for Ray to start the worker again
            self.pool.lost(self, open_jobs, ray_cause(exc))
            return
        if open_jobs:  # the stream ended with jobs untold: only an interrupting stop does that
            self.pool.lost(self, open_jobs, "the worker stopped without finishing them")


def _job_of(name: str, args: tuple) -> int:
    return args[0].job_id if name == "finished" else args[0]


def ray_cause(exc: BaseException) -> str:
    """One line on what went wrong: a worker's own message as it is, or the first line of Ray's."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RestyleError):
        return str(cause)
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
