"""Loudness per BS.1770, the true-peak ceiling and the fade-out."""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.mastering import (
    MasteringOptions,
    fade_out,
    integrated_lufs,
    master,
    measure,
    true_peak_db,
)
from tests.audio_factory import melody

RATE = 32_000


def _music(amplitude: float, channels: int = 1) -> np.ndarray:
    tune = melody([220.0, 277.2, 329.6, 440.0] * 3, 0.5, RATE, amplitude)
    return np.tile(tune[None], (channels, 1))


def test_a_full_scale_sine_measures_as_bs1770_says():
    # BS.1770: a 997 Hz sine at 0 dBFS on one channel reads -3.01 LKFS.
    t = np.arange(10 * 48_000) / 48_000
    sine = np.sin(2 * np.pi * 997 * t)[None]
    assert integrated_lufs(sine, 48_000) == pytest.approx(-3.01, abs=0.05)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("target", [-14.0, -20.0])
def test_normalisation_reaches_the_target(channels, target):
    audio, gain = master(_music(0.05, channels), RATE, MasteringOptions(target_lufs=target))
    assert measure(audio, RATE).integrated_lufs == pytest.approx(target, abs=0.1)
    assert gain > 0


def test_the_true_peak_ceiling_wins_over_the_target():
    # A lone loud click in quiet music: reaching -14 LUFS would push it far past -1 dBTP.
    audio = _music(0.02)
    audio[0, RATE] = 0.9
    mastered, _ = master(audio, RATE, MasteringOptions(target_lufs=-14.0, true_peak_db=-1.0))
    assert true_peak_db(mastered) == pytest.approx(-1.0, abs=0.05)
    assert measure(mastered, RATE).integrated_lufs < -14.5


def test_true_peak_sees_peaks_between_samples():
    # A sine at a quarter of the rate, sampled off its crests: sample peak 0.707, true peak 1.0.
    t = np.arange(RATE) / RATE
    sine = np.sin(2 * np.pi * (RATE / 4) * t + np.pi / 4)[None]
    assert np.abs(sine).max() == pytest.approx(0.7071, abs=1e-3)
    assert true_peak_db(sine) == pytest.approx(0.0, abs=0.2)


def test_no_normalisation_leaves_the_level_but_still_fades():
    audio = _music(0.05)
    mastered, gain = master(audio, RATE, MasteringOptions(target_lufs=None))
    assert gain == 0.0
    assert np.array_equal(mastered[:, :RATE], audio[:, :RATE])
    assert abs(mastered[0, -1]) < 1e-3 < np.abs(audio[0, -RATE:]).max()


def test_fade_is_at_most_a_tenth_of_a_short_piece():
    audio = np.ones((1, RATE), np.float32)  # 1 s
    faded = fade_out(audio, RATE, seconds=1.0)
    assert np.array_equal(faded[:, : int(0.9 * RATE)], audio[:, : int(0.9 * RATE)])
    assert faded[0, -1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(faded[0, -RATE // 10 :]) <= 1e-7)


def test_silence_and_very_short_audio_are_left_alone():
    silent = np.zeros((1, RATE), np.float32)
    assert master(silent, RATE, MasteringOptions())[1] == 0.0
    assert measure(silent, RATE).integrated_lufs is None
    assert integrated_lufs(_music(0.1)[:, :1000], RATE) is None
