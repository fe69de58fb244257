"""Loop points in the files, read back by readers independent of the writer: the RIFF chunks
parsed by hand, the Vorbis comments through PyAV (FFmpeg's demuxers)."""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.encode import encode_audio
from generation.audio.loop_points import add_smpl, encode_loop, loop_tags
from generation.errors import InvalidRequestError
from tests.generation.audio.loop_audio import riff_chunks, smpl_loops, tags_and_length

RATE = 32_000


def tone(samples: int, channels: int = 1) -> np.ndarray:
    wave = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(samples) / RATE)
    return np.tile(wave.astype(np.float32), (channels, 1))


@pytest.mark.parametrize("channels", [1, 2])
def test_a_wav_loop_has_one_forward_loop_with_an_inclusive_end(channels):
    data = encode_loop(tone(64_000, channels), RATE, "wav")
    assert smpl_loops(data) == [(0, 0, 63_999, 0)]  # forward, from 0 to the last sample, forever
    chunks = riff_chunks(data)
    assert list(chunks).index(b"smpl") < list(chunks).index(b"data")
    assert len(chunks[b"data"]) == 64_000 * 2 * channels  # the audio is untouched
    sample_period_ns = int.from_bytes(chunks[b"smpl"][8:12], "little")
    assert sample_period_ns == round(1e9 / RATE)


def test_a_loop_inside_the_file_is_written_as_asked():
    data = encode_loop(tone(64_000), RATE, "wav", loop_start=16_000, loop_end=48_000)
    assert smpl_loops(data) == [(0, 16_000, 47_999, 0)]


def test_a_wav_file_with_an_odd_sized_chunk_still_gets_its_loop():
    plain = encode_audio(tone(1000), RATE, "wav")
    fmt_end = 12 + 8 + int.from_bytes(plain[16:20], "little")
    odd = b"junk" + (3).to_bytes(4, "little") + b"abc\x00"  # padded to even, as RIFF requires
    riff = plain[:fmt_end] + odd + plain[fmt_end:]
    riff = riff[:4] + (len(riff) - 8).to_bytes(4, "little") + riff[8:]
    assert smpl_loops(add_smpl(riff, 0, 1000, RATE)) == [(0, 0, 999, 0)]


def test_opus_loop_points_count_samples_at_48_khz():
    tags, samples, rate = tags_and_length(encode_loop(tone(64_002, 2), RATE, "ogg"))
    assert rate == 48_000 and samples == 96_003
    assert (tags["LOOPSTART"], tags["LOOPLENGTH"]) == ("0", "96003")


def test_flac_loop_points_count_samples_at_the_models_rate():
    tags, samples, _ = tags_and_length(encode_loop(tone(64_000), RATE, "flac", loop_start=32_000))
    assert (tags["LOOPSTART"], tags["LOOPLENGTH"], samples) == ("32000", "32000", 64_000)


def test_mp3_cannot_carry_loop_points_and_says_so():
    with pytest.raises(InvalidRequestError, match="cannot carry loop points"):
        encode_loop(tone(32_000), RATE, "mp3")


def test_loop_points_that_are_not_whole_samples_at_the_output_rate_are_refused():
    with pytest.raises(ValueError, match="whole samples"):
        loop_tags(0, 64_001, RATE, 48_000)


@pytest.mark.parametrize(("start", "end"), [(-1, 100), (100, 100), (0, 64_001)])
def test_a_loop_outside_the_audio_is_refused(start, end):
    with pytest.raises(ValueError, match="inside the audio"):
        encode_loop(tone(64_000), RATE, "wav", loop_start=start, loop_end=end)
