"""The melody as MusicGen-melody hears it: audiocraft's one-hot chroma.

audiocraft 1.3.0 (`modules/chroma.py`, `ChromaExtractor(radix2_exp=14, argmax=True)`): 32 kHz mono,
n_fft = window = 16384, hop 4096, a centred, reflect-padded, window-normalised power spectrogram,
librosa's chroma filter bank, per-frame inf-norm, then argmax to one-hot over 12 bins starting at C.
That gives 1 + T // 4096 frames: 235 for 30 s.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the command line reaches this module through its option
# checks, and a refusal must answer at once, without the second or two torch takes to import.

CHROMA_SAMPLE_RATE = 32_000
N_FFT = 16_384
HOP = 4_096
N_CHROMA = 12


@lru_cache(maxsize=4)
def _filter_bank(sample_rate: int, n_fft: int, n_chroma: int) -> torch.Tensor:
    import torch
    from transformers.audio_utils import chroma_filter_bank

    bank = chroma_filter_bank(
        num_frequency_bins=n_fft, num_chroma=n_chroma, sampling_rate=sample_rate, tuning=0
    )
    return torch.from_numpy(bank).float()


@lru_cache(maxsize=4)
def _window(n_fft: int) -> torch.Tensor:
    import torch

    return torch.hann_window(n_fft)


def chroma(wav: torch.Tensor | np.ndarray, sample_rate: int = CHROMA_SAMPLE_RATE) -> torch.Tensor:
    """One-hot chroma of mono audio `(..., T)`: returns `(..., 1 + T // 4096, 12)` float32."""
    import torch

    wav = torch.as_tensor(wav, dtype=torch.float32)
    leading = wav.shape[:-1]
    wav = wav.reshape(-1, wav.shape[-1])
    if wav.shape[-1] < N_FFT:  # as audiocraft: centre-pad short (or nullified) audio to one window
        pad = N_FFT - wav.shape[-1]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad - pad // 2))
    window = _window(N_FFT).to(wav.device)
    spec = torch.stft(
        wav, N_FFT, HOP, N_FFT, window, center=True, pad_mode="reflect", normalized=False, return_complex=True
    )
    power = (spec / window.pow(2).sum().sqrt()).abs().pow(2)
    bank = _filter_bank(sample_rate, N_FFT, N_CHROMA).to(wav.device)
    raw = torch.einsum("cf,bft->bct", bank, power)
    normalised = torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=1e-6)
    one_hot = torch.nn.functional.one_hot(normalised.argmax(dim=-2), N_CHROMA).float()
    return one_hot.reshape(*leading, one_hot.shape[-2], N_CHROMA)


def match_length(frames: torch.Tensor, length: int) -> torch.Tensor:
    """Tile or cut `(T, 12)` chroma to `length` frames, as audiocraft's ChromaStemConditioner does."""
    if frames.shape[0] < length:
        frames = frames.repeat(-(-length // frames.shape[0]), 1)
    return frames[:length]


def loop_audio(wav: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples of `wav` from `start`, wrapping round: short melodies loop."""
    return wav[(np.arange(length) + start) % len(wav)]


def conditioning_chroma(
    melody: np.ndarray,
    *,
    offset_s: float,
    single_window: bool,
    frames: int,
    window_s: float = 30.0,
    sample_rate: int = CHROMA_SAMPLE_RATE,
) -> torch.Tensor:
    """The `(frames, 12)` chroma that conditions one generation window.

    A lone window sees the whole melody, cut at the chroma level (audiocraft). Longer pieces see, per
    window, the 30 s of melody from the window's time offset, looped modulo the melody's length.

    A melody shorter than the window is looped as audio, then analysed, where audiocraft tiles its
    chroma frames: tiled frames repeat every whole number of 4096-sample frames, not every melody
    length, so they drift off the tune (a 1.3 s seed by 0.11 s a loop, a third of a note). A 30 s
    output following such conditioning exactly scored 0.37 against the looped melody; looped audio
    gives the model what the adherence measure and the listener expect.
    """
    covered = (frames - 1) * HOP + 1  # samples whose chroma has `frames` frames
    if single_window and len(melody) < covered:
        return match_length(chroma(loop_audio(melody, 0, covered), sample_rate), frames)
    if single_window:
        return match_length(chroma(melody, sample_rate), frames)
    segment = loop_audio(melody, int(offset_s * sample_rate), int(window_s * sample_rate))
    return match_length(chroma(segment, sample_rate), frames)


def to_chroma_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at the chroma's 32 kHz, from `(samples,)` or `(channels, samples)` audio at any
    rate: the channels averaged, then resampled by a polyphase filter (exact rates, no drift), so
    a 48 kHz stereo candidate is measured against the melody as a 32 kHz mono one is."""
    mono = audio if audio.ndim == 1 else audio.mean(axis=0)
    if sample_rate == CHROMA_SAMPLE_RATE:
        return mono.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    common = math.gcd(sample_rate, CHROMA_SAMPLE_RATE)
    return resample_poly(mono, CHROMA_SAMPLE_RATE // common, sample_rate // common).astype(np.float32)


def melody_adherence(melody: np.ndarray, output: np.ndarray, sample_rate: int = CHROMA_SAMPLE_RATE) -> float:
    """Mean cosine similarity of quantised chroma, frame by frame (the MusicGen paper's metric).

    The reference is the melody looped to the output's length, which is what the model was asked to
    follow; with one-hot chroma this is the share of frames whose pitch class agrees.
    """
    import torch

    reference = chroma(loop_audio(melody, 0, len(output)), sample_rate)
    produced = chroma(output, sample_rate)
    cosine = torch.nn.functional.cosine_similarity(reference, produced, dim=-1)
    return float(cosine.mean())
