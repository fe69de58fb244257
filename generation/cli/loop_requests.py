"""What `--loop`, `--bpm` and `--beats-per-bar` ask for (a batch file's `loop`, `bpm` and
`beats_per_bar` too), checked before any work; and what the console says about a loop."""

from __future__ import annotations

from generation.audio.loop_points import check_loop_format
from generation.audio.tempo import check_beats_per_bar, check_bpm
from generation.errors import InvalidRequestError
from generation.game_music import loop_verdict
from generation.humanize import count_of
from generation.interface import Family
from generation.loops import LoopInfo, LoopOptions, LoopPlan, check_loopable

STRAY_TEMPO = "--bpm and --beats-per-bar set a loop's tempo: add --loop."
STRAY_INTRO = "--intro and --layers are for loops: add --loop."
MAX_INTRO_BARS = 64


def loop_options(
    loop: bool,
    bpm: float | None,
    beats_per_bar: int | None,
    *,
    family: Family,
    format_name: str,
    intro: int | None = None,
) -> LoopOptions | None:
    """The loop asked for, checked (the model reads a melody, the format carries loop points, the
    tempo is in range, the intro is whole bars), or None for no loop."""
    if not loop:
        return None
    check_loopable(family)
    check_loop_format(format_name)
    return LoopOptions(
        bpm=None if bpm is None else check_bpm(bpm),
        beats_per_bar=None if beats_per_bar is None else check_beats_per_bar(beats_per_bar),
        intro_bars=check_intro_bars(intro),
    )


def check_intro_bars(intro: int | None) -> int:
    if intro is None:
        return 0
    if isinstance(intro, bool) or not isinstance(intro, int) or not 0 <= intro <= MAX_INTRO_BARS:
        raise InvalidRequestError(f"An intro is a whole number of bars from 0 to {MAX_INTRO_BARS}.")
    return intro


def refuse_stray_tempo(bpm: float | None, beats_per_bar: int | None, *, looping: bool) -> None:
    if not looping and (bpm is not None or beats_per_bar is not None):
        raise InvalidRequestError(STRAY_TEMPO)


def refuse_stray_game_options(intro: int | None, layers: bool, *, looping: bool) -> None:
    if not looping and (intro is not None or layers):
        raise InvalidRequestError(STRAY_INTRO)


def planned(plan: LoopPlan) -> str:
    """The loop as planned, said before the model loads."""
    tempo = plan.tempo
    found = f"detected, beat clarity {tempo.clarity:.2f}" if tempo.detected else "as given"
    intro = f"an intro of {count_of(plan.intro_bars, 'bar')} then " if plan.intro_bars else ""
    return (
        f"loop: {intro}{count_of(plan.bars, 'bar')} of {tempo.beats_per_bar} at {tempo.bpm:g} BPM "
        f"({plan.loop_s:.2f} s; tempo {found}), generating {plan.generated_s:.2f} s for the seam"
    )


def seamless(info: LoopInfo, candidate_index: int) -> str:
    """How a finished loop wraps: "loops seamlessly" only where its seam figures say so
    (`generation.game_music`), otherwise what may be heard; the figures either way."""
    plan, seam = info.plan, info.seams[candidate_index - 1]
    verdict = loop_verdict(info.sidecar(candidate_index))
    said = "loops seamlessly" if verdict.seamless else f"loops, {verdict.words}"
    return (
        f"{said}: {count_of(plan.bars, 'bar')} at {plan.tempo.bpm:g} BPM "
        f"(seam: flux {seam.flux_ratio_bar_lines:.2f}x, jump {seam.jump_ratio:.2f}x the track's typical)"
    )
