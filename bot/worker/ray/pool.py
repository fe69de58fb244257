"""Workers on a Ray cluster: one actor per GPU, fed from the bot's fair queue (`[workers] backend = "ray"`).

The bot stays the truth: its fair queue decides what runs next, its database what has happened,
and it alone writes the data dir and talks to Discord. Workers pull: each has a `WorkerSlot` in
the bot that takes the next fair batch whenever its worker is free. Seeds travel to the workers
as bytes, finished files come back through Ray's object store, progress and endings stream back
per batch, and Cancel is an actor call served beside the generation (`bot.worker.ray.actor`).

A worker that dies (its node lost, out of memory, killed) ends its streams with an error: its
unfinished jobs go back to the head of the queue and Ray starts the worker again. A job that was
on two workers when they died fails with a message instead of taking a third one down. Deaths
are counted here, in memory: they are seen by this process, which outlives the workers, and a
restart of the bot starts the count again, which at worst gives a poisonous job two more tries.
A job that was in a batch when its worker died runs alone from then on, so a rider never takes
the blame for another job. With `count = 0` the pool looks at the cluster's GPUs every
`poll_s` seconds and starts a worker for each new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import BotConfig, WorkersSection
from bot.fair_queue import FairQueue, QueuedJob
from bot.worker.loading import Separator
from bot.worker.ray.actor import EVENTS, WorkerSetup
from bot.worker.ray.gcs import CHECK_S, PROBE_S, GcsWatch, reachable
from bot.worker.runner import RenderSettings, WorkerEvents, WorkOrder
from generation.errors import RestyleError
from generation.interface import Engine

if TYPE_CHECKING:
    from bot.worker.ray.slot import WorkerSlot

log = logging.getLogger(__name__)

MAX_DEATHS = 2
KILLED_TWO = "This job stopped two workers (a crash, or out of memory), so it was not run again."
RESOURCE_POLL_S = 30.0
ENDINGS = frozenset({"finished", "failed", "cancelled"})


class WorkerError(RestyleError):
    """The Ray cluster cannot be reached, or no worker could start on it."""


@dataclass
class _Hold:
    job: QueuedJob
    slot: WorkerSlot
    attempt: object | None = None  # the send whose stream may report on the job


def workers_wanted(workers: WorkersSection, resources: dict[str, float]) -> int:
    """`count`, or one worker per `gpus_per_worker` GPUs the cluster has."""
    if workers.count > 0:
        return workers.count
    return int(resources.get("GPU", 0.0) / workers.gpus_per_worker + 1e-9)


class RayPool:
    def __init__(
        self,
        workers: WorkersSection,
        queue: FairQueue,
        orders: Callable[[int], WorkOrder | None],
        events: WorkerEvents,
        setup: WorkerSetup,
    ) -> None:
        self.workers = workers
        self.queue = queue
        self.orders = orders  # thread-safe lookup of a queued job's order
        self.events = events
        self.setup = setup
        self.poll_s = RESOURCE_POLL_S  # how often `count = 0` looks for new GPUs
        self.preload: list[str] = []
        self.stopping = threading.Event()
        self.slots: list[Any] = []
        self.ready: Future = Future()
        self._measured: dict[str, float] = {}
        self._held: dict[int, _Hold] = {}
        self._cancelled: set[int] = set()  # held jobs someone cancelled
        self._early_cancels: set[int] = set()  # cancelled before the pool held them
        self._deaths: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._owner: threading.Thread | None = None
        self._started = threading.Event()  # start-up is over, well or not
        self._done = threading.Event()  # stop() no longer needs Ray
        self._started_ray = False
        self._gcs: GcsWatch | None = None  # once this pool started Ray (a test's own Ray is not watched)

    # -- the pool interface (bot.worker.pool.WorkerPool) -------------------------------------------

    def start(self, preload: list[str] = ()) -> Future:
        if self._owner is None:
            self.preload = list(preload)
            self._owner = threading.Thread(target=self._own_ray, name="restyle-ray", daemon=True)
            self._owner.start()
        return self.ready

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt the workers, read what they still finish, then end them (and Ray, if the
        pool started it)."""
        self.stopping.set()
        self.queue.wake()
        deadline = time.monotonic() + timeout
        if self._owner is not None:
            self._started.wait(timeout)
        for slot in self.slots:
            slot.interrupt()
        for slot in self.slots:
            slot.join(max(0.0, deadline - time.monotonic()))
        for slot in self.slots:
            slot.kill()
        self._done.set()  # the owner shuts Ray down (if it started it) and ends
        if self._owner is not None:
            self._owner.join(max(1.0, deadline - time.monotonic()))

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            hold = self._held.get(job_id)
            if hold is None:
                self._early_cancels.add(job_id)
                return False
            self._cancelled.add(job_id)
        hold.slot.cancel(job_id)
        return True

    @property
    def running(self) -> list[int]:
        with self._lock:
            return list(self._held)

    @property
    def workers_ready(self) -> int:
        """Workers with their models loaded, not known to have died since."""
        return sum(slot.ready for slot in list(self.slots))

    def where(self, job_id: int) -> dict[str, Any] | None:
        """The worker holding `job_id` (pid, node, torch threads), or None."""
        with self._lock:
            hold = self._held.get(job_id)
        return dict(hold.slot.about) if hold is not None else None

    @property
    def seconds_per_step(self) -> dict[str, float]:
        """Per model, as the queue sees it: the workers share the queue, so it moves that much faster."""
        workers = max(1, self.workers_ready)
        with self._lock:
            return {model: seconds / workers for model, seconds in self._measured.items()}

    # -- start-up and growth --------------------------------------------------------------------

    def _own_ray(self) -> None:
        """The `restyle-ray` thread: start, then watch, until stop() is done with Ray."""
        import ray

        started = self._start()
        self._started.set()
        if started:
            self._watch()
        else:
            self._done.wait()
        if self._started_ray:
            ray.shutdown()

    def _start(self) -> bool:
        try:
            resources = self._connect()
            slots = self._grow(resources)
            if not slots:
                log.warning("no room for a worker in the Ray cluster yet: jobs wait until a GPU joins")
            else:
                self._first_ready(slots)
        except Exception as exc:
            self.ready.set_exception(exc)
            return False
        self.ready.set_result(None)
        return True

    def _connect(self) -> dict[str, float]:
        import ray

        if not ray.is_initialized():
            address = self.workers.address or None
            if address is not None and address != "auto":
                _probe(address)  # ray.init would retry an unreachable address for minutes
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise WorkerError(f"Cannot reach the Ray cluster at {address}: {exc}") from exc
            self._started_ray = True
            self._gcs = GcsWatch(ray.get_runtime_context().gcs_address)
        return ray.cluster_resources()

    def _grow(self, resources: dict[str, float]) -> list[Any]:
        from bot.worker.ray.slot import WorkerSlot

        with self._lock:
            if self.stopping.is_set():
                return []
            wanted = workers_wanted(self.workers, resources)
            new = [WorkerSlot.create(self, index) for index in range(len(self.slots), wanted)]
            self.slots += new
        for slot in new:
            slot.start()
        if new:
            log.info("starting %d Ray workers (%d in all)", len(new), len(self.slots))
        return new

    def _first_ready(self, slots: list[Any]) -> None:
        """Wait until a worker has loaded the models; if none can, say why."""
        while not self.stopping.is_set():
            if any(slot.first_load.wait(0.5) and slot.load_error is None for slot in slots):
                return
            if all(slot.first_load.is_set() for slot in slots):
                from bot.worker.ray.slot import ray_cause

                raise WorkerError(f"No Ray worker could load the models: {ray_cause(slots[0].load_error)}")

    def _watch(self) -> None:
        """Until stop() is done: the GCS's health, and with `count = 0`, new GPUs."""
        import ray

        grow_at = time.monotonic() + self.poll_s
        while not self._done.wait(min(CHECK_S, self.poll_s)):
            if self.stopping.is_set():  # stop() is using Ray: no new workers, no verdicts
                continue
            if self._gcs is not None:
                self._gcs.check()
            if self.workers.count == 0 and time.monotonic() >= grow_at:
                grow_at = time.monotonic() + self.poll_s
                try:
                    self._grow(ray.cluster_resources())
                except Exception:  # the cluster is away for a moment: ask again next time
                    log.warning("could not read the Ray cluster's resources", exc_info=True)

    # -- for the slots ------------------------------------------------------------------------------

    def take(self, slot: WorkerSlot) -> list[QueuedJob]:
        """The next fair batch for `slot`'s worker, held for it."""
        batch = self.queue.take(self.setup.max_rows, self.stopping)
        with self._lock:
            struck = [job for job in batch if self._deaths[job.job_id]]
            rest = [job for job in batch if job is not struck[0]] if struck and len(batch) > 1 else []
            batch = [job for job in batch if job not in rest]
            cancelled = [job for job in batch if job.job_id in self._early_cancels]
            for job in batch:
                self._early_cancels.discard(job.job_id)
                if job not in cancelled:
                    self._held[job.job_id] = _Hold(job, slot)
        for job in rest:
            self.queue.push(job, first=True, recovered=True)
        for job in cancelled:
            self.events.cancelled(job.job_id)
        return [job for job in batch if job not in cancelled]

    def put_back(self, slot: WorkerSlot, jobs: list[QueuedJob]) -> None:
        """Jobs `slot` took but could not send (its worker died meanwhile): back first, no strike."""
        with self._lock:
            back = [job for job in jobs if (hold := self._held.get(job.job_id)) and hold.slot is slot]
            for job in back:
                del self._held[job.job_id]
        for job in back:
            self.queue.push(job, first=True, recovered=True)

    def attempt(self, attempt: object, job_ids: list[int]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id in self._held:
                    self._held[job_id].attempt = attempt

    def replay(self, attempt: object, name: str, args: tuple) -> bool:
        """Hand a worker's event to the bot if it comes from the job's current send; True if it
        ended the job."""
        job_id = args[0].job_id if name == "finished" else args[0]
        with self._lock:
            hold = self._held.get(job_id)
            if name not in EVENTS or hold is None or hold.attempt is not attempt:
                return False
        if name in ENDINGS:
            self.end(name, job_id, *args)
            return True
        getattr(self.events, name)(*args)
        return False

    def end(self, name: str, job_id: int, *args: Any) -> None:
        """The job's story with the pool is over: tell the bot (`args` as `WorkerEvents.<name>`)."""
        self.release(job_id)
        getattr(self.events, name)(*args)

    def release(self, job_id: int) -> None:
        with self._lock:
            self._held.pop(job_id, None)
            self._cancelled.discard(job_id)
            self._deaths.pop(job_id, None)

    def measured(self, seconds_per_step: dict[str, float]) -> None:
        with self._lock:
            self._measured.update(seconds_per_step)

    def lost(self, slot: WorkerSlot, job_ids: set[int], why: str) -> None:
        """`slot`'s worker died with `job_ids` unfinished: back to the head of the queue, unless
        cancelled meanwhile, or the job has now been on two workers that died."""
        if self.stopping.is_set():  # a shutdown: the jobs stay 'running' and are requeued at start
            return
        if job_ids:
            log.warning("worker %d was lost (%s); jobs %s", slot.index, why, sorted(job_ids))
        for job_id in sorted(job_ids):
            with self._lock:
                hold = self._held.get(job_id)
                if hold is None or hold.slot is not slot:
                    continue
                cancelled = job_id in self._cancelled
                self._deaths[job_id] += 1
                deaths = self._deaths[job_id]
                if not cancelled and deaths < MAX_DEATHS:
                    del self._held[job_id]
            if cancelled:
                self.end("cancelled", job_id, job_id)
            elif deaths >= MAX_DEATHS:
                log.error("job %d was on %d workers that died: it fails", job_id, deaths)
                self.end("failed", job_id, job_id, KILLED_TWO)
            else:
                self.queue.push(hold.job, first=True, recovered=True)


def _probe(address: str) -> None:
    why = reachable(address, PROBE_S)
    if why is not None:
        raise WorkerError(f"Cannot reach the Ray cluster at {address}: {why.strerror or why}.") from why


def make_ray_pool(
    config: BotConfig,
    queue: FairQueue,
    orders: Callable[[int], WorkOrder | None],
    events: WorkerEvents,
    *,
    settings: RenderSettings,
    load_engine: Callable[[str], Engine],
) -> RayPool:
    """The pool `[workers]` asks for; `load_engine` travels to the workers, so it must pickle."""
    models = config.models
    stems = Separator(models) if models.stems else None
    setup = WorkerSetup(load_engine, settings, config.limits.batch_rows, stems, layers=Separator(models))
    return RayPool(config.workers, queue, orders, events, setup)
