"""Intro + loop: one file, the intro's whole bars then the loop's, exact to the sample; the intro's
end leads into the loop as generated audio, and the loop's end comes back to the same place."""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.decode import SeedAudio
from generation.audio.seam import seam_figures
from generation.audio.tempo import Tempo
from generation.errors import InvalidRequestError
from generation.loops import LoopOptions, LoopPlan, fold, loop_melody, plan_loop, restyle_loop
from generation.results import RestyleOptions
from tests.generation.audio.loop_audio import click_track, evolving_piece, smpl_loops, tags_and_length

RATE = 32_000
BAR_120 = 2 * RATE


def intro_plan(intro_bars: int, bars: int) -> LoopPlan:
    """By hand: 4/4 at 120 BPM, a one-beat crossfade, no overhang (an intro's loop folds into it)."""
    intro, loop = intro_bars * BAR_120, bars * BAR_120
    tempo = Tempo(120.0, 4, 0.0, 1.0, False)
    return LoopPlan(
        tempo, RATE, bars, loop, 0, loop, 0, RATE // 2, intro + loop + RATE // 4, intro_bars, intro
    )


def plan_for(seconds: float, intro_bars: int, **options) -> LoopPlan:
    seed = SeedAudio(click_track(seconds, RATE), RATE, "0" * 64, "test")
    return plan_loop(seed, RestyleOptions(**options), LoopOptions(intro_bars=intro_bars), frame_rate=50)


def test_the_intro_is_whole_bars_before_the_loop_and_generation_needs_no_overhang():
    plan = plan_for(14.0, 1, duration_s=8.0)
    assert (plan.intro_bars, plan.intro_samples, plan.bars, plan.loop_samples) == (1, BAR_120, 4, 4 * BAR_120)
    assert plan.total_samples == 5 * BAR_120 and plan.overhang_samples == 0
    assert plan.total_samples <= plan.generated_samples < plan.total_samples + RATE // 2
    assert plan.bar_lines() == [k * BAR_120 for k in range(6)]


def test_without_an_intro_the_plan_is_as_before():
    plan = plan_for(14.0, 0, duration_s=8.0)
    assert (plan.intro_samples, plan.total_samples, plan.overhang_samples) == (0, 4 * BAR_120, BAR_120)


@pytest.mark.parametrize(
    ("intro", "options", "expected"),
    [
        (-1, {}, "whole number of bars"),
        (6, {"duration_s": 8.0, "max_duration_s": 12.0}, "intro of 6 bars .* longer than the maximum"),
    ],
)
def test_a_bad_intro_is_refused_in_one_line(intro, options, expected):
    with pytest.raises(InvalidRequestError, match=expected):
        plan_for(14.0, intro, **options)


def test_a_loop_planned_as_bars_with_its_intro_is_checked_against_the_cap_too():
    seed = SeedAudio(click_track(14.0, RATE), RATE, "0" * 64, "test")
    loop = LoopOptions(bars=30, intro_bars=4)  # 68 s
    with pytest.raises(InvalidRequestError, match=r"intro \(4 bars\) and the loop \(30 bars\)"):
        plan_loop(seed, RestyleOptions(max_duration_s=60.0), loop, frame_rate=50)


def test_with_no_length_asked_the_loop_leaves_room_for_the_intro_under_the_cap():
    plan = plan_for(14.0, 2, max_duration_s=12.0)  # the seed holds 6 whole bars from its downbeat
    assert plan.intro_bars + plan.bars == 6


def test_the_intro_plays_the_loops_last_bars_of_melody_and_the_loop_starts_on_its_first():
    plan = intro_plan(1, 2)
    source = np.arange(3 * BAR_120, dtype=np.float32)  # every sample says where in the seed it is
    melody = loop_melody(source, plan, window_s=1.0)
    one_loop = source[: 2 * BAR_120]
    np.testing.assert_array_equal(melody[BAR_120 : 3 * BAR_120], one_loop)  # the loop: bar 1 on
    np.testing.assert_array_equal(melody[:BAR_120], one_loop[BAR_120:])  # the intro: the loop's last bar
    assert len(melody) % plan.loop_samples == 0


def test_the_boundary_is_generated_and_the_loops_end_leads_into_its_start_as_the_intro_does():
    plan = intro_plan(1, 2)
    generated = np.random.default_rng(3).standard_normal((2, plan.generated_samples)).astype(np.float32)
    out = fold(generated, plan)
    intro, end, fade = plan.intro_samples, plan.total_samples, plan.crossfade_samples
    assert out.shape == (2, end)
    # Everything up to the loop's last beat is the generation as it came, the intro -> loop boundary too.
    np.testing.assert_array_equal(out[:, : end - fade], generated[:, : end - fade])
    # The loop's last beat turns, with equal power, into the intro's last beat: played round, the
    # loop's end is followed by the very sample that followed it in the generation.
    assert out[:, -1] == pytest.approx(generated[:, intro - 1], abs=1e-3)
    ones = np.ones_like(generated)
    tail, lead = ones.copy(), ones.copy()
    tail[:, : end - fade] = 0
    lead[:, end - fade :] = 0
    gains = fold(tail, plan)[0, end - fade :], fold(lead, plan)[0, end - fade :]
    np.testing.assert_allclose(gains[0] ** 2 + gains[1] ** 2, 1.0, atol=1e-6)


def test_on_a_piece_that_never_returns_the_fold_removes_the_click_a_hand_cut_loop_leaves():
    plan = intro_plan(1, 4)
    generated = evolving_piece(plan.generated_samples / RATE, RATE)
    hand_cut = seam_figures(generated[:, plan.intro_samples : plan.total_samples], 4)
    folded = seam_figures(fold(generated, plan)[:, plan.intro_samples :], 4)
    # The drone's phase jumps at the hand cut (a step a fifth over the loop's typical one), not at the fold.
    assert folded.jump_ratio < 0.5 and hand_cut.jump_ratio > 1
    assert folded.flux_ratio < hand_cut.flux_ratio


def test_a_debug_intro_and_loop_lasts_its_bars_and_its_files_mark_the_loop_after_the_intro(fast_engine):
    seed = SeedAudio(click_track(10.0, RATE), RATE, "0" * 64, "test")
    looped = restyle_loop(
        fast_engine, seed, "chiptune", RestyleOptions(duration_s=4.0, seed=2), LoopOptions(intro_bars=1)
    )
    info, (candidate,) = looped.info, looped.result.candidates
    assert candidate.audio.shape == (1, 3 * BAR_120)
    assert (info.loop_start, info.loop_end, looped.result.duration_s) == (BAR_120, 3 * BAR_120, 6.0)
    entry = info.sidecar(1)
    assert (entry["intro_samples"], entry["loop_samples"], entry["intro_s"], entry["loop_s"]) == (
        BAR_120,
        2 * BAR_120,
        2.0,
        4.0,
    )
    assert entry["intro_seam"] == info.intro_seams[0].as_dict() and entry["overhang_s"] == 0.0
    from generation.audio.loop_points import encode_loop

    wav = encode_loop(candidate.audio, RATE, "wav", loop_start=info.loop_start, loop_end=info.loop_end)
    assert smpl_loops(wav) == [(0, BAR_120, 3 * BAR_120 - 1, 0)]
    tags, samples, rate = tags_and_length(
        encode_loop(candidate.audio, RATE, "ogg", loop_start=info.loop_start, loop_end=info.loop_end)
    )
    assert (tags["LOOPSTART"], tags["LOOPLENGTH"], samples, rate) == ("96000", "192000", 288000, 48_000)
