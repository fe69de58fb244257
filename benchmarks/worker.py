"""Jobs per hour through the GPU worker when the GPU is the bottleneck: finishing (adherence,
mastering, mp3 and FLAC encoding) on the GPU thread, as before, against on its own thread.

The GPU is simulated: generation sleeps for a fixed time per job, as a CUDA-bound loop leaves the
CPU free; the time defaults to the H100 target for four 30 s candidates (5 s). Everything else
(seed decoding, finishing, files) is the real thing, on this machine's CPU.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bot_overhead import InstantEngine
from benchmarks.pipeline import stereo_mp3
from bot.fair_queue import FairQueue, QueuedJob
from bot.worker.local import GpuWorker
from bot.worker.runner import Engines, Finished, RenderSettings, WorkOrder
from generation.finishing import FinishingThread
from generation.musicgen.models import load_model


class SimulatedGpuEngine(InstantEngine):
    """Audio appears after `gpu_seconds` per batch, with the CPU left free meanwhile."""

    gpu_seconds = 5.0

    def generate_many(self, jobs, on_progress, cancels):
        time.sleep(self.gpu_seconds)
        return super().generate_many(jobs, on_progress, cancels)


class _Count:
    """Worker events that only count endings."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.ended = 0
        self.all_ended = threading.Event()
        self.lock = threading.Lock()

    def _end(self, *_) -> None:
        with self.lock:
            self.ended += 1
            if self.ended == self.expected:
                self.all_ended.set()

    def started(self, job_id: int) -> None: ...
    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None: ...

    def finished(self, outcome: Finished) -> None:
        self._end()

    failed = cancelled = _end


def _run(engine: SimulatedGpuEngine, seed: Path, jobs: int, seconds: float, background: bool) -> float:
    orders = {
        job_id: WorkOrder(job_id, "debug", seed, "lofi", 4, seconds, job_id, 25 * 1024**2)
        for job_id in range(1, jobs + 1)
    }
    queue, events = FairQueue(max_size=jobs), _Count(jobs)
    worker = GpuWorker(
        queue,
        orders.get,
        Engines(lambda model: engine),
        events,
        RenderSettings(),
        max_rows=4,  # one job (four candidates) per batch
        finishing=FinishingThread(max_pending=2, background=background),
    )
    worker.start().result()
    started = time.perf_counter()
    for job_id in orders:
        queue.push(QueuedJob(job_id, job_id, 4, job_id, 1))
    events.all_ended.wait()
    elapsed = time.perf_counter() - started
    worker.stop()
    return elapsed


def worker_throughput(jobs: int = 4, seconds: float = 30.0, gpu_seconds: float = 5.0) -> dict[str, float]:
    engine = SimulatedGpuEngine(load_model("debug", device="cpu"))
    engine.gpu_seconds = gpu_seconds
    with tempfile.TemporaryDirectory() as folder:
        seed = Path(folder) / "theme.mp3"
        seed.write_bytes(stereo_mp3(seconds))
        inline = _run(engine, seed, jobs, seconds, background=False)
        overlapped = _run(engine, seed, jobs, seconds, background=True)
    busy = jobs * gpu_seconds
    return {
        "jobs": jobs,
        "seconds": seconds,
        "gpu_seconds_per_job": gpu_seconds,
        "inline_jobs_per_hour": 3600 * jobs / inline,
        "overlapped_jobs_per_hour": 3600 * jobs / overlapped,
        "inline_gpu_busy": busy / inline,
        "overlapped_gpu_busy": busy / overlapped,
        "speedup": inline / overlapped,
    }
