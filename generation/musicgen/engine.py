"""The MusicGen-melody engine: a loaded model, a melody and a prompt in; candidate audio out.

Synchronous on purpose (audiocraft's split): whoever owns the model calls it from one thread, with a
progress hook called from that thread and a cancel token checked every step. Nothing here is shared
state: every parameter travels with the job. It implements `generation.interface.Engine`; a job's
source is its melody, mono at the model's 32 kHz, and its parameters are `SamplingParams`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
import torch

from generation.audio.chroma import conditioning_chroma
from generation.devices import release_memory
from generation.errors import DeviceFailedError, GenerationCancelled, InvalidRequestError
from generation.interface import CancelToken, Engine, Job, ProgressFn, only_outcome
from generation.musicgen.backends import Backend, WindowBatch
from generation.musicgen.backends.device import device_scope
from generation.musicgen.backends.reference import ReferenceBackend
from generation.musicgen.codec import decode_codes
from generation.musicgen.models import LoadedModel
from generation.musicgen.params import LICENCE, SamplingParams
from generation.musicgen.windows import MAX_WINDOW_S, STRIDE_S, Window, plan_windows
from generation.progress import StepWatch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "fast", "reference")


def melody_job(
    prompt: str,
    melody: np.ndarray,
    seeds: Sequence[int],
    duration_s: float,
    sampling: SamplingParams | None = None,
) -> Job:
    """A job from a mono melody `(samples,)` at the model's rate (default sampling unless given)."""
    source = np.asarray(melody, dtype=np.float32)[None]
    return Job(prompt, source, tuple(seeds), duration_s, sampling or SamplingParams())


class MusicGenEngine(Engine):
    """Generates with one loaded model. Not thread-safe: one thread owns it."""

    family = "musicgen"
    licence = LICENCE
    input_channels = 1  # the melody: its chroma is what conditions the model
    reads_melody = True  # the source is the melody (audiocraft's: vocals + other, stems on)
    max_duration_s = math.inf  # windows of 30 s go on as long as asked
    window_s = MAX_WINDOW_S
    default_params = SamplingParams()

    def __init__(self, lm: LoadedModel, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise InvalidRequestError(f"Unknown backend {backend!r}: use {', '.join(BACKENDS)}.")
        self.lm = lm
        self.backend = _make_backend(lm, backend)
        self.broken = False  # set after a device error that outlives the job: rebuild before reuse

    @property
    def sample_rate(self) -> int:
        return self.lm.sample_rate

    @property
    def input_rate(self) -> int:
        return self.lm.sample_rate

    @property
    def channels(self) -> int:
        return self.lm.audio_channels

    @property
    def frame_rate(self) -> int:
        return self.lm.frame_rate

    @property
    def min_duration_s(self) -> float:
        return 1 / self.lm.frame_rate  # one frame of codes

    def describe(self) -> dict[str, Any]:
        return {**self.lm.describe(), "backend": self.backend.name}

    def parameters(self, duration_s: float, params: SamplingParams) -> dict[str, Any]:
        return {**asdict(params), "windows": len(self.plan(duration_s))}

    def plan(self, duration_s: float) -> list[Window]:
        rate = self.lm.frame_rate
        total = int(duration_s * rate)  # audiocraft's count: int, not round
        if total < 1:
            raise InvalidRequestError("The duration is too short to generate anything.")
        return plan_windows(total, int(MAX_WINDOW_S * rate), int(STRIDE_S * rate))

    def total_steps(self, duration_s: float, params: SamplingParams | None = None) -> int:
        """Decoding steps (the same whatever the sampling)."""
        return sum(window.steps(self.lm.delay) for window in self.plan(duration_s))

    def can_batch(self, first: Job, second: Job) -> bool:
        """Jobs run as one batch when they share windows and sampling and the backend mixes prompts."""
        return (
            self.backend.name == "fast"
            and self.plan(first.duration_s) == self.plan(second.duration_s)
            and first.params == second.params
        )

    def generate_codes(
        self, job: Job, on_progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> torch.Tensor:
        """The EnCodec codes `(candidates, codebooks, frames)` behind `generate`'s audio."""
        return only_outcome(self.generate_latents([job], [on_progress], [cancel]))

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """EnCodec codes `(candidates, codebooks, frames)` to audio."""
        with device_scope(self.lm.device):
            return decode_codes(self.lm, latents)

    def generate_latents(
        self,
        jobs: Sequence[Job],
        on_progress: Sequence[ProgressFn | None],
        cancels: Sequence[CancelToken | None],
    ) -> list[torch.Tensor | GenerationCancelled]:
        """Each job's EnCodec codes `(candidates, codebooks, frames)`, or its cancel."""
        for job in jobs:
            _check_source(job, self.input_rate)
        if any(not self.can_batch(jobs[0], job) for job in jobs[1:]):
            raise InvalidRequestError("These jobs cannot share a batch.")
        watch = StepWatch(self.total_steps(jobs[0].duration_s), on_progress, cancels)
        try:
            with device_scope(self.lm.device):  # streams and graphs follow the thread's device
                codes = self._generate_codes(jobs, watch)
        except GenerationCancelled:
            codes = None
        if codes is None:  # outside the handler, so the traceback's frames and their tensors are gone
            release_memory(self.lm.device)
            return [GenerationCancelled() for _ in jobs]
        outcomes: list[torch.Tensor | GenerationCancelled] = []
        row = 0
        for index, job in enumerate(jobs):
            rows = slice(row, row + len(job.seeds))
            row = rows.stop
            outcomes.append(GenerationCancelled() if watch.stopped[index] else codes[rows])
        return outcomes

    def _generate_codes(self, jobs: Sequence[Job], watch: StepWatch) -> torch.Tensor:
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

    def _generate_window(self, batch: WindowBatch, watch: StepWatch, share: float = 1.0) -> torch.Tensor:
        """One window, recovering from what can be recovered from (see `_recover`). `share` is the
        part of the window's progress these rows stand for when a batch runs in parts."""
        start = watch.done
        try:
            return self.backend.generate_window(batch, partial(_step, watch, share))
        except RuntimeError as exc:  # torch.OutOfMemoryError included
            failure = exc
        watch.done = start  # the failed attempt's steps do not count
        return self._recover(batch, watch, share, failure)

    def _recover(self, batch: WindowBatch, watch: StepWatch, share: float, failure: RuntimeError):
        """Out of memory: the rows in halves, down to one (seeds are per row: nothing changes).
        A sticky device error: the job fails and the engine is marked broken, to be rebuilt.
        Anything else in the fast loop (an unsupported feature, say): transformers' generate from
        now on, for this model, each job alone since generate cannot mix prompts."""
        if isinstance(failure, torch.OutOfMemoryError):
            getattr(self.backend, "release", lambda: None)()
            release_memory(self.lm.device)
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
                job.source[0],
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
            jobs[0].params,
        )


def _check_source(job: Job, rate: int) -> None:
    source = job.source
    if source.ndim != 2 or source.shape[0] != 1 or source.shape[1] == 0:
        raise InvalidRequestError(
            f"The melody must be mono audio at {rate} Hz, shaped (1, samples), not {source.shape}."
        )


def _step(watch: StepWatch, share: float) -> None:
    """The backends' per-step hook: count the step; once every job is cancelled, stop the loop."""
    watch.advance(share)
    if watch.all_cancelled:
        raise GenerationCancelled()


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
