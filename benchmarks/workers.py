"""Jobs per hour through the worker pools: the local worker against 1, 2 and 4 Ray workers.

The GPU is simulated as in `benchmarks.worker`: generation sleeps for a fixed time per job,
leaving the CPU free, and everything else (seed decoding, mastering, mp3 and FLAC encoding,
the transport) is real. The Ray workers run on a local Ray instance on this machine, so their
finishing shares its cores with the bot: on a real cluster each GPU node brings its own. That is
why the jobs per hour are measured on short seeds: finishing four 30 s candidates takes a core
about 3.5 s here, so four workers at 5 s per job would need three cores of a two-core machine
and measure the machine, not the pool.
The transport's overhead is the extra time one job of 30 s takes, alone, through one Ray worker
rather than through the local worker, with an instant GPU.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.pipeline import stereo_mp3
from benchmarks.worker import SimulatedGpuEngine
from bot.config import WorkersSection
from bot.fair_queue import FairQueue, QueuedJob
from bot.worker.local import GpuWorker
from bot.worker.runner import Engines, Finished, RenderSettings, WorkOrder
from generation.musicgen.models import load_model

UPLOAD = 25 * 1024**2
CANDIDATES = 4


@dataclass(frozen=True)
class SimulatedGpuLoader:
    """Loads, in whichever process asks (a Ray worker), the debug model behind a simulated GPU."""

    gpu_seconds: float

    def __call__(self, model: str) -> SimulatedGpuEngine:
        engine = SimulatedGpuEngine(load_model("debug", device="cpu"))
        engine.gpu_seconds = self.gpu_seconds
        return engine


class Endings:
    """Worker events that count endings and time each job from its push to its ending."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.ended: dict[int, float] = {}
        self.failures: list[str] = []

    def _end(self, job_id: int) -> None:
        with self.lock:
            self.ended[job_id] = time.perf_counter()
            self.lock.notify_all()

    def wait(self, count: int, timeout: float = 600.0) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.ended) >= count, timeout):
                raise TimeoutError(f"{len(self.ended)} of {count} jobs ended")
        if self.failures:
            raise RuntimeError(f"jobs failed: {self.failures[:2]}")

    def started(self, job_id: int) -> None: ...
    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None: ...

    def finished(self, outcome: Finished) -> None:
        self._end(outcome.job_id)

    def failed(self, job_id: int, message: str) -> None:
        self.failures.append(message)
        self._end(job_id)

    def cancelled(self, job_id: int) -> None:
        self._end(job_id)


class Bench:
    """Jobs pushed into a fair queue and run through a pool, as the bot would."""

    def __init__(self, seed: Path, seconds: float) -> None:
        self.seed, self.seconds = seed, seconds
        self.next_id = 1

    def orders(self, count: int) -> dict[int, WorkOrder]:
        ids = range(self.next_id, self.next_id + count)
        self.next_id += count
        return {i: WorkOrder(i, "debug", self.seed, "lofi", CANDIDATES, self.seconds, i, UPLOAD) for i in ids}

    def run(self, pool, queue: FairQueue, events: Endings, orders: dict[int, WorkOrder], one_by_one: bool):
        """Seconds for all of `orders` (or, one by one, the median seconds per job)."""
        started = time.perf_counter()
        times = []
        for job_id in orders:
            pushed = time.perf_counter()
            queue.push(QueuedJob(job_id, job_id, CANDIDATES, job_id, 1))
            if one_by_one:
                events.wait(len(events.ended) + 1)
                times.append(events.ended[job_id] - pushed)
        events.wait(len(orders))
        return statistics.median(times) if one_by_one else time.perf_counter() - started


def _local(bench: Bench, gpu_seconds: float, jobs: int, one_by_one: bool) -> float:
    orders, queue, events = bench.orders(jobs), FairQueue(max_size=jobs), Endings()
    engines = Engines(SimulatedGpuLoader(gpu_seconds))
    worker = GpuWorker(queue, orders.get, engines, events, RenderSettings(), max_rows=CANDIDATES)
    worker.start(["debug"]).result()
    try:
        return bench.run(worker, queue, events, orders, one_by_one)
    finally:
        worker.stop()


def _ray(bench: Bench, workers: int, gpu_seconds: float, jobs: int, one_by_one: bool) -> float:
    from bot.worker.ray.actor import WorkerSetup
    from bot.worker.ray.pool import RayPool

    orders, queue, events = bench.orders(jobs), FairQueue(max_size=jobs), Endings()
    setup = WorkerSetup(SimulatedGpuLoader(gpu_seconds), RenderSettings(), max_rows=CANDIDATES)
    section = WorkersSection(backend="ray", count=workers, gpus_per_worker=0)
    pool = RayPool(section, queue, orders.get, events, setup)
    pool.start(["debug"]).result()
    deadline = time.monotonic() + 300
    while pool.workers_ready < workers and time.monotonic() < deadline:  # all loaded before timing
        time.sleep(0.2)
    try:
        return bench.run(pool, queue, events, orders, one_by_one)
    finally:
        pool.stop()


def workers_throughput(
    jobs: int = 12,
    seconds: float = 4.0,
    gpu_seconds: float = 5.0,
    counts: tuple[int, ...] = (1, 2, 4),
    transport_seconds: float = 30.0,
) -> dict[str, object]:
    import ray

    ray.init(num_cpus=max(counts), include_dashboard=False, object_store_memory=300 * 1024**2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            bench = _bench(Path(folder), seconds)
            local = _local(bench, gpu_seconds, jobs, one_by_one=False)
            pools = {count: _ray(bench, count, gpu_seconds, jobs, one_by_one=False) for count in counts}
            transport = _transport_overhead(_bench(Path(folder), transport_seconds))
    finally:
        ray.shutdown()
    per_hour = {count: 3600 * jobs / elapsed for count, elapsed in pools.items()}
    return {
        "jobs": jobs,
        "seconds": seconds,
        "transport_seconds": transport_seconds,
        "gpu_seconds_per_job": gpu_seconds,
        "local_jobs_per_hour": 3600 * jobs / local,
        "ray_jobs_per_hour": per_hour,
        "speedup_over_one_ray_worker": {
            count: rate / per_hour[counts[0]] for count, rate in per_hour.items()
        },
        **transport,
    }


def _bench(folder: Path, seconds: float) -> Bench:
    seed = folder / f"theme-{seconds:g}s.mp3"
    seed.write_bytes(stereo_mp3(seconds))
    return Bench(seed, seconds)


def _transport_overhead(bench: Bench, jobs: int = 6) -> dict[str, float]:
    """One job at a time, instant GPU: the local worker against one Ray worker, both finishing
    on one thread (a Ray worker with one CPU gets one torch thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = _local(bench, 0.0, jobs, one_by_one=True)
    finally:
        torch.set_num_threads(threads)
    ray = _ray(bench, 1, 0.0, jobs, one_by_one=True)
    return {"local_s_per_job": local, "ray_s_per_job": ray, "transport_ms_per_job": 1000 * (ray - local)}
