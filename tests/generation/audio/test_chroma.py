"""Restyle's chroma against audiocraft 1.3.0's own output, stored once from its ChromaExtractor."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.audio.chroma import (
    HOP,
    chroma,
    conditioning_chroma,
    loop_audio,
    match_length,
    melody_adherence,
    to_chroma_rate,
)
from tests.audio_factory import melody

FIXTURES = Path(__file__).parents[2] / "data" / "chroma"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.wav"))


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as file:
        assert file.getframerate() == 32_000 and file.getnchannels() == 1
        return np.frombuffer(file.readframes(file.getnframes()), dtype="<i2").astype(np.float32) / 32768


def test_the_fixtures_are_there():
    assert len(NAMES) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_chroma_equals_audiocraft(name):
    samples = _read_wav(FIXTURES / f"{name}.wav")
    expected = np.load(FIXTURES / f"{name}.chroma.npy")
    ours = chroma(samples).numpy()
    assert ours.shape == expected.shape == (1 + len(samples) // 4096, 12)
    assert np.array_equal(ours, expected)


def test_chroma_is_one_hot_on_the_played_pitch_class():
    a_major = melody([440.0, 554.37, 659.26], 1.0, 32_000)  # A, C#, E
    classes = chroma(a_major).argmax(-1)
    assert set(classes[2:6].tolist()) == {9}  # A is the tenth bin from C
    assert set(classes[10:14].tolist()) == {1}  # C#
    assert set(classes[18:22].tolist()) == {4}  # E
    assert torch.equal(chroma(a_major).sum(-1), torch.ones(len(classes)))


def test_batched_chroma_equals_one_at_a_time():
    first, second = melody([440.0], 2.0, 32_000), melody([330.0], 2.0, 32_000)
    batch = chroma(np.stack([first, second]))
    assert torch.equal(batch[0], chroma(first)) and torch.equal(batch[1], chroma(second))


def test_thirty_seconds_give_235_frames():
    assert chroma(np.zeros(30 * 32_000, np.float32) + 0.1).shape == (235, 12)


def test_match_length_tiles_short_and_cuts_long():
    frames = torch.eye(12)[:5]
    tiled = match_length(frames, 12)
    assert (
        torch.equal(tiled[:5], frames)
        and torch.equal(tiled[5:10], frames)
        and torch.equal(tiled[10:], frames[:2])
    )
    assert torch.equal(match_length(torch.eye(12), 4), torch.eye(12)[:4])


def test_loop_audio_wraps_round():
    wav = np.arange(10, dtype=np.float32)
    assert loop_audio(wav, 7, 6).tolist() == [7, 8, 9, 0, 1, 2]


def test_a_later_window_hears_the_melody_from_its_own_offset():
    tune = melody([261.6, 392.0], 20.0, 32_000)  # C for 20 s, then G for 20 s
    first = conditioning_chroma(tune, offset_s=0.0, single_window=False, frames=235)
    later = conditioning_chroma(tune, offset_s=18.0, single_window=False, frames=235)
    assert first[5].argmax() == 0 and first[-5].argmax() == 7  # C at 0.6 s, G at 29.4 s
    assert later[5].argmax() == 0 and later[40].argmax() == 7  # C at 18.6 s, G at 23.1 s...
    assert later[-5].argmax() == 0  # ...and the melody has looped back to C by 47.4 s


def _follower(frames: torch.Tensor, seconds: float, rate: int = 32_000) -> np.ndarray:
    """What a model that follows its conditioning exactly would play: each frame's pitch class,
    around the frame's centre (frames are centred, one hop apart)."""
    hz = 261.63 * 2 ** (np.arange(12) / 12)
    out = np.zeros(int(seconds * rate), np.float32)
    t = np.arange(len(out)) / rate
    for index, pitch in enumerate(frames.argmax(-1).tolist()):
        span = slice(max(0, index * HOP - HOP // 2), min(len(out), index * HOP + HOP // 2))
        out[span] = 0.4 * np.sin(2 * np.pi * hz[pitch] * t[span])
    return out


@pytest.mark.parametrize("seed_s", [1.3, 2.7])
def test_a_short_melody_conditions_a_full_window_without_drifting(seed_s):
    # Tiled chroma frames repeat every frames * 4096 samples, not every melody length: a 30 s output
    # that followed them exactly scored 0.37 (1.3 s) and 0.45 (2.7 s) against the looped melody.
    tune = melody([261.6, 329.6, 392.0, 523.3], seed_s / 4, 32_000)
    frames = conditioning_chroma(tune, offset_s=0.0, single_window=True, frames=235)
    assert melody_adherence(tune, _follower(frames, 30.0)) > 0.95


def test_adherence_is_high_for_the_melody_itself_and_low_for_another():
    tune = melody([261.6, 329.6, 392.0, 523.3], 1.0, 32_000)
    other = melody([277.2, 311.1, 370.0, 415.3], 1.0, 32_000)
    assert melody_adherence(tune, tune) == pytest.approx(1.0)
    assert melody_adherence(tune, other) < 0.2


def test_any_rate_and_channels_come_to_mono_32k_for_adherence():
    """A 48 kHz stereo candidate is measured as a 32 kHz mono one: same length, same pitch classes,
    and at 32 kHz mono nothing is touched."""
    tune = melody([261.6, 329.6, 392.0, 493.9], 0.5, 48_000)
    stereo = np.stack([tune, 0.5 * tune])
    resampled = to_chroma_rate(stereo, 48_000)
    assert resampled.dtype == np.float32 and resampled.shape == (len(tune) * 2 // 3,)
    at_32k = melody([261.6, 329.6, 392.0, 493.9], 0.5, 32_000)
    assert melody_adherence(at_32k, resampled) > 0.95
    assert melody_adherence(at_32k, to_chroma_rate(stereo[::-1], 48_000)) > 0.95
    mono = at_32k[None]
    assert to_chroma_rate(mono, 32_000) is not mono
    np.testing.assert_array_equal(to_chroma_rate(mono, 32_000), at_32k)
