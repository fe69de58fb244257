"""Encoding candidates: every output format decodes back to the same length, and files fit limits."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from generation.audio.chroma import chroma
from generation.audio.decode import decode_audio
from generation.audio.encode import FORMATS, encode_audio, encode_to_fit
from generation.errors import InvalidRequestError
from tests.audio_factory import melody

RATE = 32_000


def _tune(seconds: float = 4.0) -> np.ndarray:
    return melody([329.6, 392.0, 440.0, 523.3], seconds / 4, RATE)[None]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_round_trips(name, channels):
    audio = np.tile(_tune(), (channels, 1))
    decoded = decode_audio(encode_audio(audio, RATE, name))
    assert decoded.duration_s == pytest.approx(4.0, abs=0.03)
    assert f"{channels} ch" in decoded.source
    same = (chroma(decoded.samples).argmax(-1)[:28] == chroma(audio[0]).argmax(-1)[:28]).float().mean()
    assert same > 0.9


def test_wav_is_16_bit_pcm_and_clips_instead_of_wrapping():
    loud = np.full((1, RATE), 1.5, np.float32)
    with wave.open(io.BytesIO(encode_audio(loud, RATE, "wav"))) as file:
        assert (file.getsampwidth(), file.getnchannels(), file.getframerate()) == (2, 1, RATE)
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    assert samples.min() == samples.max() == 32767


def test_a_file_is_fitted_under_the_limit_by_lowering_the_bitrate():
    audio = _tune(30.0)
    roomy, roomy_rate = encode_to_fit(audio, RATE, "mp3", max_bytes=10 * 1024 * 1024)
    tight, tight_rate = encode_to_fit(audio, RATE, "mp3", max_bytes=300_000)
    assert roomy_rate == 192_000 and len(roomy) <= 10 * 1024 * 1024
    assert tight_rate < roomy_rate and len(tight) <= 300_000
    assert decode_audio(tight).duration_s == pytest.approx(30.0, abs=0.05)


def test_nothing_fits_a_tiny_limit():
    with pytest.raises(InvalidRequestError, match="too long to fit"):
        encode_to_fit(_tune(30.0), RATE, "mp3", max_bytes=20_000)
    with pytest.raises(InvalidRequestError, match="lossless"):
        encode_to_fit(_tune(30.0), RATE, "flac", max_bytes=20_000)


def test_unknown_formats_are_refused():
    with pytest.raises(InvalidRequestError, match="Unknown format"):
        encode_audio(_tune(), RATE, "aiff")
