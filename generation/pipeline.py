"""From a decoded seed and a prompt to candidate audio: the flow both fronts share, for any family.

seed audio -> (stems) -> job (length, seeds, limits checked) -> engine latents -> audio -> adherence
           -> mastering -> encoding (`generation.render`) -> files (`generation.outputs`)

Engines are reached through `generation.interface` only. A seed is decoded at the rate and channels
the engine reads (`decode_seed`); MusicGen reads its melody (the melodic stems when asked), ACE-Step
the whole seed; melody adherence is measured the same way for every family, on mono 32 kHz.
"""

from __future__ import annotations

import math
import os
import secrets
import time
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from generation.audio.chroma import melody_adherence, to_chroma_rate
from generation.audio.decode import AudioLimits, SeedAudio, decode_audio, mono_of
from generation.catalog import MAX_PROMPT_CHARS
from generation.errors import InvalidRequestError
from generation.humanize import count_of, format_duration
from generation.interface import MAX_SEED, CancelToken, Engine, Job, ProgressFn, only_outcome, validate_seed
from generation.results import Candidate, Restyled, RestyleOptions

MAX_CANDIDATES = 8
# The shortest output any front makes (a model may make shorter: `Family.lengths` is floored here).
MIN_OUTPUT_S = 1.0
# Memory a job needs per second of output, per candidate: the audio as generated, folded, mastered,
# measured and encoded, in float32 and float64 copies. The debug model's RSS grew by 76 bytes per
# mono output sample (60 s more, two candidates, one run); counted here as two channels (the most
# any family makes) of 48 bytes, so a stereo model is not under-counted.
BYTES_PER_SAMPLE = 2 * 48
# A seed is read this far past what a job uses, so the part it uses comes out the same as from the
# whole seed: htdemucs separates in 7.8 s segments, the chroma's STFT sees 0.26 s either side.
REACH_MARGIN_S = 10.0
Separate = Callable[[np.ndarray, int], np.ndarray]  # mono samples at a rate -> their melodic stems


class Reads(Protocol):
    """What a seed is decoded for: an engine, or a family before its model is loaded."""

    input_rate: int
    input_channels: int


def check_prompt(prompt: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    prompt = " ".join(prompt.split())
    if not any(map(_visible, prompt)):  # zero-width spaces, joiners, marks: nothing to read
        raise InvalidRequestError("The style prompt is empty: describe the style you want.")
    if len(prompt) > max_chars:
        raise InvalidRequestError(f"The style prompt is {len(prompt)} characters; the limit is {max_chars}.")
    return prompt


# Letters by Unicode's category that show nothing: Hangul fillers and the blank Braille pattern.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(char: str) -> bool:
    """A letter, digit, punctuation or symbol that shows: not a space, a control, a format
    character (zero-width space, joiner, direction mark) or a combining mark on nothing."""
    return unicodedata.category(char)[0] in "LNPS" and char not in BLANK_LETTERS


def output_duration(seed: SeedAudio, options: RestyleOptions) -> float:
    """The seed's length by default, capped by the maximum; an explicit length must fit the maximum."""
    if options.duration_s is None:
        return min(seed.duration_s, options.max_duration_s)
    return check_duration(options)


def check_duration(options: RestyleOptions) -> float | None:
    """An explicit length must fit the maximum (checked before the seed is even read)."""
    if options.duration_s is not None and not MIN_OUTPUT_S <= options.duration_s <= options.max_duration_s:
        raise InvalidRequestError(
            f"The duration must be between {MIN_OUTPUT_S:g} s and {format_duration(options.max_duration_s)}."
        )
    return options.duration_s


def candidate_seeds(options: RestyleOptions) -> tuple[int, ...]:
    if not 1 <= options.candidates <= MAX_CANDIDATES:
        raise InvalidRequestError(f"Ask for 1 to {MAX_CANDIDATES} candidates.")
    base = (
        secrets.randbelow(MAX_SEED - MAX_CANDIDATES) if options.seed is None else validate_seed(options.seed)
    )
    if base + options.candidates - 1 > MAX_SEED:  # candidate i takes seed + i - 1
        raise InvalidRequestError(
            f"With {options.candidates} candidates the random seed is at most "
            f"{MAX_SEED - options.candidates + 1}: candidate i takes the seed + i - 1."
        )
    return tuple(validate_seed(base + index) for index in range(options.candidates))


class Phases(Protocol):
    """Where a front shows the work: a phase per stage, a progress callback for the steps."""

    def phase(self, name: str) -> AbstractContextManager[None]: ...
    def steps(self, total: int) -> AbstractContextManager[ProgressFn]: ...


class _Unseen:
    def phase(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()

    def steps(self, total: int) -> AbstractContextManager[ProgressFn | None]:
        return nullcontext(None)


@dataclass(frozen=True)
class Prepared:
    """A checked job, and the melody its candidates' adherence is measured against."""

    job: Job
    melody: np.ndarray  # mono float32 at 32 kHz: the seed's, or its melodic stems
    options: RestyleOptions
    stems: bool  # the melody (and MusicGen's source) came from the seed's stems


def decode_seed(source: bytes | str | Path, limits: AudioLimits, reader: Reads) -> SeedAudio:
    """The seed as `reader` reads it (MusicGen: mono 32 kHz; ACE-Step: stereo 48 kHz)."""
    return decode_audio(source, limits, sample_rate=reader.input_rate, channels=reader.input_channels)


def seed_reach(engine: Engine, seed: SeedAudio, duration_s: float) -> int:
    """Samples of the seed a job of `duration_s` reads: one pass a window at most (MusicGen takes a
    lone window's chroma from 30 s of melody, ACE-Step the piece's length), windows one window past
    the last offset. The rest of a long seed (an hour, for a short piece) is never separated,
    analysed or resampled (see `REACH_MARGIN_S`)."""
    window = engine.window_s
    return math.ceil((window if duration_s <= window else duration_s + window) * seed.sample_rate)


def _margin(seed: SeedAudio) -> int:
    return math.ceil(REACH_MARGIN_S * seed.sample_rate)


def melody_source(
    engine: Engine,
    seed: SeedAudio,
    options: RestyleOptions,
    *,
    separate: Separate | None = None,
    phases: Phases | None = None,
    timings: dict[str, float] | None = None,
    reach: int | None = None,
) -> np.ndarray:
    """The melody, mono at the seed's rate: the seed's, or its melodic stems when asked for (and
    the engine reads the melody: see `Engine.reads_melody`), as far as the job reads (`reach`
    samples; by default `seed_reach` of the job's length)."""
    clock = time.perf_counter()
    reach = (reach or seed_reach(engine, seed, output_duration(seed, options))) + _margin(seed)
    samples = seed.samples[..., :reach]
    melody = samples if samples.ndim == 1 else mono_of(samples)
    if options.stems and engine.reads_melody:
        if separate is None:
            raise InvalidRequestError("Stem separation was asked for but no separator is loaded.")
        with (phases or _Unseen()).phase("separating stems"):
            melody = separate(melody, seed.sample_rate)
    if timings is not None:
        timings["stems_s"] = time.perf_counter() - clock
    return melody


def make_job(
    engine: Engine, seed: SeedAudio, prompt: str, options: RestyleOptions, melody: np.ndarray
) -> Prepared:
    """Check every option before any work starts, and fix the seeds. `melody` (mono, at the seed's
    rate) is what adherence is measured against, and the job's source if the engine reads melodies;
    otherwise the source is the seed as decoded."""
    if seed.sample_rate != engine.input_rate or seed.channels != engine.input_channels:
        raise InvalidRequestError("The seed must be decoded at the model's sample rate and channels.")
    params = options.params or engine.default_params
    params.validate()
    prompt, seeds, duration = check_prompt(prompt), candidate_seeds(options), output_duration(seed, options)
    check_length((engine.min_duration_s, engine.max_duration_s), duration)
    reach = seed_reach(engine, seed, duration) + _margin(seed)
    source = melody[None] if engine.reads_melody else seed.planar[:, :reach]
    job = Job(prompt, source, seeds, duration, params)
    stems = options.stems and engine.reads_melody
    return Prepared(job, to_chroma_rate(melody, seed.sample_rate), options, stems)


def prepare(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    *,
    separate: Separate | None = None,
    phases: Phases | None = None,
    timings: dict[str, float] | None = None,
) -> Prepared:
    """The melody (`melody_source`), then the checked job (`make_job`)."""
    melody = melody_source(engine, seed, options, separate=separate, phases=phases, timings=timings)
    return make_job(engine, seed, prompt, options, melody)


def check_length(lengths: tuple[float, float], duration_s: float) -> None:
    """`duration_s` within a model's `(shortest, longest)` (`Family.lengths`, before loading it)."""
    shortest, longest = max(lengths[0], MIN_OUTPUT_S), lengths[1]
    if not shortest <= duration_s <= longest:
        longest_text = "any length" if longest == math.inf else format_duration(longest)
        raise InvalidRequestError(
            f"This model makes {format_duration(shortest)} to {longest_text} of audio, "
            f"not {format_duration(duration_s)}: choose a duration in that range."
        )


def available_memory() -> int | None:
    """Bytes the system can still give (Linux' MemAvailable, else free pages), None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(duration_s: float, candidates: int, sample_rate: int, available: int | None = None) -> None:
    """Refuse, before the model loads, a plan whose audio cannot fit in memory (see
    `BYTES_PER_SAMPLE`): a MemoryError an hour into a run helps nobody."""
    needed = math.ceil(duration_s * sample_rate) * candidates * BYTES_PER_SAMPLE
    available = available_memory() if available is None else available
    if available is not None and needed > available:
        raise InvalidRequestError(
            f"{count_of(candidates, 'candidate')} of {format_duration(duration_s)} need about "
            f"{needed / 1024**3:.1f} GiB of memory; {available / 1024**3:.1f} GiB is free: "
            "ask for fewer candidates or a shorter duration."
        )


def restyle(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    *,
    phases: Phases | None = None,
    cancel: CancelToken | None = None,
    separate: Separate | None = None,
) -> Restyled:
    """Generate the candidates. `separate` keeps the melodic stems (see `generation.audio.stems`)."""
    timings: dict[str, float] = {}
    prepared = prepare(engine, seed, prompt, options, separate=separate, phases=phases, timings=timings)
    return run_job(engine, prepared, phases=phases, cancel=cancel, timings=timings)


def run_job(
    engine: Engine,
    prepared: Prepared,
    *,
    phases: Phases | None = None,
    cancel: CancelToken | None = None,
    timings: dict[str, float] | None = None,
) -> Restyled:
    """Generate one checked job's candidates, showing the steps and the decoding on `phases`."""
    phases = phases or _Unseen()
    timings = dict(timings or {})
    job = prepared.job
    clock = time.perf_counter()
    with phases.steps(engine.total_steps(job.duration_s, job.params)) as on_progress:
        latents = only_outcome(engine.generate_latents([job], [on_progress], [cancel]))
    timings["generation_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with phases.phase("decoding audio"):
        audio = engine.decode_latents(latents)
    timings["decode_s"] = time.perf_counter() - clock
    return finish(engine, prepared, audio, timings)


def finish(engine: Engine, prepared: Prepared, audio: np.ndarray, timings: dict) -> Restyled:
    """Wrap generated audio `(candidates, channels, samples)` with seeds and adherence."""
    job, rate = prepared.job, engine.sample_rate
    clock = time.perf_counter()
    candidates = [
        Candidate(
            index + 1,
            seed,
            audio[index],
            melody_adherence(prepared.melody, to_chroma_rate(audio[index], rate)),
        )
        for index, seed in enumerate(job.seeds)
    ]
    timings["adherence_s"] = time.perf_counter() - clock
    options = prepared.options
    return Restyled(
        job.prompt, options, job.params, prepared.stems, job.duration_s, rate, candidates, timings
    )
