"""Loudness per ITU-R BS.1770 and a short fade-out, so candidates sit at one level and end cleanly.

Normalisation is a plain gain: to the integrated-loudness target, lowered if needed so the true peak
(4x oversampled, as BS.1770 Annex 2) stays under its ceiling. No limiter: a peak-limited candidate
ends up a little quieter than the target, and its sidecar says by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SILENT_LUFS = -70.0  # BS.1770's absolute gate: anything quieter has no measurable loudness


@dataclass(frozen=True)
class MasteringOptions:
    target_lufs: float | None = -14.0  # None leaves the level alone
    true_peak_db: float = -1.0
    fade_out_s: float = 1.0


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float | None  # None when too short or too quiet to measure
    true_peak_dbtp: float


def true_peak_db(audio: np.ndarray) -> float:
    """Peak of `(channels, samples)` audio after 4x oversampling, in dBTP."""
    from scipy.signal import resample_poly

    peak = float(np.abs(resample_poly(audio, 4, 1, axis=-1)).max()) if audio.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    import pyloudnorm

    try:
        value = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
    except ValueError:  # shorter than one 400 ms gating block
        return None
    return float(value) if math.isfinite(value) and value > SILENT_LUFS else None


def measure(audio: np.ndarray, sample_rate: int) -> Loudness:
    return Loudness(integrated_lufs(audio, sample_rate), true_peak_db(audio))


def fade_out(audio: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """A raised-cosine fade over `seconds`, never more than a tenth of the piece."""
    length = min(int(seconds * sample_rate), audio.shape[-1] // 10)
    if length <= 1:
        return audio
    ramp = 0.5 * (1 + np.cos(np.linspace(0, np.pi, length, dtype=np.float32)))
    faded = audio.copy()
    faded[..., -length:] *= ramp
    return faded


def master(audio: np.ndarray, sample_rate: int, options: MasteringOptions) -> tuple[np.ndarray, float]:
    """Fade, then gain to the target within the true-peak ceiling. Returns `(audio, gain_db)`."""
    audio = fade_out(audio.astype(np.float32), sample_rate, options.fade_out_s)
    if options.target_lufs is None:
        return audio, 0.0
    before = measure(audio, sample_rate)
    if before.integrated_lufs is None:
        return audio, 0.0
    gain_db = options.target_lufs - before.integrated_lufs
    gain_db = min(gain_db, options.true_peak_db - before.true_peak_dbtp)
    return (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32), gain_db
