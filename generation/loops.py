"""Seamless loops: whole bars, exact to the sample, with a generated seam rather than a fade.

1. Plan (`plan_loop`): the seed's tempo and first downbeat (`generation.audio.tempo`), then the whole
   number of bars nearest the asked length (with no length asked: the whole bars the seed holds from
   its first downbeat), and the loop's length in samples,
   rounded once: `bars * beats_per_bar * 60 / bpm * rate`, with the tempo already rounded to 0.01 BPM
   and the result rounded to a multiple of `rate / gcd(rate, 48000)` (2 at 32 kHz), so that the
   loop is a whole number of samples at the model's rate and at Opus's 48 kHz too. The sidecar's
   bpm, bars and loop length therefore reproduce each other exactly.
2. Melody: the seed from its first downbeat, as many whole bars as the loop has (or as the seed
   holds, repeated), looped at the sample level to the generated length, so that the conditioning
   wraps to the seed's downbeat exactly where the loop ends: in a lone window (whose chroma is taken
   from the melody as given) and in longer pieces (whose windows loop the melody modulo its length:
   it is a whole number of loops long).
3. Generation runs past the loop's end by an overhang (one bar, or more bars to make at least
   `MIN_OVERHANG_S`) plus a short tail that is thrown away (the codec's last frames are decoded from
   one side only). The overhang is the music leading from the loop's end back into its beginning.
4. Fold: the overhang replaces the loop's head, crossfading back into the head with an equal-power
   (cos/sin) ramp over the last beat of the overhang, so the ramp ends on a bar line. The wrap itself
   is then generated audio, sample after sample; the only join is the crossfade, one beat long, between
   two renditions of the same bar of melody. Equal power because two generations are uncorrelated.

Intro + loop (`LoopOptions.intro_bars`): one file, the intro's whole bars then the loop's. The melody
is rolled so that the intro plays the loop's last bars of melody and the loop starts on the seed's first
downbeat; generation runs from the intro's start through the loop's end (no overhang). The intro's end
leads into the loop's first sample as generated music. The wrap is made the other way round from a
plain loop's: the loop's last beat crossfades into the intro's last beat (the same bar of melody), so
the loop ends on the very samples that lead, in the generation, into the loop's start. Both ways into
the loop's first sample (from the intro, from the loop's end) are then generated audio; the one join
is the crossfade inside the loop's last beat.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from generation.audio.chroma import loop_audio, melody_adherence
from generation.audio.decode import SeedAudio
from generation.audio.mastering import MasteringOptions
from generation.audio.seam import SeamFigures, seam_figures
from generation.audio.tempo import SNAP_S, Tempo, find_tempo
from generation.catalog import MAX_PROMPT_CHARS
from generation.errors import AudioInputError, InvalidRequestError
from generation.interface import CancelToken, Engine
from generation.pipeline import (
    Phases,
    Prepared,
    Separate,
    check_prompt,
    make_job,
    melody_source,
    output_duration,
    run_job,
)
from generation.results import Candidate, Restyled, RestyleOptions

OPUS_RATE = 48_000
MIN_OVERHANG_S = 2.0
TAIL_S = 0.25


@dataclass(frozen=True)
class LoopOptions:
    bpm: float | None = None  # None: detected from the seed
    beats_per_bar: int | None = None  # None: 4
    bars: int | None = None  # None: the whole number nearest the asked length (see `plan_loop`)
    overhang_bars: int = 1  # at least; more where a bar is shorter than MIN_OVERHANG_S
    crossfade_beats: float = 1.0
    tempo_in_prompt: bool = True  # append ", 120 bpm" to the prompt, as musicgen-looper does
    intro_bars: int = 0  # bars played once before the loop, in the same file


@dataclass(frozen=True)
class LoopPlan:
    tempo: Tempo
    sample_rate: int
    bars: int
    loop_samples: int
    seed_start: int  # the seed's first downbeat, in samples
    region_samples: int  # the seed's whole bars the melody comes from (the loop's length at most)
    overhang_samples: int
    crossfade_samples: int
    generated_samples: int  # intro + loop + overhang + tail, whole codec frames
    intro_bars: int = 0
    intro_samples: int = 0  # the loop starts here; whole samples at 48 kHz too, like the loop

    @property
    def total_samples(self) -> int:
        """The file: intro then loop."""
        return self.intro_samples + self.loop_samples

    def bar_lines(self) -> list[int]:
        return bar_lines(self.intro_samples, self.intro_bars, self.loop_samples, self.bars)

    @property
    def loop_s(self) -> float:
        return self.loop_samples / self.sample_rate

    @property
    def generated_s(self) -> float:
        return self.generated_samples / self.sample_rate


def bar_lines(intro_samples: int, intro_bars: int, loop_samples: int, bars: int) -> list[int]:
    """Every bar line of an intro + loop file in samples, from 0 to its end (both included)."""
    intro = [round(k * intro_samples / intro_bars) for k in range(intro_bars)]
    return intro + [intro_samples + round(k * loop_samples / bars) for k in range(bars + 1)]


@dataclass(frozen=True)
class LoopInfo:
    """What the sidecar and the fronts say about a loop; `seams` has one entry per candidate."""

    plan: LoopPlan
    seams: tuple[SeamFigures, ...]
    prompt: str = ""  # the style as asked, before the tempo joined it (what a batch resumes by)
    intro_seams: tuple[SeamFigures, ...] = ()  # the intro -> loop boundary, per candidate (intros only)
    stems: tuple[np.ndarray, ...] = ()  # per candidate, when layers are asked (`generation.layers`)
    asked_duration_s: float | None = None  # the length asked (None: the seed's bars), resumed by too

    @property
    def loop_start(self) -> int:
        return self.plan.intro_samples

    @property
    def loop_end(self) -> int:
        """Exclusive: the loop is samples [loop_start, loop_end), the file's end."""
        return self.plan.total_samples

    def sidecar(self, candidate_index: int) -> dict:
        """The `loop` entry of candidate `candidate_index`'s (1-based) JSON sidecar."""
        plan, rate = self.plan, self.plan.sample_rate
        return {
            "prompt": self.prompt,
            "asked_duration_s": self.asked_duration_s,
            "bpm": plan.tempo.bpm,
            "beats_per_bar": plan.tempo.beats_per_bar,
            "bars": plan.bars,
            "tempo_detected": plan.tempo.detected,
            "beat_clarity": plan.tempo.clarity,
            "sample_rate": rate,
            "loop_start": self.loop_start,
            "loop_end": self.loop_end,
            "loop_start_s": round(self.loop_start / rate, 6),
            "loop_end_s": round(self.loop_end / rate, 6),
            "seed_start_s": round(plan.seed_start / rate, 4),
            "overhang_s": round(plan.overhang_samples / rate, 4),
            "crossfade_s": round(plan.crossfade_samples / rate, 4),
            "seam": self.seams[candidate_index - 1].as_dict(),
            **self._intro(candidate_index),
        }

    def _intro(self, candidate_index: int) -> dict:
        plan, rate = self.plan, self.plan.sample_rate
        if not plan.intro_bars:
            return {}
        return {
            "intro_bars": plan.intro_bars,
            "intro_samples": plan.intro_samples,
            "intro_s": round(plan.intro_samples / rate, 6),
            "loop_samples": plan.loop_samples,
            "loop_s": round(plan.loop_samples / rate, 6),
            "intro_seam": self.intro_seams[candidate_index - 1].as_dict(),
        }


@dataclass(frozen=True)
class Looped:
    result: Restyled  # candidates already folded: each is exactly one loop long
    info: LoopInfo


def loop_unit(rate: int) -> int:
    """Loop lengths are multiples of this, so they are whole samples at `rate` and at 48 kHz."""
    return rate // math.gcd(rate, OPUS_RATE)


def plan_loop(
    seed: SeedAudio,
    options: RestyleOptions,
    loop: LoopOptions,
    *,
    frame_rate: int,
    melody: np.ndarray | None = None,
) -> LoopPlan:
    """Everything about the loop that can be known before generating. CPU only, a fraction of a
    second for a short seed and about 3 s for a 5-minute one on a busy core: fronts run it (off the
    event loop) when a request arrives, to refuse bad ones at once.

    `melody` is what the tempo is found in (the seed by default). Raises `AudioInputError` for a
    seed with no clear beat or less than one bar, `InvalidRequestError` for bad options.
    """
    rate = seed.sample_rate
    heard = seed.samples if melody is None else melody
    tempo = find_tempo(heard, rate, bpm=loop.bpm, beats_per_bar=loop.beats_per_bar)
    bar = tempo.bar_s * rate
    seed_start = round(tempo.first_downbeat_s * rate)
    # A seed cut exactly on bar lines holds its last bar even when its downbeat reads a little late.
    seed_bars = int((len(seed.samples) - seed_start + SNAP_S * rate) // bar)
    if seed_bars < 1:
        raise AudioInputError(
            f"The seed holds less than one whole bar from its first downbeat (a bar at {tempo.bpm:g} BPM"
            f" is {tempo.bar_s:.2f} s): a loop needs at least one."
        )
    if loop.bars is None:
        wanted = seed_bars * tempo.bar_s if options.duration_s is None else output_duration(seed, options)
        bars = _bars(wanted, options.max_duration_s, tempo, max(loop.intro_bars, 0))
    elif loop.bars >= 1:  # as planned before (a job planned at admission, run later): the same bars
        bars = loop.bars
    else:
        raise InvalidRequestError("A loop is at least one bar long.")
    intro_bars = check_intro(loop.intro_bars, bars, options.max_duration_s, tempo)
    unit = loop_unit(rate)
    loop_samples = unit * round(bars * bar / unit)
    intro = unit * round(intro_bars * bar / unit)
    # An intro plays before the loop: the loop's wrap is folded into the intro's last bar, not an overhang.
    overhang_bars = 0 if intro_bars else max(loop.overhang_bars, math.ceil(MIN_OVERHANG_S / tempo.bar_s))
    overhang = round(overhang_bars * bar)
    if not 0 < loop.crossfade_beats <= (intro_bars or overhang_bars) * tempo.beats_per_bar:
        raise InvalidRequestError(
            "The crossfade must be longer than 0 and no longer than the overhang (or the intro)."
        )
    frame = rate // frame_rate
    generated = frame * math.ceil((intro + loop_samples + overhang + TAIL_S * rate) / frame)
    region = loop_samples if seed_bars >= bars else round(seed_bars * bar)
    crossfade = round(loop.crossfade_beats * tempo.beat_s * rate)
    return LoopPlan(
        tempo, rate, bars, loop_samples, seed_start, region, overhang, crossfade, generated, intro_bars, intro
    )


def _bars(duration_s: float, max_duration_s: float, tempo: Tempo, intro_bars: int = 0) -> int:
    """The whole number of bars nearest `duration_s`, at least one, within the maximum (less the intro)."""
    most = math.floor(max_duration_s / tempo.bar_s + 1e-9) - intro_bars
    if most < 1 and intro_bars:
        raise InvalidRequestError(
            f"An intro of {intro_bars} bars and a loop of at least one at {tempo.bpm:g} BPM last"
            f" {(intro_bars + 1) * tempo.bar_s:.1f} s, longer than the maximum duration."
        )
    if most < 1:
        raise InvalidRequestError(
            f"One bar at {tempo.bpm:g} BPM ({tempo.bar_s:.2f} s) is longer than the maximum duration."
        )
    return min(max(1, round(duration_s / tempo.bar_s)), most)


def check_intro(intro_bars: int, bars: int, max_duration_s: float, tempo: Tempo) -> int:
    """An intro is a whole number of bars, 0 for none; intro and loop together fit the maximum."""
    if intro_bars < 0:
        raise InvalidRequestError("An intro is a whole number of bars, 0 for none.")
    if (intro_bars + bars) * tempo.bar_s > max_duration_s + 1e-6:
        raise InvalidRequestError(
            f"The intro ({intro_bars} bars) and the loop ({bars} bars) at {tempo.bpm:g} BPM last"
            f" {(intro_bars + bars) * tempo.bar_s:.1f} s, longer than the maximum duration."
        )
    return intro_bars


def loop_melody(source: np.ndarray, plan: LoopPlan, window_s: float) -> np.ndarray:
    """The melody the engine is conditioned on: the loop's bars of `source`, looped to cover the
    generated length and at least one window of the engine's (`Engine.window_s`: MusicGen takes a
    lone window's chroma from the melody as given), always a whole number of loops long. With an
    intro, rolled so that the loop's first bar of melody falls where the loop starts: the intro plays
    the loop's last bars of melody, leading into its first as the loop's own end does."""
    # Up to SNAP_S of the last bar may lie past the seed's end: the loop wraps that much early there.
    region = source[plan.seed_start : plan.seed_start + plan.region_samples]
    one_loop = np.roll(loop_audio(region, 0, plan.loop_samples), plan.intro_samples % plan.loop_samples)
    needed = max(plan.generated_samples, round(window_s * plan.sample_rate))
    return np.tile(one_loop, math.ceil(needed / plan.loop_samples)).astype(np.float32)


def fold(audio: np.ndarray, plan: LoopPlan) -> np.ndarray:
    """`(channels, generated)` audio to `(channels, intro + loop)`: a plain loop's overhang laid
    over its head; an intro's loop ending on the intro's last samples."""
    if plan.intro_bars:
        return _fold_into_intro(audio, plan)
    loop, overhang, fade = plan.loop_samples, plan.overhang_samples, plan.crossfade_samples
    # A loop shorter than its overhang (one bar under MIN_OVERHANG_S) is folded from its last
    # whole loops: every loop of the generated audio follows the same melody, and what is laid
    # over the head is then at most one loop long.
    skip = loop * (math.ceil(overhang / loop) - 1)
    audio, overhang = audio[:, skip:], overhang - skip
    fade = min(fade, overhang)
    out = audio[:, :loop].copy()
    out[:, : overhang - fade] = audio[:, loop : loop + overhang - fade]
    angle = (np.arange(fade) + 0.5) / fade * (np.pi / 2)
    tail = audio[:, loop + overhang - fade : loop + overhang]
    head = audio[:, overhang - fade : overhang]
    out[:, overhang - fade : overhang] = tail * np.cos(angle) + head * np.sin(angle)
    return out.astype(np.float32)


def _fold_into_intro(audio: np.ndarray, plan: LoopPlan) -> np.ndarray:
    """The loop's last beat crossfades into the intro's last beat (the same bar of melody): the
    loop then ends on the samples that, as generated, lead into the loop's first one."""
    intro, end, fade = plan.intro_samples, plan.total_samples, plan.crossfade_samples
    out = audio[:, :end].copy()
    angle = (np.arange(fade) + 0.5) / fade * (np.pi / 2)
    tail, lead_in = audio[:, end - fade : end], audio[:, intro - fade : intro]
    out[:, end - fade : end] = tail * np.cos(angle) + lead_in * np.sin(angle)
    return out.astype(np.float32)


def restyle_loop(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    loop: LoopOptions | None = None,
    *,
    plan: LoopPlan | None = None,
    phases: Phases | None = None,
    cancel: CancelToken | None = None,
    separate: Separate | None = None,
) -> Looped:
    """`generation.pipeline.restyle`, made to loop: every candidate is exactly `plan.bars` bars.

    `plan` is `plan_loop`'s, when the front already made it; otherwise it is made here. Only an
    engine that reads the melody, at the rate it makes audio, can be steered to wrap (MusicGen).
    """
    timings: dict[str, float] = {}
    ready = prepare_loop(
        engine, seed, prompt, options, loop, plan=plan, phases=phases, separate=separate, timings=timings
    )
    generated = run_job(engine, ready.prepared, phases=phases, cancel=cancel, timings=timings)
    return ready.looped(generated)


class Loopable(Protocol):
    """What a loop needs of a model (an engine, or its family before it is loaded)."""

    reads_melody: bool
    input_rate: int
    sample_rate: int


def check_loopable(model: Loopable) -> None:
    """Only a model that reads the melody, at the rate it makes audio, can be steered to wrap."""
    if not model.reads_melody or model.input_rate != model.sample_rate:
        raise InvalidRequestError("Loops follow the seed's melody: this model does not read one.")


@dataclass(frozen=True)
class PreparedLoop:
    """A loop's checked job, ready for the engine, and what folds what it generates into the loop."""

    prepared: Prepared  # the job runs to `plan.generated_s`; its options are the ones asked
    plan: LoopPlan
    one_loop: np.ndarray  # the melody of the file (intro and loop), which adherence is measured against
    prompt: str  # as asked

    def looped(self, generated: Restyled) -> Looped:
        return _folded(generated, self.plan, self.one_loop, self.prompt)


def prepare_loop(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    loop: LoopOptions | None = None,
    *,
    plan: LoopPlan | None = None,
    phases: Phases | None = None,
    separate: Separate | None = None,
    timings: dict[str, float] | None = None,
) -> PreparedLoop:
    """The melody (looped where the loop wraps) and the checked job that runs past the loop's end."""
    check_loopable(engine)
    loop = loop or LoopOptions()
    plan = plan or plan_loop(seed, options, loop, frame_rate=engine.frame_rate)
    reach = plan.seed_start + plan.region_samples  # the melody is the loop's bars of the seed
    source = melody_source(
        engine, seed, options, separate=separate, phases=phases, timings=timings, reach=reach
    )
    melody = loop_melody(source, plan, engine.window_s)
    job_options = replace(
        options,
        duration_s=plan.generated_s,
        max_duration_s=max(options.max_duration_s, plan.generated_s),
    )
    prepared = make_job(engine, seed, loop_prompt(prompt, plan, loop), job_options, melody)
    prepared = replace(prepared, options=options)  # the result records what was asked, not the overhang
    return PreparedLoop(prepared, plan, melody[: plan.total_samples], check_prompt(prompt))


def loop_prompt(prompt: str, plan: LoopPlan, loop: LoopOptions) -> str:
    """The prompt, with the tempo appended where asked and where it fits the prompt limit."""
    prompt = check_prompt(prompt)
    with_tempo = f"{prompt}, {plan.tempo.bpm:g} bpm"
    return with_tempo if loop.tempo_in_prompt and len(with_tempo) <= MAX_PROMPT_CHARS else prompt


def _folded(generated: Restyled, plan: LoopPlan, one_loop: np.ndarray, prompt: str) -> Looped:
    clock = time.perf_counter()
    candidates, seams, intro_seams = [], [], []
    for candidate in generated.candidates:
        audio = fold(candidate.audio, plan)
        adherence = melody_adherence(one_loop, audio.mean(axis=0), plan.sample_rate)
        candidates.append(Candidate(candidate.index, candidate.seed, audio, adherence))
        seams.append(seam_figures(audio[:, plan.intro_samples :], _divisions(plan.bars, plan)))
        if plan.intro_bars:
            intro_seams.append(intro_seam(audio, plan))
    timings = {**generated.timings, "loop_s": time.perf_counter() - clock}
    duration = plan.total_samples / plan.sample_rate
    result = replace(generated, duration_s=duration, candidates=candidates, timings=timings)
    asked = generated.options.duration_s
    info = LoopInfo(plan, tuple(seams), prompt, tuple(intro_seams), asked_duration_s=asked)
    return Looped(result, info)


def _divisions(bars: int, plan: LoopPlan) -> int:
    """Moments comparable to a bar-line seam: the bars, or a one-bar piece's beats."""
    return bars if bars > 1 else plan.tempo.beats_per_bar


def intro_seam(audio: np.ndarray, plan: LoopPlan) -> SeamFigures:
    """The intro -> loop boundary measured as a loop's wrap is: the file turned round so the
    boundary is its first sample (the file's own end -> start becomes one moment among thousands)."""
    turned = np.roll(audio[:, : plan.total_samples], -plan.intro_samples, axis=-1)
    return seam_figures(turned, _divisions(plan.intro_bars + plan.bars, plan))


def loop_mastering(mastering: MasteringOptions | None = None) -> MasteringOptions:
    """Mastering for loops: the same gain, no fade-out (a fade would dip at every wrap)."""
    return replace(mastering or MasteringOptions(), fade_out_s=0.0)
