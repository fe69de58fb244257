"""Loops in the bot: planned when a request is admitted (off the event loop), kept with the job
in the database, and planned again the same way, to the same bars, when the worker runs it."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from bot.models import JobRow
from generation.audio.decode import SeedAudio
from generation.families import family_for
from generation.loops import LoopOptions, LoopPlan, plan_loop
from generation.pipeline import MIN_OUTPUT_S
from generation.results import RestyleOptions


def plan_admitted(
    seed: SeedAudio,
    model: str,
    duration_s: float | None,
    bpm: float | None,
    max_output_s: float,
    *,
    intro_bars: int = 0,
) -> LoopPlan:
    """The loop a request asks for, or `AudioInputError`/`InvalidRequestError` in one line (no
    clear beat, less than a bar, a bar longer than the limit, an intro and loop past the limit).
    `duration_s` is the loop's, without the intro. Blocking, CPU only (up to ~3 s for a 5-minute
    seed): run it in an executor.

    A loop lasts at least `MIN_OUTPUT_S`, what every front makes and takes as a seed, so its
    Reroll and Remix can make it again: where the bars nearest the asked length are shorter (one
    bar at 300 BPM is 0.8 s), it gets the fewest whole bars that last that long."""
    options = RestyleOptions(duration_s=duration_s, max_duration_s=max_output_s)
    loop = LoopOptions(bpm=bpm, intro_bars=intro_bars)
    frame_rate = family_for(model).frame_rate
    plan = plan_loop(seed, options, loop, frame_rate=frame_rate)
    if plan.loop_s >= MIN_OUTPUT_S:
        return plan
    bars = math.ceil(MIN_OUTPUT_S / plan.tempo.bar_s - 1e-9)
    return plan_loop(seed, options, replace(loop, bars=bars), frame_rate=frame_rate)


def loop_columns(plan: LoopPlan | None, bpm: float | None, *, layers: bool = False) -> dict[str, Any]:
    """What a job's row records of its loop (nothing for a job that is not one)."""
    if plan is None:
        return {}
    return {
        "loop": True,
        "loop_bpm": bpm,
        "loop_bars": plan.bars,
        "loop_tempo": plan.tempo.bpm,
        "loop_generated_s": plan.generated_s,
        "loop_intro_bars": plan.intro_bars,
        "loop_layers": layers,
    }


def file_s(plan: LoopPlan) -> float:
    """A loop's file: its intro, then the loop."""
    return plan.total_samples / plan.sample_rate


def loop_length_s(job: JobRow) -> float:
    """A loop job's loop without its intro (intro and loop are whole bars of one tempo): what a
    Reroll or Remix plans its loop from, so that it gets the same bars."""
    return job.duration_s * job.loop_bars / (job.loop_bars + job.loop_intro_bars)


def rerun_length_s(job: JobRow, max_output_s: float) -> float:
    """The loop length a Reroll or Remix of `job` plans from: its own, within today's limit (which
    may have dropped since; the loop is then planned again in fewer bars) and never under the floor
    (a loop made before the floor held is made long enough)."""
    return min(max(loop_length_s(job), MIN_OUTPUT_S), max_output_s)


def work_loop(job: JobRow) -> LoopOptions | None:
    """The loop the worker makes of a job: the tempo as asked, the bars and intro as planned at admission."""
    if not job.loop:
        return None
    return LoopOptions(bpm=job.loop_bpm, bars=job.loop_bars, intro_bars=job.loop_intro_bars)
