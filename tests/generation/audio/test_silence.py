"""One silence judgement, per channel, at every front (issue 23, defect 8): stereo whose channels
are opposite in phase cancels in a mono mix, yet each channel holds the music."""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.decode import decode_audio, is_silent, mono_of
from generation.errors import AudioInputError
from tests.audio_factory import melody, pcm_wav

RATE = 32_000


def _stereo_wav(left: np.ndarray, right: np.ndarray) -> bytes:
    return pcm_wav([left, right], RATE)


@pytest.fixture(scope="module")
def tune() -> np.ndarray:
    return melody([392.0, 440.0, 493.9, 523.3], 0.5, RATE)


def test_opposite_phase_stereo_is_not_silent_for_a_mono_reader(tune):
    seed = decode_audio(_stereo_wav(tune, -tune))  # MusicGen's read: mono, 32 kHz
    assert not is_silent(seed.samples)
    # The melody is one channel's, not the cancelled sum's.
    assert np.corrcoef(seed.samples[: len(tune)], tune)[0, 1] > 0.99


def test_opposite_phase_stereo_is_not_silent_for_a_stereo_reader(tune):
    seed = decode_audio(_stereo_wav(tune, -tune), channels=2)  # ACE-Step's read
    assert seed.channels == 2 and not is_silent(seed.samples)
    assert np.corrcoef(seed.mono[: len(tune)], tune)[0, 1] > 0.99  # what adherence is measured on


@pytest.mark.parametrize("channels", [1, 2])
def test_silence_in_every_channel_is_still_refused(channels):
    quiet = np.full(RATE * 2, 1e-6, np.float32)
    with pytest.raises(AudioInputError, match="silent"):
        decode_audio(_stereo_wav(quiet, -quiet), channels=channels)


def test_one_silent_channel_is_not_silence(tune):
    seed = decode_audio(_stereo_wav(tune, np.zeros_like(tune)))
    assert not is_silent(seed.samples)


def test_mono_of_keeps_the_mean_where_it_is_heard(tune):
    planar = np.stack([tune, tune * 0.5])
    assert np.allclose(mono_of(planar), tune * 0.75)
    assert np.array_equal(mono_of(np.stack([tune, -tune * 0.5])), tune * 0.25)
