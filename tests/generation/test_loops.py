"""Loops: whole bars to the sample, a melody that wraps where the loop does, a generated seam.

The debug model's audio is close to stationary noise, so on it every cut looks alike; whether the
seam figures can tell a good loop from a bad one is checked on synthetic music instead (a click
track cut on and off its bars, and a piece that never returns to where it started).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from generation.audio.chroma import conditioning_chroma
from generation.audio.decode import SeedAudio
from generation.audio.loop_points import encode_loop
from generation.audio.mastering import MasteringOptions, master
from generation.audio.seam import seam_figures
from generation.audio.tempo import Tempo
from generation.errors import AudioInputError, InvalidRequestError
from generation.loops import (
    LoopOptions,
    LoopPlan,
    fold,
    loop_mastering,
    loop_melody,
    loop_prompt,
    plan_loop,
    restyle_loop,
)
from generation.results import RestyleOptions
from tests.audio_factory import melody as note_run
from tests.generation.audio.loop_audio import click_track, evolving_piece, smpl_loops, tags_and_length

RATE = 32_000
FRAME_RATE = 50
BAR_120 = 2 * RATE  # a 4/4 bar at 120 BPM


def plan_at_120(bars: int, *, seed_start: int = 0, overhang: int = BAR_120, generated: int = 0) -> LoopPlan:
    """A plan made by hand: 4/4 at 120 BPM, a one-beat crossfade, `generated` (default: the loop,
    the overhang and a quarter of a second) samples generated."""
    loop = bars * BAR_120
    generated = generated or loop + overhang + RATE // 4
    return LoopPlan(
        Tempo(120.0, 4, seed_start / RATE, 1.0, False),
        RATE,
        bars,
        loop,
        seed_start,
        loop,
        overhang,
        RATE // 2,
        generated,
    )


def seed_of(samples: np.ndarray) -> SeedAudio:
    return SeedAudio(samples, RATE, "0" * 64, "test")


def plan_for(seconds: float, **options) -> LoopPlan:
    loop = LoopOptions(**{k: v for k, v in options.items() if k in LoopOptions.__dataclass_fields__})
    restyle = RestyleOptions(**{k: v for k, v in options.items() if k in RestyleOptions.__dataclass_fields__})
    return plan_loop(seed_of(click_track(seconds, RATE)), restyle, loop, frame_rate=FRAME_RATE)


# The plan: bars, samples, the seed's region


def test_the_loop_is_the_whole_number_of_bars_nearest_the_asked_length():
    plan = plan_for(14.0, duration_s=9.2)  # 4.6 bars at 120 BPM
    assert (plan.bars, plan.loop_samples) == (5, 5 * BAR_120)
    assert plan.seed_start == pytest.approx(1.1 * RATE, abs=0.01 * RATE)
    assert plan.region_samples == plan.loop_samples


def test_with_no_length_asked_the_loop_takes_the_whole_bars_the_seed_holds():
    assert plan_for(12.0).bars == 5  # 10.9 s from the downbeat at 1.1 s


def test_the_loop_length_is_rounded_once_and_the_sidecar_figures_reproduce_it():
    plan = plan_for(20.0, duration_s=13.0, bpm=97.3)
    exact = plan.bars * 4 * 60 / 97.3 * RATE
    assert plan.loop_samples % 2 == 0  # a whole number of samples at Opus's 48 kHz as well
    assert abs(plan.loop_samples - exact) <= 1
    assert plan.loop_samples == 2 * round(plan.bars * 4 * 60 / plan.tempo.bpm * RATE / 2)


def test_a_given_tempo_and_metre_set_the_bars():
    plan = plan_for(12.0, duration_s=6.0, bpm=90.0, beats_per_bar=3)
    assert (plan.tempo.bpm, plan.tempo.detected, plan.bars) == (90.0, False, 3)
    assert plan.loop_samples == 3 * 3 * 60 / 90 * RATE


def test_a_loop_never_passes_the_maximum_duration():
    plan = plan_for(12.0, duration_s=7.0, max_duration_s=7.0)
    assert plan.bars == 3 and plan.loop_s <= 7.0


def test_a_seed_shorter_than_one_bar_is_refused_in_one_line():
    with pytest.raises(AudioInputError, match="less than one whole bar") as caught:
        plan_loop(seed_of(click_track(1.5, RATE)), RestyleOptions(), LoopOptions(bpm=120.0), frame_rate=50)
    assert "\n" not in str(caught.value)


def test_a_seed_shorter_than_the_loop_is_repeated_in_whole_bars():
    plan = plan_for(5.0, duration_s=12.0)  # the seed holds one bar after its 1.1 s pickup
    assert (plan.bars, plan.region_samples) == (6, round(plan.tempo.bar_s * RATE))


@pytest.mark.parametrize("crossfade_beats", [0.0, 9.0])
def test_a_crossfade_longer_than_the_overhang_or_empty_is_refused(crossfade_beats):
    with pytest.raises(InvalidRequestError):
        plan_for(12.0, crossfade_beats=crossfade_beats)


def test_the_overhang_is_at_least_two_seconds_and_generation_covers_it_in_whole_codec_frames():
    plan = plan_for(12.0, duration_s=8.0, bpm=200.0)  # a bar is 1.2 s: two bars of overhang
    assert plan.overhang_samples == round(2 * 1.2 * RATE)
    assert plan.generated_samples % (RATE // FRAME_RATE) == 0
    assert plan.generated_samples >= plan.loop_samples + plan.overhang_samples


def test_the_tempo_joins_the_prompt_only_where_it_fits():
    plan = plan_for(12.0, duration_s=8.0)
    assert loop_prompt("lofi  piano", plan, LoopOptions()) == "lofi piano, 120 bpm"
    assert loop_prompt("lofi piano", plan, LoopOptions(tempo_in_prompt=False)) == "lofi piano"
    assert loop_prompt("x" * 495, plan, LoopOptions()) == "x" * 495


def test_loops_are_mastered_without_a_fade_out():
    audio = np.full((1, 4 * RATE), 0.1, dtype=np.float32)
    mastered, _ = master(audio, RATE, loop_mastering(MasteringOptions(target_lufs=None)))
    np.testing.assert_array_equal(mastered, audio)
    assert master(audio, RATE, MasteringOptions(target_lufs=None))[0][0, -1] < 0.01  # what it avoids


# The melody the engine hears


NOTES = {"C": 261.6, "E": 329.6, "G": 392.0, "B": 493.9, "F#": 370.0, "A": 440.0}
PITCH_CLASS = {"C": 0, "E": 4, "F#": 6, "G": 7, "A": 9, "B": 11}


@pytest.mark.parametrize("generated_s", [10.0, 40.0], ids=["one-window", "two-windows"])
def test_the_conditioning_wraps_to_the_loops_first_bar_where_the_loop_ends(fast_engine, generated_s):
    # Half a second of pickup (F#), the loop's two bars (C E G B, a second each), then more (A A).
    seed = np.concatenate(
        [
            note_run([NOTES["F#"]], 0.5, RATE),
            note_run([NOTES[n] for n in "CEGB"] + [NOTES["A"]] * 2, 1.0, RATE),
        ]
    )
    plan = plan_at_120(2, seed_start=RATE // 2, generated=int(generated_s * RATE))
    melody = loop_melody(seed, plan, fast_engine.window_s)
    windows = fast_engine.plan(generated_s)
    checked = 0
    for window in windows:
        frames = conditioning_chroma(
            melody, offset_s=window.offset_s, single_window=len(windows) == 1, frames=235, sample_rate=RATE
        )
        for index in range(1, 235):
            at = (window.offset_s + index * 4096 / RATE) % plan.loop_s  # where in the loop this frame is
            if abs(at - round(at)) < 0.3:  # too near a note change: the 0.5 s FFT window hears two
                continue
            assert int(frames[index].argmax()) == PITCH_CLASS["CEGB"[int(at)]], (window.index, index)
            checked += 1
    assert checked > 80 * len(windows)


def test_the_melody_is_a_whole_number_of_loops_and_covers_a_30_second_window(fast_engine):
    plan = plan_for(12.0, duration_s=4.0)
    melody = loop_melody(click_track(12.0, RATE), plan, fast_engine.window_s)
    assert len(melody) % plan.loop_samples == 0 and len(melody) >= 30 * RATE


# The fold


def test_the_wrap_is_generated_audio_sample_after_sample_and_the_crossfade_keeps_power():
    plan = plan_at_120(2)
    generated = np.random.default_rng(1).standard_normal((2, plan.generated_samples)).astype(np.float32)
    looped = fold(generated, plan)
    loop, overhang, fade = plan.loop_samples, plan.overhang_samples, plan.crossfade_samples
    assert looped.shape == (2, loop)
    np.testing.assert_array_equal(looped[:, -1], generated[:, loop - 1])  # the loop's end...
    np.testing.assert_array_equal(looped[:, : overhang - fade], generated[:, loop : loop + overhang - fade])
    np.testing.assert_array_equal(looped[:, overhang:], generated[:, overhang:loop])
    mixed = looped[:, overhang - fade : overhang]  # ...and the one join, a beat long, ending on the bar
    tail_only, head_only = np.zeros_like(generated), np.zeros_like(generated)
    tail_only[:, loop:] = 1.0
    head_only[:, :loop] = 1.0
    tail_gain = fold(tail_only, plan)[0, overhang - fade : overhang]
    head_gain = fold(head_only, plan)[0, overhang - fade : overhang]
    np.testing.assert_allclose(tail_gain**2 + head_gain**2, 1.0, atol=1e-6)  # equal power, each sample
    assert tail_gain[0] > 0.999 and head_gain[-1] > 0.999  # from the overhang into the head
    assert np.var(mixed) == pytest.approx(np.var(generated), rel=0.1)


@pytest.mark.parametrize(
    "options",
    [{"bpm": 140.0, "duration_s": 1.7}, {"beats_per_bar": 1, "bpm": 120.0, "duration_s": 1.0}],
    ids=["one-bar-under-2-s", "two-one-beat-bars"],
)
def test_a_loop_shorter_than_its_overhang_folds_to_one_loop_whose_wrap_is_generated(options):
    plan = plan_for(4.0, **options)
    assert plan.overhang_samples > plan.loop_samples  # the overhang is at least 2 s
    generated = np.random.default_rng(2).standard_normal((1, plan.generated_samples)).astype(np.float32)
    looped = fold(generated, plan)
    loop = plan.loop_samples
    assert looped.shape == (1, loop)
    # Played round, the wrap joins two neighbouring generated samples (the crossfade may end on
    # the loop's last sample, where the head's gain is within 1e-4 of 1).
    (start,) = np.flatnonzero(generated[0] == looped[0, 0])
    assert loop <= start < plan.generated_samples
    assert looped[0, -1] == pytest.approx(generated[0, start - 1], abs=1e-3)


def test_folding_a_piece_that_never_returns_removes_the_click_a_hand_cut_leaves():
    plan = plan_at_120(4)
    generated = evolving_piece(plan.generated_samples / RATE, RATE)
    hand_cut = seam_figures(generated[:, : plan.loop_samples], 4)
    folded = seam_figures(fold(generated, plan), 4)
    assert hand_cut.jump_ratio > 5 and folded.jump_ratio < 1
    assert folded.flux_ratio_bar_lines < hand_cut.flux_ratio_bar_lines


# The seam figures can fail


def test_a_loop_cut_on_its_bars_is_as_smooth_at_the_wrap_as_at_its_other_bar_lines():
    track = click_track(16.0, RATE, first_beat_s=0.0, downbeat_index=0)  # four chords: a 4-bar cycle
    figures = seam_figures(track[None, : 4 * BAR_120], 4)
    assert 0.8 < figures.flux_ratio_bar_lines < 1.25 and figures.jump_ratio < 1


@pytest.mark.parametrize("extra", [RATE // 4, RATE // 2], ids=["half-beat", "one-beat"])
def test_a_loop_cut_off_its_bars_scores_clearly_worse(extra):
    track = click_track(16.0, RATE, first_beat_s=0.0, downbeat_index=0)
    figures = seam_figures(track[None, : 4 * BAR_120 + extra], 4)
    assert figures.flux_ratio_bar_lines > 5 and figures.jump_ratio > 3


# End to end on the debug models


@pytest.fixture(scope="module")
def looped(fast_engine):
    seed = seed_of(click_track(12.0, RATE))
    return seed, restyle_loop(fast_engine, seed, "lofi piano", RestyleOptions(duration_s=8.0, seed=3))


def test_a_loop_lasts_exactly_its_bars(looped):
    _, result = looped
    (candidate,) = result.result.candidates
    assert candidate.audio.shape == (1, 4 * BAR_120)
    assert result.info.loop_end == 4 * BAR_120 and result.info.loop_start == 0
    assert result.result.duration_s == 8.0
    assert result.result.prompt == "lofi piano, 120 bpm"


def test_the_debug_loop_has_no_click_at_its_wrap_and_its_seam_figures_are_recorded(looped):
    _, result = looped
    (seam,) = result.info.seams
    assert seam.jump_ratio < 1.5
    assert seam.flux_ratio_bar_lines < 2
    entry = result.info.sidecar(1)
    assert entry["seam"] == seam.as_dict()
    assert (entry["bpm"], entry["bars"], entry["loop_end"]) == (120.0, 4, 4 * BAR_120)
    assert entry["loop_end_s"] == 8.0


def test_loop_points_read_back_from_the_files_equal_the_loops(looped):
    _, result = looped
    audio, info = result.result.candidates[0].audio, result.info
    wav = encode_loop(audio, RATE, "wav", loop_start=info.loop_start, loop_end=info.loop_end)
    assert smpl_loops(wav) == [(0, info.loop_start, info.loop_end - 1, 0)]  # forward, inclusive end
    assert tags_and_length(wav)[1:] == (info.loop_end, RATE)
    ogg_tags, ogg_samples, ogg_rate = tags_and_length(encode_loop(audio, RATE, "ogg"))
    assert ogg_rate == 48_000 and ogg_samples == info.loop_end * 3 // 2  # Opus counts at 48 kHz
    assert (ogg_tags["LOOPSTART"], ogg_tags["LOOPLENGTH"]) == ("0", str(ogg_samples))
    flac_tags, flac_samples, _ = tags_and_length(encode_loop(audio, RATE, "flac"))
    assert (flac_tags["LOOPSTART"], flac_tags["LOOPLENGTH"], flac_samples) == (
        "0",
        str(info.loop_end),
        info.loop_end,
    )


def test_a_loop_longer_than_30_seconds_runs_in_windows(fast_engine):
    seed = seed_of(click_track(12.0, RATE))
    options = RestyleOptions(duration_s=32.0, max_duration_s=60.0, seed=5)
    result = restyle_loop(fast_engine, seed, "synthwave", options, LoopOptions(bpm=120.0))
    plan = result.info.plan
    assert len(fast_engine.plan(plan.generated_s)) == 2
    assert result.result.candidates[0].audio.shape == (1, 16 * BAR_120)
    assert math.isfinite(result.info.seams[0].jump_ratio)


def test_a_stereo_model_gives_a_stereo_loop():
    from generation.musicgen.engine import MusicGenEngine
    from generation.musicgen.models import load_model

    engine = MusicGenEngine(load_model("debug-stereo", device="cpu"))
    seed = seed_of(click_track(6.0, RATE))
    result = restyle_loop(engine, seed, "wide pads", RestyleOptions(duration_s=4.0, seed=2, candidates=2))
    assert [c.audio.shape for c in result.result.candidates] == [(2, 2 * BAR_120)] * 2
    assert len(result.info.seams) == 2
    assert result.info.plan.bars == 2


def test_with_stems_the_melody_comes_from_the_separated_seed(fast_engine):
    seed = seed_of(click_track(6.0, RATE))
    options = RestyleOptions(duration_s=4.0, seed=1, stems=True)
    with pytest.raises(InvalidRequestError, match="no separator"):
        restyle_loop(fast_engine, seed, "strings", options)
    calls = []

    def separate(samples: np.ndarray, rate: int) -> np.ndarray:
        calls.append((len(samples), rate))
        return samples * 0.5

    result = restyle_loop(fast_engine, seed, "strings", options, separate=separate)
    assert calls == [(len(seed.samples), RATE)] and "stems_s" in result.result.timings


def test_a_family_that_reads_no_melody_is_refused_a_loop_before_anything_loads():
    from generation.acestep.family import ACESTEP
    from generation.loops import check_loopable
    from generation.musicgen.family import MUSICGEN

    check_loopable(MUSICGEN)
    with pytest.raises(InvalidRequestError, match="does not read one") as refused:
        check_loopable(ACESTEP)
    assert "\n" not in str(refused.value)
