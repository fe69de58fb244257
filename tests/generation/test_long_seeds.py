"""A long seed for a short piece (the command line takes an hour-long seed and caps the output):
only the part a job reads is separated and analysed, and what comes out is as from the whole seed."""

from __future__ import annotations

import numpy as np

from generation.audio.decode import SeedAudio
from generation.loops import LoopOptions, restyle_loop
from generation.pipeline import REACH_MARGIN_S, restyle
from generation.results import RestyleOptions
from tests.generation.audio.loop_audio import click_track

RATE = 32_000


def _two_minutes() -> np.ndarray:
    return np.tile(click_track(4.0, RATE), 30)  # two bars at 120 BPM, again and again


def _seed(samples: np.ndarray) -> SeedAudio:
    return SeedAudio(samples.astype(np.float32), RATE, "0" * 64, "test")


class Recorder:
    """A stand-in separator (the identity) that notes how much of the seed it was handed."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        self.lengths.append(len(samples))
        return samples


def test_only_what_a_short_piece_reads_of_a_long_seed_is_separated(fast_engine):
    long = _two_minutes()  # for a 3-second piece
    separate = Recorder()
    options = RestyleOptions(duration_s=3.0, max_duration_s=300.0, seed=4, stems=True)
    whole = restyle(fast_engine, _seed(long), "lofi", options, separate=separate)
    (read,) = separate.lengths
    assert read <= (fast_engine.window_s + REACH_MARGIN_S) * RATE  # a window and the margin
    cut = restyle(fast_engine, _seed(long[:read]), "lofi", options, separate=Recorder())
    np.testing.assert_array_equal(whole.candidates[0].audio, cut.candidates[0].audio)
    assert whole.candidates[0].adherence == cut.candidates[0].adherence


def test_a_loop_separates_only_its_bars_of_a_long_seed(fast_engine):
    separate = Recorder()
    options = RestyleOptions(duration_s=4.0, max_duration_s=300.0, seed=4, stems=True)
    looped = restyle_loop(
        fast_engine, _seed(_two_minutes()), "lofi", options, LoopOptions(), separate=separate
    )
    plan = looped.info.plan
    (read,) = separate.lengths
    assert read <= plan.seed_start + plan.region_samples + REACH_MARGIN_S * RATE
