"""How smooth a loop's wrap is, measured against the loop's own moment-to-moment change.

Both figures treat the loop as a circle (its last sample followed by its first), so the wrap is
measured exactly like every other moment:

- `flux_ratio`: spectral change around the wrap over the median spectral change around every other
  point of the loop. Frames of 2048 samples about every 512, taken round the circle with one centred
  on the wrap; the change between neighbouring frames is the RMS difference of their dB spectra (floored
  80 dB under the loop's loudest bin); "around a point" is the largest change among the frame pairs
  whose windows cover it. Near 1: the wrap changes no more than the music does anywhere else.
  `flux_percentile` says the same as a rank: the share of the loop's points that change less.
  The wrap falls on a downbeat, where music changes most (onsets, chords), so
  `flux_ratio_bar_lines` compares it with the loop's other bar lines only: the fairer of the two.
- `jump_ratio`: the sample step across the wrap (largest over channels) over the loop's
  95th-percentile absolute step between neighbouring samples. Under 1: no click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_FFT = 2048
HOP = 512
FLOOR_DB = 80.0


@dataclass(frozen=True)
class SeamFigures:
    flux_ratio: float
    flux_ratio_bar_lines: float
    flux_percentile: float
    jump: float
    jump_ratio: float

    def as_dict(self) -> dict[str, float | None]:
        """For JSON, which has no NaN or infinity: those become null."""
        figures = {
            "flux_ratio": (self.flux_ratio, 3),
            "flux_ratio_bar_lines": (self.flux_ratio_bar_lines, 3),
            "flux_percentile": (self.flux_percentile, 3),
            "jump": (self.jump, 5),
            "jump_ratio": (self.jump_ratio, 3),
        }
        return {name: round(v, digits) if math.isfinite(v) else None for name, (v, digits) in figures.items()}


def seam_figures(loop: np.ndarray, divisions: int = 1) -> SeamFigures:
    """Figures for `(channels, samples)` audio played end to end, cut in `divisions` equal parts
    (its bars; its beats for a one-bar loop) whose boundaries are moments comparable to the wrap."""
    loop = np.atleast_2d(np.asarray(loop, dtype=np.float64))
    if loop.shape[-1] < 2 * N_FFT:
        raise ValueError("a loop must be at least two analysis frames long to be measured")
    local = _local_change(loop.mean(axis=0))
    seam, elsewhere = float(local[0]), local[1:]
    at_lines = local[np.round(np.arange(1, divisions) * len(local) / divisions).astype(int)]
    jump = float(np.abs(loop[:, 0] - loop[:, -1]).max())
    step_p95 = float(np.percentile(np.abs(np.diff(loop, axis=-1)), 95))
    return SeamFigures(
        flux_ratio=_ratio(seam, float(np.median(elsewhere))),
        flux_ratio_bar_lines=_ratio(seam, float(np.median(at_lines))) if len(at_lines) else float("nan"),
        flux_percentile=float(np.mean(elsewhere < seam)),
        jump=jump,
        jump_ratio=_ratio(jump, step_p95),
    )


def _ratio(value: float, typical: float) -> float:
    if typical > 0:
        return value / typical
    return float("inf") if value > 0 else 1.0


def _local_change(mono: np.ndarray) -> np.ndarray:
    """Per grid point (point 0 is the wrap), the largest spectral change among frames covering it.

    The grid closes round the circle: `count` frames spaced `len / count` apart (512 give or take
    a sample), so the pair across the wrap is spaced like every other pair.
    """
    count = max(1, round(len(mono) / HOP))
    centres = np.round(np.arange(count) * len(mono) / count).astype(int)
    window = np.hanning(N_FFT).astype(np.float32)
    magnitude = np.empty((count, N_FFT // 2 + 1), dtype=np.float32)
    for first in range(0, count, 1024):  # a block at a time: long loops never hold it all twice
        block = centres[first : first + 1024, None] - N_FFT // 2 + np.arange(N_FFT)
        frames = mono[block % len(mono)].astype(np.float32) * window
        magnitude[first : first + len(block)] = np.abs(np.fft.rfft(frames, axis=-1))
    floor = max(float(magnitude.max()), 1e-12) * 10 ** (-FLOOR_DB / 20)
    decibels = 20 * np.log10(np.maximum(magnitude, floor))
    change = np.sqrt(np.mean((np.roll(decibels, -1, axis=0) - decibels) ** 2, axis=-1))  # k -> k + 1
    half = N_FFT // (2 * HOP)  # frames within this many of a point have their window on it
    padded = np.concatenate([change[-half:], change, change[:half]])
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * half).max(axis=-1)[:count]
