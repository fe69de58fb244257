"""The engine: a loaded model, a melody and a prompt in; candidate audio out.

Synchronous on purpose (audiocraft's split): whoever owns the model calls it from one thread, with a
progress hook called from that thread and a cancel token checked every step. Nothing here is shared
state: every parameter travels with the job.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from generation.audio.chroma import conditioning_chroma
from generation.errors import DeviceFailedError, GenerationCancelled, InvalidRequestError
from generation.musicgen.backends import Backend, WindowBatch
from generation.musicgen.backends.device import device_scope
from generation.musicgen.backends.reference import ReferenceBackend
from generation.musicgen.codec import decode_codes
from generation.musicgen.models import LoadedModel
from generation.musicgen.sampling import SamplingParams
from generation.musicgen.windows import MAX_WINDOW_S, STRIDE_S, Window, plan_windows

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
BACKENDS = ("auto", "fast", "reference")


class CancelToken:
    """Set from any thread; the generating thread stops at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class Job:
    """One request: its candidates share prompt, melody and length, and differ by seed."""

    prompt: str
    melody: np.ndarray  # mono float32 at the model's rate: the chroma is taken from it
    seeds: tuple[int, ...]
    duration_s: float
    sampling: SamplingParams = field(default_factory=SamplingParams)


class Engine:
    """Generates with one loaded model. Not thread-safe: one thread owns it."""

    def __init__(self, lm: LoadedModel, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise InvalidRequestError(f"Unknown backend {backend!r}: use {', '.join(BACKENDS)}.")
        self.lm = lm
        self.backend = _make_backend(lm, backend)
        self.broken = False  # set after a device error that outlives the job: rebuild before reuse

    def plan(self, duration_s: float) -> list[Window]:
        rate = self.lm.frame_rate
        total = int(duration_s * rate)  # audiocraft's count: int, not round
        if total < 1:
            raise InvalidRequestError("The duration is too short to generate anything.")
        return plan_windows(total, int(MAX_WINDOW_S * rate), int(STRIDE_S * rate))

    def total_steps(self, duration_s: float) -> int:
        return sum(window.steps(self.lm.delay) for window in self.plan(duration_s))

    def can_batch(self, first: Job, second: Job) -> bool:
        """Jobs run as one batch when they share windows and sampling and the backend mixes prompts."""
        return (
            self.backend.name == "fast"
            and self.plan(first.duration_s) == self.plan(second.duration_s)
            and first.sampling == second.sampling
        )

    def generate(self, job: Job, on_progress: ProgressFn | None = None, cancel: CancelToken | None = None):
        """Audio `(candidates, channels, samples)` float32 at the model's rate."""
        return _single(self.generate_many([job], [on_progress], [cancel]))

    def generate_codes(
        self, job: Job, on_progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> torch.Tensor:
        """The EnCodec codes `(candidates, codebooks, frames)` behind `generate`'s audio."""
        return _single(self.generate_codes_many([job], [on_progress], [cancel]))

    def generate_many(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[np.ndarray | GenerationCancelled]:
        """Several jobs as one batch (see `can_batch`); a cancelled job's outcome is the exception."""
        outcomes = self.generate_codes_many(jobs, on_progress, cancels)
        with device_scope(self.lm.device):
            return [o if isinstance(o, GenerationCancelled) else decode_codes(self.lm, o) for o in outcomes]

    def generate_codes_many(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[torch.Tensor | GenerationCancelled]:
        if any(not self.can_batch(jobs[0], job) for job in jobs[1:]):
            raise InvalidRequestError("These jobs cannot share a batch.")
        watch = _StepWatch(self.total_steps(jobs[0].duration_s), on_progress, cancels)
        try:
            with device_scope(self.lm.device):  # streams and graphs follow the thread's device
                codes = self._generate_codes(jobs, watch)
        except GenerationCancelled:
            codes = None
        if codes is None:  # outside the handler, so the traceback's frames and their tensors are gone
            _release_memory(self.lm.device)
            return [GenerationCancelled() for _ in jobs]
        outcomes: list[torch.Tensor | GenerationCancelled] = []
        row = 0
        for index, job in enumerate(jobs):
            rows = slice(row, row + len(job.seeds))
            row = rows.stop
            outcomes.append(GenerationCancelled() if watch.stopped[index] else codes[rows])
        return outcomes

    def _generate_codes(self, jobs: Sequence[Job], watch: _StepWatch) -> torch.Tensor:
        windows = self.plan(jobs[0].duration_s)
        parts: list[torch.Tensor] = []
        carried: torch.Tensor | None = None
        for window, following in zip(windows, [*windows[1:], None], strict=True):
            batch = self._window_batch(jobs, window, single=len(windows) == 1, carried=carried)
            codes = self._generate_window(batch, watch)
            parts.append(codes[:, :, window.prompt_frames :])
            if following is not None:  # the next window is prompted with this one's last codes
                carried = codes[:, :, codes.shape[-1] - following.prompt_frames :]
        return torch.cat(parts, dim=-1)

    def _generate_window(self, batch: WindowBatch, watch: _StepWatch, share: float = 1.0) -> torch.Tensor:
        """One window, recovering from what can be recovered from (see `_recover`). `share` is the
        part of the window's progress these rows stand for when a batch runs in parts."""
        start = watch.done
        try:
            return self.backend.generate_window(batch, partial(watch.step, share))
        except RuntimeError as exc:  # torch.OutOfMemoryError included
            failure = exc
        watch.done = start  # the failed attempt's steps do not count
        return self._recover(batch, watch, share, failure)

    def _recover(self, batch: WindowBatch, watch: _StepWatch, share: float, failure: RuntimeError):
        """Out of memory: the rows in halves, down to one (seeds are per row: nothing changes).
        A sticky device error: the job fails and the engine is marked broken, to be rebuilt.
        Anything else in the fast loop (an unsupported feature, say): transformers' generate from
        now on, for this model, each job alone since generate cannot mix prompts."""
        if isinstance(failure, torch.OutOfMemoryError):
            getattr(self.backend, "release", lambda: None)()
            _release_memory(self.lm.device)
            if batch.rows == 1:
                raise DeviceFailedError(
                    "The model ran out of memory even for one candidate: try a shorter piece."
                ) from failure
            log.warning("out of memory for %d rows; retrying in halves", batch.rows)
            half = batch.rows // 2
            parts = [slice(0, half), slice(half, batch.rows)]
        elif is_sticky_device_error(failure):
            self.broken = True
            raise DeviceFailedError(
                "The GPU hit an unrecoverable error; the model will be reloaded for the next job."
            ) from failure
        elif self.backend.name == "fast":
            log.warning("fast decoding failed (%s); using transformers' generate from now on", failure)
            self.backend = ReferenceBackend(self.lm)
            parts = batch.row_groups()
        else:
            raise failure
        outputs = [
            self._generate_window(batch.select(rows), watch, share * (rows.stop - rows.start) / batch.rows)
            for rows in parts
        ]
        return torch.cat(outputs)

    def _window_batch(self, jobs: Sequence[Job], window: Window, single: bool, carried) -> WindowBatch:
        prompts, chroma, seeds = [], [], []
        for job in jobs:
            condition = conditioning_chroma(
                job.melody,
                offset_s=window.offset_s,
                single_window=single,
                frames=self.lm.chroma_frames,
                sample_rate=self.lm.sample_rate,
            )
            prompts += [job.prompt] * len(job.seeds)
            chroma += [condition] * len(job.seeds)
            seeds += list(job.seeds)
        return WindowBatch(
            prompts,
            torch.stack(chroma),
            carried if window.prompt_frames else None,
            seeds,
            window,
            jobs[0].sampling,
        )


class _StepWatch:
    """Counts steps for every job of a batch, reports progress and notices cancels.

    A batch run in parts (after running out of memory) counts each part's steps as a share of the
    window's, so progress still reaches the total once and never goes back.
    """

    def __init__(self, total: int, on_progress: Sequence[ProgressFn | None], cancels: Sequence) -> None:
        self.total = total
        self.done = 0.0
        self.reported = 0
        self.on_progress = list(on_progress)
        self.cancels = list(cancels)
        self.stopped = [False] * len(self.cancels)

    def step(self, share: float = 1.0) -> None:
        self.done += share
        for index, token in enumerate(self.cancels):
            if token is not None and token.cancelled:
                self.stopped[index] = True
        if all(self.stopped):
            raise GenerationCancelled()
        done = min(self.total, math.floor(self.done + 1e-9))  # shares sum to whole steps
        if done <= self.reported:
            return
        self.reported = done
        for index, report in enumerate(self.on_progress):
            if report is not None and not self.stopped[index]:
                report(done, self.total)


def _single(outcomes: list):
    if isinstance(outcomes[0], GenerationCancelled):
        raise outcomes[0]
    return outcomes[0]


# CUDA errors after which the context is unusable: every later call fails the same way.
STICKY_DEVICE_ERRORS = (
    "device-side assert",
    "illegal memory access",
    "cudaErrorLaunchFailure",
    "unspecified launch failure",
    "illegal instruction",
    "misaligned address",
    "uncorrectable ECC error",
)


def is_sticky_device_error(error: BaseException) -> bool:
    text = str(error)
    return any(marker.lower() in text.lower() for marker in STICKY_DEVICE_ERRORS)


def _make_backend(lm: LoadedModel, name: str) -> Backend:
    if name == "reference":
        return ReferenceBackend(lm)
    try:
        from generation.musicgen.backends.fast import FastBackend
    except ImportError:  # pragma: no cover - the fast backend ships with the package
        return ReferenceBackend(lm)
    return FastBackend(lm)


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
