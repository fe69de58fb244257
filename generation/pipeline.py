"""From a decoded seed and a prompt to finished candidate files: the flow both fronts share.

seed audio -> (stems) -> job (length, seeds, limits checked) -> engine codes -> audio -> adherence
           -> mastering -> encoding (`generation.render`) -> files (`generation.outputs`)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from generation.audio_in import SeedAudio
from generation.catalog import MAX_PROMPT_CHARS
from generation.chroma import melody_adherence
from generation.engine import CancelToken, Engine, Job, ProgressFn, decode_codes
from generation.errors import InvalidRequestError
from generation.humanize import format_duration
from generation.sampling import MAX_SEED, SamplingParams, validate_seed

MAX_CANDIDATES = 8


@dataclass(frozen=True)
class RestyleOptions:
    candidates: int = 1
    duration_s: float | None = None  # None: the seed's length, capped by max_duration_s
    max_duration_s: float = 300.0
    seed: int | None = None  # candidate i gets seed + i; None draws one
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stems: bool = False


@dataclass
class Candidate:
    index: int  # 1-based, as people count them
    seed: int
    audio: np.ndarray  # (channels, samples) float32 at `sample_rate`, not yet mastered
    adherence: float


@dataclass
class Restyled:
    prompt: str
    options: RestyleOptions
    duration_s: float
    sample_rate: int
    candidates: list[Candidate]
    timings: dict[str, float]


def check_prompt(prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    prompt = " ".join(prompt.split())
    if not prompt:
        raise InvalidRequestError("The style prompt is empty: describe the style you want.")
    if len(prompt) > max_chars:
        raise InvalidRequestError(f"The style prompt is {len(prompt)} characters; the limit is {max_chars}.")
    return prompt


def output_duration(seed: SeedAudio, options: RestyleOptions) -> float:
    """The seed's length by default, capped by the maximum; an explicit length must fit the maximum."""
    if options.duration_s is None:
        return min(seed.duration_s, options.max_duration_s)
    return check_duration(options)


def check_duration(options: RestyleOptions) -> float | None:
    """An explicit length must fit the maximum (checked before the seed is even read)."""
    if options.duration_s is not None and not 1.0 <= options.duration_s <= options.max_duration_s:
        raise InvalidRequestError(
            f"The duration must be between 1 s and {format_duration(options.max_duration_s)}."
        )
    return options.duration_s


def candidate_seeds(options: RestyleOptions) -> tuple[int, ...]:
    if not 1 <= options.candidates <= MAX_CANDIDATES:
        raise InvalidRequestError(f"Ask for 1 to {MAX_CANDIDATES} candidates.")
    base = (
        secrets.randbelow(MAX_SEED - MAX_CANDIDATES) if options.seed is None else validate_seed(options.seed)
    )
    return tuple(validate_seed(base + index) for index in range(options.candidates))


def make_job(
    engine: Engine, seed: SeedAudio, prompt: str, options: RestyleOptions, melody: np.ndarray
) -> Job:
    """Check every option before any work starts, and fix the seeds."""
    if seed.sample_rate != engine.lm.sample_rate:
        raise InvalidRequestError("The seed must be decoded at the model's sample rate.")
    options.sampling.validate()
    return Job(
        check_prompt(prompt),
        melody,
        candidate_seeds(options),
        output_duration(seed, options),
        options.sampling,
    )


class Phases(Protocol):
    """Where a front shows the work: a phase per stage, a progress callback for the steps."""

    def phase(self, name: str) -> AbstractContextManager[None]: ...
    def steps(self, total: int) -> AbstractContextManager[ProgressFn]: ...


class _Unseen:
    def phase(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()

    def steps(self, total: int) -> AbstractContextManager[ProgressFn | None]:
        return nullcontext(None)


def restyle(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    *,
    phases: Phases | None = None,
    cancel: CancelToken | None = None,
    separate: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> Restyled:
    """Generate the candidates. `separate` keeps the melodic stems (see `generation.stems`)."""
    phases = phases or _Unseen()
    timings: dict[str, float] = {}
    melody = melody_source(seed, options, separate, timings, phases)
    job = make_job(engine, seed, prompt, options, melody)
    return run_job(engine, job, options, phases=phases, cancel=cancel, timings=timings)


def melody_source(
    seed: SeedAudio,
    options: RestyleOptions,
    separate: Callable[[np.ndarray, int], np.ndarray] | None,
    timings: dict[str, float],
    phases: Phases | None = None,
) -> np.ndarray:
    """The audio the melody is taken from: the seed, or its melodic stems when asked for."""
    phases = phases or _Unseen()
    clock = time.perf_counter()
    melody = seed.samples
    if options.stems:
        if separate is None:
            raise InvalidRequestError("Stem separation was asked for but no separator is loaded.")
        with phases.phase("separating stems"):
            melody = separate(seed.samples, seed.sample_rate)
    timings["stems_s"] = time.perf_counter() - clock
    return melody


def run_job(
    engine: Engine,
    job: Job,
    options: RestyleOptions,
    *,
    phases: Phases | None = None,
    cancel: CancelToken | None = None,
    timings: dict[str, float] | None = None,
) -> Restyled:
    """Generate one checked job's candidates, showing the steps and the decoding on `phases`."""
    phases = phases or _Unseen()
    timings = dict(timings or {})
    clock = time.perf_counter()
    with phases.steps(engine.total_steps(job.duration_s)) as on_progress:
        codes = engine.generate_codes(job, on_progress, cancel)
    timings["generation_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with phases.phase("decoding audio"):
        audio = decode_codes(engine.lm, codes)
    timings["decode_s"] = time.perf_counter() - clock
    return finish(engine, job, options, audio, timings)


def finish(engine: Engine, job: Job, options: RestyleOptions, audio: np.ndarray, timings: dict) -> Restyled:
    """Wrap generated audio `(candidates, channels, samples)` with seeds and adherence."""
    rate = engine.lm.sample_rate
    clock = time.perf_counter()
    candidates = [
        Candidate(
            index + 1, seed, audio[index], melody_adherence(job.melody, audio[index].mean(axis=0), rate)
        )
        for index, seed in enumerate(job.seeds)
    ]
    timings["adherence_s"] = time.perf_counter() - clock
    return Restyled(job.prompt, options, job.duration_s, rate, candidates, timings)


def candidate_filename(name: str, index: int, count: int, extension: str) -> str:
    """`name.wav` for a lone candidate, `name-1.wav`, `name-2.wav`... for several."""
    return f"{name}{extension}" if count == 1 else f"{name}-{index}{extension}"
