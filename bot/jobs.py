"""The job board: the only memory the bot keeps of a job between its rows in the database.

While a job is active the board holds its work order (what the worker reads, from any thread), the
interaction its results can follow up, its progress, who cancelled it, and the lock that keeps its
events in order; `forget` drops it all when the job's story ends. The board also puts jobs in the
fair queue and answers for the queue's waits (position, ETA). The database stays the truth: after
a restart the board is rebuilt from it (`RestyleBot.restore_jobs`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import discord

from bot.fair_queue import FairQueue, QueuedJob, QueueFull
from bot.loop_jobs import work_loop
from bot.models import JobRow
from bot.replies import upload_budget
from bot.worker.runner import WorkOrder
from generation.families import family_for


class JobBoard:
    def __init__(
        self,
        queue: FairQueue,
        seconds_per_step: Callable[[str | None, float], float],
        *,
        stems: bool,
    ) -> None:
        self.queue = queue
        # A model's measured pace, or a first guess for a job of that length (model, seconds).
        self._seconds_per_step = seconds_per_step
        self._stems = stems
        self._orders: dict[int, WorkOrder] = {}
        self._orders_lock = threading.Lock()  # the worker reads orders from its own thread
        self._interactions: dict[int, discord.Interaction] = {}  # for posting results as a follow-up
        self._progress: dict[int, tuple[int, int]] = {}
        self._cancelled_by: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    # -- the queue -----------------------------------------------------------------------------

    def enqueue(self, job: JobRow, *, first: bool = False, recovered: bool = False) -> bool:
        """Write the job's work order and queue it; False (and nothing kept) if the queue is full."""
        order = WorkOrder(
            job.id,
            job.model,
            Path(job.seed_path),
            job.prompt,
            job.candidates,
            job.duration_s,
            job.base_seed,
            upload_budget(job.upload_limit),
            self._stems,
            work_loop(job),
            layers=job.loop_layers,
            params=job.params,
        )
        with self._orders_lock:
            self._orders[job.id] = order
        family = family_for(job.model)
        params = family.make_params(**job.params)  # (a batch shares them: the key holds them)
        key = family.batch_key(job.model, job.generated_s, params)
        steps = family.total_steps(job.generated_s, params)
        try:
            self.queue.push(
                QueuedJob(job.id, job.user_id, job.candidates, key, steps),
                first=first,
                recovered=recovered,
            )
        except QueueFull:
            self.forget(job.id)
            return False
        return True

    def dequeue(self, job_id: int) -> bool:
        """Take a job out of the queue; False if it was not waiting there (running, or unknown)."""
        return self.queue.remove(job_id) is not None

    def order(self, job_id: int) -> WorkOrder | None:
        """The worker's lookup (any thread)."""
        with self._orders_lock:
            return self._orders.get(job_id)

    def position(self, job_id: int) -> int | None:
        return self.queue.position(job_id)

    def eta(self, job_id: int) -> float | None:
        """Seconds until `job_id` is done: what runs now, what waits before it, and itself, each
        job's steps at its own model's pace (ACE-Step's 8 steps are each far longer than MusicGen's)."""
        seconds = sum(
            (total - done) * self._per_step(running) for running, (done, total) in self._progress.items()
        )
        for queued in self.queue.ordered():
            seconds += queued.steps * self._per_step(queued.job_id)
            if queued.job_id == job_id:
                return seconds
        return None

    def _per_step(self, job_id: int) -> float:
        order = self.order(job_id)
        if order is None:
            return self._seconds_per_step(None, 30.0)
        return self._seconds_per_step(order.model, order.duration_s)

    # -- what the event loop remembers of an active job ------------------------------------------

    def admitted(self, job_id: int, interaction: discord.Interaction) -> None:
        """The request's interaction: its results go out as a follow-up while it lives."""
        self._interactions[job_id] = interaction

    def interaction(self, job_id: int) -> discord.Interaction | None:
        return self._interactions.get(job_id)

    def follow_up_gone(self, job_id: int) -> None:
        """The interaction expired: later parts go to the channel."""
        self._interactions.pop(job_id, None)

    def progress(self, job_id: int, done: int, total: int) -> None:
        self._progress[job_id] = (done, total)

    def cancelling(self, job_id: int, who: str) -> None:
        self._cancelled_by[job_id] = who

    def cancelled_by(self, job_id: int) -> str:
        """Who pressed Cancel (once: the name is dropped as it is read)."""
        return self._cancelled_by.pop(job_id, "its owner")

    def lock(self, job_id: int) -> asyncio.Lock:
        """The job's event lock: one event at a time, in order (a late progress edit never
        overwrites "done")."""
        return self._locks.setdefault(job_id, asyncio.Lock())

    def drop_lock(self, job_id: int) -> None:
        self._locks.pop(job_id, None)

    def forget(self, job_id: int) -> None:
        """The job left the queue and the GPU for good: its order, interaction, progress and
        canceller go (a Cancel pressed as the job finished anyway is never read)."""
        with self._orders_lock:
            self._orders.pop(job_id, None)
        self._interactions.pop(job_id, None)
        self._progress.pop(job_id, None)
        self._cancelled_by.pop(job_id, None)
