"""Where jobs are generated: the worker pool behind one interface, chosen in `[workers]`.

    local  `bot.worker.local.GpuWorker`: one thread in the bot's process owns the GPU (the default)
    ray    `bot.worker.ray.pool.RayPool`: one actor per GPU on a Ray cluster

Either way the bot's fair queue and its database stay the truth: a pool takes batches from the
queue when it has a free worker and reports each job through `WorkerEvents`; it never writes the
data dir or talks to Discord.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol


class WorkerPool(Protocol):
    """What the bot asks of its workers (from the event loop's thread or any other)."""

    seconds_per_step: dict[str, float]  # measured, per model: for queue ETAs

    def start(self, preload: list[str] = ()) -> Future:
        """Start taking jobs; the future resolves once the `preload` models are loaded (or fails
        with the reason they cannot be)."""
        ...

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and interrupt those running (they stay 'running' and are requeued at
        start); results already generated are finished and reported first."""
        ...

    def cancel(self, job_id: int) -> bool:
        """Stop a job the pool holds within a few steps; False if it holds no such job (it is then
        stopped should it start)."""
        ...

    @property
    def running(self) -> list[int]:
        """Jobs the pool holds now."""
        ...
