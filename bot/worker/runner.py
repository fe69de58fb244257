"""What happens to one batch of jobs on the thread that owns the GPU: the engine, then finishing.

Each generated job is handed to a finishing thread (adherence, mastering, encoding) so the GPU
can start the next batch meanwhile. Neither thread touches Discord or the event loop directly:
everything they have to say goes through `WorkerEvents` (the bot marshals those onto the loop);
everything they need arrives in a `WorkOrder`.
Progress is throttled here, so the loop hears of it at most once per interval per job.

`BatchRunner` is what happens to one batch; `GpuWorker` (bot.worker.local) feeds it from the fair
queue on a thread of its own. A Ray worker (`bot.worker.ray.actor`) runs the same `BatchRunner` on
another machine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from bot.worker.failures import SERVER_SIDE, member_message
from generation.audio.decode import AudioLimits, SeedAudio
from generation.audio.mastering import MasteringOptions
from generation.errors import (
    GenerationCancelled,
    InvalidRequestError,
    RestyleError,
)
from generation.finishing import FinishingThread
from generation.interface import CancelToken, Engine
from generation.layers import with_layers
from generation.loops import Looped, LoopInfo, LoopOptions, PreparedLoop, prepare_loop
from generation.pipeline import Prepared, decode_seed, finish, prepare
from generation.render import Rendered, render_candidates
from generation.results import Restyled, RestyleOptions

log = logging.getLogger(__name__)

# Saved seeds were checked against the bot's limits when they arrived; this only guards the worker.
SAVED_SEED_LIMITS = AudioLimits(max_bytes=2**34, max_seconds=3600.0)
LOOP_SLACK_S = 0.01
SEED_GONE = "The seed file is no longer available (it may have expired): start a new /restyle."


@dataclass(frozen=True)
class WorkOrder:
    """What the worker needs to run one job; the bot builds it from the job's row."""

    job_id: int
    model: str
    seed_path: Path
    prompt: str
    candidates: int
    duration_s: float
    base_seed: int
    upload_limit: int  # bytes of files one results message may carry
    stems: bool = False
    loop: LoopOptions | None = None  # a loop's, with the bars planned at admission
    layers: bool = False  # a loop's layers too (separated on the GPU thread)
    # The family's parameters the job sets (ACE-Step's `strength`); the engine's defaults for the rest.
    params: dict[str, Any] = field(default_factory=dict)
    # The seed file's bytes, for a worker on another machine (which cannot read the data dir).
    seed_data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Prepared:
    order: WorkOrder
    prepared: Prepared
    seed: SeedAudio
    loop: PreparedLoop | None = None  # what folds a loop's generated audio into the loop


@dataclass(frozen=True)
class Finished:
    job_id: int
    rendered: list[Rendered]  # what is posted (mp3s), each with its lossless copy
    # A loop's WAVs, one per candidate, with their loop points (the `smpl` chunk Godot's import
    # reads) and their layers when asked.
    game: list[Rendered] = field(default_factory=list)


class WorkerEvents(Protocol):
    """Called from the worker's threads; implementations hand each call over to the event loop."""

    def started(self, job_id: int) -> None: ...
    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None: ...
    def finished(self, outcome: Finished) -> None: ...
    def failed(self, job_id: int, message: str) -> None: ...
    def cancelled(self, job_id: int) -> None: ...


@dataclass(frozen=True)
class RenderSettings:
    format_name: str = "mp3"
    bitrate: int = 192_000
    mastering: MasteringOptions = field(default_factory=MasteringOptions)
    progress_interval_s: float = 5.0


class Engines:
    """Loaded engines by model name: loaded on first use, kept warm. Worker thread only."""

    def __init__(self, load: Callable[[str], Engine]) -> None:
        self._load = load
        self._engines: dict[str, Engine] = {}

    def get(self, model: str) -> Engine:
        engine = self._engines.get(model)
        if engine is None or engine.broken:  # a device error marked it: load it afresh
            self._engines.pop(model, None)
            engine = self._engines[model] = self._load(model)
        return engine


class BatchRunner:
    """Runs one batch at a time for its caller: decodes the seeds, generates, and hands each
    generated job to the finishing thread, which reports it. Cancel and stop from any thread."""

    def __init__(
        self,
        engines: Engines,
        events: WorkerEvents,
        settings: RenderSettings,
        *,
        max_rows: int = 8,
        separate: Callable | None = None,
        layer_separator: Callable[[], Any] | None = None,
        finishing: FinishingThread | None = None,
    ) -> None:
        self.engines = engines
        self.events = events
        self.settings = settings
        self.max_rows = max_rows
        self.separate = separate
        # The `StemSeparator` a loop's layers are split with, loaded on first use (GPU thread only).
        self.layer_separator = layer_separator
        # Room for a whole batch while the previous one is still being finished.
        self.finishing = finishing or FinishingThread(max_pending=max(2, max_rows))
        self._stop = threading.Event()
        self._tokens: dict[int, CancelToken] = {}
        self._early_cancels: set[int] = set()  # asked for between leaving the queue and starting
        self._lock = threading.Lock()
        self.seconds_per_step: dict[str, float] = {}  # measured, per model

    # -- control, from any thread --------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the batch being generated at its next step, for a shutdown: its jobs end without
        a word (they stay 'running' and are requeued at start); jobs already generated finish."""
        self._stop.set()
        with self._lock:
            for token in self._tokens.values():
                token.cancel()

    def cancel(self, job_id: int) -> bool:
        """Stop a running job within a step (or drop it before finishing). A job taken from the
        queue but not yet started is stopped as it starts; returns whether it was already running."""
        with self._lock:
            token = self._tokens.get(job_id)
            if token is None:
                self._early_cancels.add(job_id)
                return False
        token.cancel()
        return True

    @property
    def running(self) -> list[int]:
        with self._lock:
            return list(self._tokens)

    # -- one batch, on the caller's thread ------------------------------------------------------

    def run(self, orders: list[WorkOrder]) -> list[Future]:
        """Generate `orders` (in as many runs as the engine needs); returns once the GPU is free
        again, with the finishing work still to come (each job reports its own ending from there)."""
        with self._lock:
            for order in orders:
                self._tokens[order.job_id] = token = CancelToken()
                if order.job_id in self._early_cancels:
                    self._early_cancels.discard(order.job_id)
                    token.cancel()
        handed_over: dict[int, Future] = {}  # the finishing thread reports on these, and forgets them
        try:
            self._generate(orders, handed_over)
        except Exception as exc:  # a job must fail with a message, never kill the worker
            log.exception("jobs %s failed", [order.job_id for order in orders])
            for order in orders:
                if order.job_id not in handed_over:
                    self.events.failed(order.job_id, member_message(exc))
        finally:
            for order in orders:
                if order.job_id not in handed_over:
                    self._forget(order.job_id)
        return list(handed_over.values())

    def _forget(self, job_id: int) -> None:
        with self._lock:
            self._tokens.pop(job_id, None)

    def _generate(self, orders: list[WorkOrder], handed_over: dict[int, Future]) -> None:
        engine = self.engines.get(orders[0].model)
        prepared = [item for item in (self._prepare(engine, order) for order in orders) if item is not None]
        for group in _batches(engine, prepared):
            self._generate_batch(engine, group, handed_over)

    def _generate_batch(
        self, engine: Engine, prepared: list[_Prepared], handed_over: dict[int, Future]
    ) -> None:
        """One `generate_many` call; each generated job goes to the finishing thread."""
        for item in prepared:
            self.events.started(item.order.job_id)
        started = time.perf_counter()
        with self._lock:
            tokens = [self._tokens[item.order.job_id] for item in prepared]
        outcomes = engine.generate_many(
            [item.prepared.job for item in prepared],
            [self._reporter(item.order.job_id, started) for item in prepared],
            tokens,
        )
        elapsed = time.perf_counter() - started
        job = prepared[0].prepared.job
        self.seconds_per_step[prepared[0].order.model] = elapsed / max(
            1, engine.total_steps(job.duration_s, job.params)
        )
        for item, outcome in zip(prepared, outcomes, strict=True):
            if isinstance(outcome, GenerationCancelled):
                if not self._stop.is_set():  # a shutdown leaves the job to be run again
                    self.events.cancelled(item.order.job_id)
                continue
            try:
                layered = self._layered(engine, item, outcome, elapsed)
            except Exception as exc:  # this job fails; the batch's others go on
                log.exception("job %d: the layers could not be separated", item.order.job_id)
                self.events.failed(item.order.job_id, member_message(exc))
                continue
            finishing = self.finishing.submit(partial(self._finish, engine, item, outcome, elapsed, layered))
            handed_over[item.order.job_id] = finishing

    def _layered(self, engine: Engine, item: _Prepared, audio, elapsed: float) -> Looped | None:
        """A loop asked with layers, folded and separated here: the separator runs on the model's
        device, and only this thread may use it. None for every other job (finished elsewhere)."""
        if not item.order.layers or item.loop is None or self._cancelled_meanwhile(item.order.job_id):
            return None  # (a job cancelled meanwhile is reported so by the finishing thread)
        if self.layer_separator is None:
            raise InvalidRequestError("This worker has no stem separator, so it cannot make layers.")
        looped = item.loop.looped(finish(engine, item.prepared, audio, {"generation_s": elapsed}))
        return with_layers(looped, self.layer_separator())

    def _finish(
        self, engine: Engine, item: _Prepared, audio, elapsed: float, layered: Looped | None = None
    ) -> None:
        """On the finishing thread: render one generated job, unless cancelled meanwhile, and report."""
        job_id = item.order.job_id
        try:
            finished = (
                None
                if self._cancelled_meanwhile(job_id)
                else self._render(engine, item, audio, elapsed, layered)
            )
        except Exception as exc:
            log.exception("job %d could not be finished", job_id)
            self._forget(job_id)
            self.events.failed(job_id, member_message(exc))
            return
        cancelled = self._cancelled_meanwhile(job_id)
        self._forget(job_id)
        if finished is None or cancelled:
            self.events.cancelled(job_id)
        else:
            self.events.finished(finished)

    def _cancelled_meanwhile(self, job_id: int) -> bool:
        """Cancelled by someone since generation ended. A shutdown's cancel does not count: the
        work is done, and finishing it keeps the results."""
        with self._lock:
            token = self._tokens.get(job_id)
        return token is not None and token.cancelled and not self._stop.is_set()

    def _render(
        self, engine: Engine, item: _Prepared, audio, elapsed: float, layered: Looped | None = None
    ) -> Finished:
        """Files that share one message's upload budget; if even the lowest bitrate cannot do
        that, files that each fit a message of their own (the bot then posts several). A loop's
        WAVs (and layers) besides: lossless whatever their size, sent privately on request."""
        looped = layered
        if looped is None:
            result = finish(engine, item.prepared, audio, {"generation_s": elapsed})
            looped = item.loop.looped(result) if item.loop is not None else None
        if looped is not None:
            result = looped.result
        loop = replace(looped.info, stems=()) if looped is not None else None  # previews: no layers
        budget = item.order.upload_limit
        try:
            rendered = self._encode(engine, item, result, budget // max(1, len(result.candidates)), loop)
        except InvalidRequestError:
            rendered = self._encode(engine, item, result, budget, loop)
        game = [] if looped is None else self._game_files(engine, item, looped)
        return Finished(item.order.job_id, rendered, game)

    def _game_files(self, engine: Engine, item: _Prepared, looped: Looped) -> list[Rendered]:
        """Each candidate as a WAV with its loop points (`smpl`: what Godot reads), and its layers."""
        return render_candidates(
            looped.result,
            engine,
            item.seed,
            name=f"restyle-{item.order.job_id}",
            format_name="wav",
            mastering=self.settings.mastering,
            loop=looped.info,
        )

    def _encode(
        self, engine: Engine, item: _Prepared, result: Restyled, max_bytes: int, loop: LoopInfo | None
    ) -> list[Rendered]:
        return render_candidates(
            result,
            engine,
            item.seed,
            name=f"restyle-{item.order.job_id}",
            format_name=self.settings.format_name,
            mastering=self.settings.mastering,
            max_bytes=max_bytes,
            bitrate=self.settings.bitrate,
            lossless=True,
            loop=loop,
        )

    def _prepare(self, engine: Engine, order: WorkOrder) -> _Prepared | None:
        """Decode the saved seed and build the engine job; a bad seed fails only its own job."""
        source = order.seed_path if order.seed_data is None else order.seed_data
        if order.seed_data is None and not order.seed_path.is_file():  # deleted while queued
            self.events.failed(order.job_id, SEED_GONE)  # (its path is no one's business)
            return None
        try:
            seed = decode_seed(source, SAVED_SEED_LIMITS, engine)
            stems = order.stems and self.separate is not None
            # A loop's bars were planned (within the limit) at admission: its length in whole
            # samples may differ from its bars' in the last digits, which must not fail it now.
            most = order.duration_s + (LOOP_SLACK_S if order.loop is not None else 0.0)
            params = _params(engine, order.params)
            options = RestyleOptions(order.candidates, order.duration_s, most, order.base_seed, params, stems)
            if order.loop is None:
                ready = prepare(engine, seed, order.prompt, options, separate=self.separate)
                return _Prepared(order, ready, seed)
            loop = prepare_loop(engine, seed, order.prompt, options, order.loop, separate=self.separate)
            return _Prepared(order, loop.prepared, seed, loop)
        except RestyleError as exc:
            if isinstance(exc, SERVER_SIDE):
                log.error("job %d: %s", order.job_id, exc)
            self.events.failed(order.job_id, member_message(exc))
            return None

    def _reporter(self, job_id: int, started: float) -> Callable[[int, int], None]:
        interval = self.settings.progress_interval_s
        last = [-interval]

        def report(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] < interval and done < total:
                return
            last[0] = now
            elapsed = now - started
            left = elapsed / done * (total - done) if done else None
            self.events.progress(job_id, done, total, left)

        return report


def _batches(engine: Engine, prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """The jobs the queue took together, in runs the engine can generate as one: the queue's batch
    key is known before loading anything, the engine knows more (the reference backend mixes no
    prompts; ACE-Step's prompts must be as long in tokens)."""
    batches: list[list[_Prepared]] = []
    for item in prepared:
        fits = (b for b in batches if engine.can_batch(b[0].prepared.job, item.prepared.job))
        batch = next(fits, None)
        if batch is None:
            batches.append([item])
        else:
            batch.append(item)
    return batches


def _params(engine: Engine, values: dict[str, Any]) -> Any:
    """The engine's default parameters with the job's `values` in place, checked (None: the defaults)."""
    if not values:
        return None
    params = replace(engine.default_params, **values)
    params.validate()
    return params
