"""The beat grid of a seed: tempo, downbeat, overrides, and seeds with no beat to find.

Tolerances: the tempo within 0.05 % (over a 16-bar loop at 120 BPM that is 16 ms, an eighth of one
128 ms chroma frame, the melody's own resolution); the downbeat within 10 ms (the crossfade lasts a
beat, hundreds of ms, and chroma frames are 128 ms).
"""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.tempo import find_tempo
from generation.errors import AudioInputError, InvalidRequestError
from tests.generation.audio.loop_audio import CHORDS_HZ, click_track

RATE = 32_000
BPM_TOLERANCE = 0.0005
DOWNBEAT_TOLERANCE_S = 0.010


@pytest.mark.parametrize(
    ("bpm", "first_beat_s", "downbeat_index", "seconds"),
    [
        (120.0, 0.1, 2, 12.0),  # starts on a pickup: the first downbeat is the third beat, at 1.1 s
        (97.3, 0.23, 1, 16.0),
        (175.0, 0.05, 3, 10.0),
        (120.0, 0.0, 0, 8.0),  # starts exactly on its downbeat, four bars long
    ],
)
def test_a_click_track_gives_its_tempo_and_first_downbeat(bpm, first_beat_s, downbeat_index, seconds):
    seed = click_track(seconds, RATE, bpm=bpm, first_beat_s=first_beat_s, downbeat_index=downbeat_index)
    tempo = find_tempo(seed, RATE)
    assert tempo.detected
    assert tempo.bpm == pytest.approx(bpm, rel=BPM_TOLERANCE)
    assert tempo.beats_per_bar == 4
    assert tempo.first_downbeat_s == pytest.approx(
        first_beat_s + downbeat_index * 60 / bpm, abs=DOWNBEAT_TOLERANCE_S
    )
    assert tempo.clarity > 0.5


def test_three_beats_to_the_bar_find_the_accented_one():
    seed = click_track(12.0, RATE, bpm=90.0, beats_per_bar=3, first_beat_s=0.2, downbeat_index=1)
    tempo = find_tempo(seed, RATE, beats_per_bar=3)
    assert tempo.bpm == pytest.approx(90.0, rel=BPM_TOLERANCE)
    assert tempo.first_downbeat_s == pytest.approx(0.2 + 60 / 90, abs=DOWNBEAT_TOLERANCE_S)


def test_a_given_tempo_is_used_as_it_is_and_the_grid_still_sits_on_the_beats():
    seed = click_track(12.0, RATE, bpm=120.0)
    tempo = find_tempo(seed, RATE, bpm=60.0)
    assert (tempo.bpm, tempo.detected) == (60.0, False)
    beats_from_first = (tempo.first_downbeat_s - 0.1) / 0.5
    assert beats_from_first == pytest.approx(round(beats_from_first), abs=DOWNBEAT_TOLERANCE_S / 0.5)


def test_a_given_tempo_is_rounded_to_a_hundredth_of_a_bpm():
    assert find_tempo(click_track(8.0, RATE), RATE, bpm=120.004).bpm == 120.0


@pytest.mark.parametrize(
    "seed",
    [
        np.random.default_rng(0).standard_normal(RATE * 10).astype(np.float32) * 0.1,
        sum(0.1 * np.sin(2 * np.pi * hz * np.arange(RATE * 10) / RATE) for hz in CHORDS_HZ[0]),
    ],
    ids=["noise", "held-chord"],
)
def test_a_seed_with_no_clear_beat_is_refused_in_one_line(seed):
    with pytest.raises(AudioInputError, match="no clear beat") as caught:
        find_tempo(seed.astype(np.float32), RATE)
    assert "\n" not in str(caught.value) and "bpm" in str(caught.value)


def test_with_a_given_tempo_a_seed_with_no_beat_loops_from_its_start():
    held = 0.2 * np.sin(2 * np.pi * 220.0 * np.arange(RATE * 6) / RATE)
    tempo = find_tempo(held.astype(np.float32), RATE, bpm=100.0)
    assert (tempo.bpm, tempo.first_downbeat_s) == (100.0, 0.0)


@pytest.mark.parametrize(
    ("bpm", "beats_per_bar"), [(10.0, None), (1000.0, None), (float("nan"), None), (None, 0), (None, 17)]
)
def test_out_of_range_overrides_are_refused(bpm, beats_per_bar):
    with pytest.raises(InvalidRequestError):
        find_tempo(click_track(4.0, RATE), RATE, bpm=bpm, beats_per_bar=beats_per_bar)
