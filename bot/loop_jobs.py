"""Loops in the bot: planned when a request is admitted (off the event loop), kept with the job
in the database, and planned again the same way, to the same bars, when the worker runs it."""

from __future__ import annotations

from typing import Any

from bot.models import JobRow
from generation.audio.decode import SeedAudio
from generation.families import family_for
from generation.loops import LoopOptions, LoopPlan, plan_loop
from generation.results import RestyleOptions


def plan_admitted(
    seed: SeedAudio, model: str, duration_s: float | None, bpm: float | None, max_output_s: float
) -> LoopPlan:
    """The loop a request asks for, or `AudioInputError`/`InvalidRequestError` in one line (no
    clear beat, less than a bar, a bar longer than the limit). Blocking, CPU only (up to ~3 s for
    a 5-minute seed): run it in an executor."""
    options = RestyleOptions(duration_s=duration_s, max_duration_s=max_output_s)
    return plan_loop(seed, options, LoopOptions(bpm=bpm), frame_rate=family_for(model).frame_rate)


def loop_columns(plan: LoopPlan | None, bpm: float | None) -> dict[str, Any]:
    """What a job's row records of its loop (nothing for a job that is not one)."""
    if plan is None:
        return {}
    return {
        "loop": True,
        "loop_bpm": bpm,
        "loop_bars": plan.bars,
        "loop_tempo": plan.tempo.bpm,
        "loop_generated_s": plan.generated_s,
    }


def work_loop(job: JobRow) -> LoopOptions | None:
    """The loop the worker makes of a job: the tempo as asked, the bars as planned at admission."""
    return LoopOptions(bpm=job.loop_bpm, bars=job.loop_bars) if job.loop else None
