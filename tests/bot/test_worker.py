"""The GPU worker and its finishing thread, driven directly: a real queue, engine, seeds and files.

Finishing (adherence, mastering, encoding) runs beside generation, so the GPU thread starts the
next job meanwhile; a cancel, a failure or a shutdown during finishing must still end each job
exactly once, and only that job.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.fair_queue import FairQueue, QueuedJob
from bot.worker.local import GpuWorker
from bot.worker.runner import Engines, Finished, RenderSettings, WorkOrder
from generation.finishing import FinishingThread
from generation.musicgen.engine import MusicGenEngine
from generation.musicgen.windows import total_steps
from tests.audio_factory import encode_format, melody

WAIT_S = 60.0
SECONDS = 1.0


class Recorder:
    """The worker's events, in the order they arrive; `hold_finished` blocks one job's report."""

    def __init__(self, hold_finished: int | None = None) -> None:
        self.events: list[tuple[str, int, object]] = []
        self.changed = threading.Condition()
        self.hold_finished = hold_finished
        self.release = threading.Event()
        self.saw_while_held: list[tuple[str, int, object]] = []

    def _add(self, kind: str, job_id: int, detail: object = None) -> None:
        with self.changed:
            self.events.append((kind, job_id, detail))
            self.changed.notify_all()

    def started(self, job_id: int) -> None:
        self._add("started", job_id)

    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None:
        self._add("progress", job_id, (done, total))

    def finished(self, outcome: Finished) -> None:
        if outcome.job_id == self.hold_finished:
            self.release.wait(WAIT_S)
            self.saw_while_held = list(self.events)
        self._add("finished", outcome.job_id, outcome)

    def failed(self, job_id: int, message: str) -> None:
        self._add("failed", job_id, message)

    def cancelled(self, job_id: int) -> None:
        self._add("cancelled", job_id)

    def wait_for(self, kind: str, job_id: int, detail: object = None) -> None:
        def seen() -> bool:
            return any(e[0] == kind and e[1] == job_id and detail in (None, e[2]) for e in self.events)

        with self.changed:
            assert self.changed.wait_for(seen, WAIT_S), (
                f"no {kind} for job {job_id}; last: {self.events[-3:]}"
            )

    def endings(self) -> dict[int, list[str]]:
        ends: dict[int, list[str]] = {}
        for kind, job_id, _ in self.events:
            if kind in ("finished", "failed", "cancelled"):
                ends.setdefault(job_id, []).append(kind)
        return ends


@pytest.fixture
def seed_path(tmp_path: Path) -> Path:
    path = tmp_path / "seed.mp3"
    path.write_bytes(encode_format("mp3", melody([392.0, 440.0], 0.5, 44_100)))
    return path


def _worker(debug_lm, events: Recorder, orders: dict[int, WorkOrder], **options) -> GpuWorker:
    queue = FairQueue(max_size=10)
    worker = GpuWorker(
        queue,
        orders.get,
        Engines(lambda model: MusicGenEngine(debug_lm, "fast")),
        events,
        RenderSettings(progress_interval_s=0.0),
        max_rows=1,  # one job per batch: each test's jobs run one after the other
        **options,
    )
    for order in orders.values():
        queue.push(QueuedJob(order.job_id, order.job_id, order.candidates, order.job_id, 50))
    return worker


def _order(job_id: int, seed_path: Path, upload_limit: int = 25 * 1024**2) -> WorkOrder:
    return WorkOrder(job_id, "debug", seed_path, "lofi piano", 1, SECONDS, 7, upload_limit)


def test_the_next_job_generates_while_the_last_one_is_finished(debug_lm, seed_path):
    events = Recorder(hold_finished=1)
    orders = {1: _order(1, seed_path), 2: _order(2, seed_path)}
    worker = _worker(debug_lm, events, orders)
    worker.start()
    try:
        events.wait_for("progress", 2, (total_steps(SECONDS), total_steps(SECONDS)))
        events.release.set()
        events.wait_for("finished", 2)
    finally:
        events.release.set()
        worker.stop()
    assert ("started", 2, None) in events.saw_while_held  # job 1's report waited; the GPU did not
    assert events.endings() == {1: ["finished"], 2: ["finished"]}
    outcome = next(detail for kind, job_id, detail in events.events if kind == "finished" and job_id == 2)
    assert outcome.rendered[0].data[:3] == b"ID3" and outcome.rendered[0].lossless[:4] == b"fLaC"


def test_a_cancel_between_generation_and_finishing_drops_the_results(debug_lm, seed_path):
    events = Recorder(hold_finished=1)  # job 2 waits behind job 1 for the finishing thread
    orders = {1: _order(1, seed_path), 2: _order(2, seed_path)}
    worker = _worker(debug_lm, events, orders)
    worker.start()
    try:
        events.wait_for("progress", 2, (total_steps(SECONDS), total_steps(SECONDS)))
        assert worker.cancel(2) is True  # still the worker's: generated, not yet finished
        events.release.set()
        events.wait_for("cancelled", 2)
    finally:
        events.release.set()
        worker.stop()
    assert events.endings() == {1: ["finished"], 2: ["cancelled"]}
    assert worker.running == []


def test_a_job_that_cannot_be_finished_fails_alone(debug_lm, seed_path):
    events = Recorder()
    orders = {1: _order(1, seed_path, upload_limit=1_000), 2: _order(2, seed_path)}
    worker = _worker(debug_lm, events, orders)
    worker.start()
    try:
        events.wait_for("finished", 2)
    finally:
        worker.stop()
    assert events.endings() == {1: ["failed"], 2: ["finished"]}
    message = next(detail for kind, job_id, detail in events.events if kind == "failed")
    assert "upload limit" in message and "\n" not in message


def test_a_shutdown_keeps_results_already_generated(debug_lm, seed_path):
    events = Recorder(hold_finished=1)
    orders = {1: _order(1, seed_path), 2: _order(2, seed_path)}
    worker = _worker(debug_lm, events, orders)
    worker.start()
    events.wait_for("progress", 2, (total_steps(SECONDS), total_steps(SECONDS)))
    stopping = threading.Thread(target=worker.stop)
    stopping.start()
    time.sleep(0.2)
    assert stopping.is_alive()  # stop waits for the finishing thread...
    events.release.set()
    stopping.join(WAIT_S)
    assert not stopping.is_alive()
    assert events.endings() == {1: ["finished"], 2: ["finished"]}  # ...which keeps both results


def test_jobs_the_engine_cannot_batch_run_one_after_the_other(debug_lm, seed_path):
    """The queue batches by key, the engine has the last word: the reference backend cannot mix
    prompts, so two jobs of one key that were taken together still both finish."""
    events = Recorder()
    orders = {1: _order(1, seed_path), 2: _order(2, seed_path)}
    queue = FairQueue(max_size=10)
    engines = Engines(lambda model: MusicGenEngine(debug_lm, "reference"))
    settings = RenderSettings(progress_interval_s=0.0)
    worker = GpuWorker(queue, orders.get, engines, events, settings, max_rows=2)
    for order in orders.values():
        queue.push(QueuedJob(order.job_id, order.job_id, order.candidates, "one key", 50))
    worker.start()
    try:
        events.wait_for("finished", 1)
        events.wait_for("finished", 2)
    finally:
        worker.stop()
    assert events.endings() == {1: ["finished"], 2: ["finished"]}
    assert [job_id for kind, job_id, _ in events.events if kind == "started"] == [1, 2]


def test_finishing_waits_for_a_free_place():
    finishing = FinishingThread(max_pending=1)
    gate = threading.Event()
    first = finishing.submit(lambda: gate.wait(WAIT_S))
    second_submitted = threading.Event()

    def submit_second() -> None:
        finishing.submit(lambda: "second").result()
        second_submitted.set()

    helper = threading.Thread(target=submit_second)
    helper.start()
    assert not second_submitted.wait(0.2)  # the only place is taken
    gate.set()
    assert first.result(WAIT_S) is True
    assert second_submitted.wait(WAIT_S)
    helper.join()
    finishing.close()


def test_finishing_inline_runs_at_once_and_keeps_errors():
    finishing = FinishingThread(max_pending=1, background=False)
    ran_on: list[str] = []
    done = finishing.submit(lambda: ran_on.append(threading.current_thread().name))
    assert done.done() and ran_on == [threading.current_thread().name]
    failed = finishing.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result()
