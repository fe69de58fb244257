"""A seed's tempo and downbeats: a fixed beat grid, which is what a loop in whole bars needs.

The method, in numpy. (librosa's beat tracker was measured and left out: importing it compiles numba
kernels, 22 s of CPU on first use and 2.5 s in every later process, and its tracker lets the tempo
drift and finds no downbeats, where a loop needs one fixed grid and its bar lines.)

1. Onset envelope: the power of 1024-point frames (hop 256) in 40 log-spaced bands, in dB; each
   band's rise from frame to frame beyond 1 dB, summed over bands (spectral flux).
2. Tempo: the autocorrelation of the envelope, weighted by a log-normal prior around 120 BPM (one
   octave wide, as librosa's tempo estimator), picks the beat period between 50 and 220 BPM.
   How tall that autocorrelation peak is (0 to 1) is the beat's clarity.
3. Grid: the period is refined by the comb of beats that collects the most onset strength over the
   whole seed, then sharpened by a line fitted through the onset peak nearest each of its beats
   (weighted by the peaks' heights); the phase is the comb's best at that period.
4. Downbeat: of the `beats_per_bar` positions in the bar, the one whose beats carry the strongest
   onsets on average starts the bar (accented downbeats, a kick on one).

Beats per bar are 4 unless given: telling 3/4 from 4/4 by ear is beyond this heuristic. A seed whose
clarity is under `MIN_CLARITY` has no clear beat: that is a one-line error unless its tempo is
given. A given tempo still has its grid placed on the seed's onsets; where they show no pulse at that
tempo at all (clarity under half the threshold), the grid starts at the seed's first sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from generation.errors import AudioInputError, InvalidRequestError

N_FFT = 2048
HOP = 256
MIN_BPM, MAX_BPM = 50.0, 220.0
# Band levels are compared in dB, floored this far under the loudest band anywhere in the seed; a
# band's rise under RISE_FLOOR_DB is not an onset. Without both, the tiny ripple of a held tone's
# spectrum (periodic enough to fake a beat) counted as much as a drum hit.
BANDS = 40
FLOOR_DB = 60.0
RISE_FLOOR_DB = 2.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
# A normalised autocorrelation peak under this is what white noise or a held pad gives (< 0.1);
# music with a beat gives 0.3 and more.
MIN_CLARITY = 0.2
REFINE_SPAN = 0.025  # the grid search looks this far (2.5 %) either side of the autocorrelation's tempo
REFINE_STEPS = 41
PHASE_STEPS = 64
BPM_DECIMALS = 2  # tempos are rounded to this before anything is computed from them (see `loops`)
# An onset shows in the flux this many samples before it happens: it enters the far edge of the
# 2048-sample window and, in dB, rises steeply there. Measured on clicks at 60 to 175 BPM (50 ms at
# 32 kHz, within 3 ms); soft attacks read a little later, on their way up.
FLUX_LEAD = 1600
SNAP_S = 0.05  # how far off a bar line a seed's start or end may be and still count as on it
GIVEN_BPM_RANGE = (30.0, 300.0)
BEATS_PER_BAR_RANGE = (1, 16)
DEFAULT_BEATS_PER_BAR = 4  # a metre not given


@dataclass(frozen=True)
class Tempo:
    bpm: float
    beats_per_bar: int
    first_downbeat_s: float  # the first downbeat at or after the seed's start
    clarity: float  # 0 (no periodicity) to 1 (a metronome)
    detected: bool  # False when the tempo was given

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_s(self) -> float:
        return self.beat_s * self.beats_per_bar


def find_tempo(
    samples: np.ndarray, rate: int, *, bpm: float | None = None, beats_per_bar: int | None = None
) -> Tempo:
    """The beat grid of mono `samples`; `bpm` and `beats_per_bar` override detection."""
    beats_per_bar = check_beats_per_bar(DEFAULT_BEATS_PER_BAR if beats_per_bar is None else beats_per_bar)
    if bpm is not None:
        bpm = check_bpm(bpm)
    envelope = onset_envelope(samples, rate)
    fps = rate / HOP
    correlation = _autocorrelation(envelope)
    if bpm is None:
        period, clarity = _best_period(correlation, fps)
        if clarity < MIN_CLARITY:
            raise AudioInputError(
                "The seed has no clear beat to loop on: give its tempo (bpm) to make a loop anyway."
            )
        period = _fit_period(envelope, _refine(envelope, period))
    else:
        period = 60.0 * fps / bpm
        clarity = _clarity_at(correlation, period)
    found_bpm = round(60.0 * fps / period, BPM_DECIMALS) if bpm is None else bpm
    start = _first_downbeat(envelope, period, beats_per_bar, rate) if clarity >= MIN_CLARITY / 2 else 0.0
    return Tempo(found_bpm, beats_per_bar, round(start, 4), round(clarity, 3), bpm is None)


def _first_downbeat(envelope: np.ndarray, period: float, beats_per_bar: int, rate: int) -> float:
    """Seconds from the seed's start to its first downbeat on the grid of `period` frames."""
    fps = rate / HOP
    phase = _phase(envelope, period)
    start = (phase + _downbeat_index(envelope, period, phase, beats_per_bar) * period) / fps
    start += FLUX_LEAD / rate
    bar_s = period * beats_per_bar / fps
    if start > bar_s - SNAP_S:  # a downbeat at (or just before) the very start reads as a bar later
        start = max(start - bar_s, 0.0)
    return start


def check_bpm(bpm: float) -> float:
    low, high = GIVEN_BPM_RANGE
    if not (math.isfinite(bpm) and low <= bpm <= high):
        raise InvalidRequestError(f"The tempo must be between {low:g} and {high:g} BPM.")
    return round(float(bpm), BPM_DECIMALS)


def check_beats_per_bar(beats: int) -> int:
    low, high = BEATS_PER_BAR_RANGE
    if not low <= beats <= high:
        raise InvalidRequestError(f"Beats per bar must be between {low} and {high}.")
    return int(beats)


def onset_envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    """Spectral flux per hop of 256 samples, in dB over log-spaced bands; empty if under one frame."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < N_FFT:
        return np.zeros(0, dtype=np.float32)
    window = np.hanning(N_FFT).astype(np.float32)
    edges = _band_edges(rate)
    count = 1 + (len(samples) - N_FFT) // HOP
    levels = np.empty((count, len(edges) - 1), dtype=np.float32)
    block = 2048  # frames at a time: a 5-minute seed never holds its whole spectrogram
    for first in range(0, count, block):
        starts = np.arange(first, min(first + block, count)) * HOP
        power = np.abs(np.fft.rfft(samples[starts[:, None] + np.arange(N_FFT)] * window, axis=-1)) ** 2
        levels[first : first + len(starts)] = np.add.reduceat(power, edges[:-1], axis=-1)
    floor = max(float(levels.max()), 1e-20) * 10 ** (-FLOOR_DB / 10)
    decibels = 10 * np.log10(np.maximum(levels, floor))
    rises = np.maximum(np.diff(decibels, axis=0) - RISE_FLOOR_DB, 0.0).sum(axis=-1)
    return _smooth(np.concatenate([[0.0], rises]).astype(np.float32))


def _band_edges(rate: int) -> np.ndarray:
    """FFT-bin edges of about 40 log-spaced bands from 40 Hz to 10 kHz, each at least one bin."""
    top = min(10_000.0, rate / 2)
    edges = np.geomspace(40.0, top, BANDS + 1) * N_FFT / rate
    return np.unique(np.round(edges).astype(int))


def _smooth(envelope: np.ndarray) -> np.ndarray:
    """A 5-frame Hann kernel: onset peaks a frame wide still meet a grid that falls between frames."""
    kernel = np.hanning(7)[1:-1]
    return np.convolve(envelope, kernel / kernel.sum(), mode="same").astype(np.float32)


def _autocorrelation(envelope: np.ndarray) -> np.ndarray:
    centred = envelope - envelope.mean() if len(envelope) else envelope
    if len(centred) < 2 or not np.any(centred):
        return np.zeros(max(len(centred), 1))
    size = 1 << int(np.ceil(np.log2(2 * len(centred))))
    spectrum = np.fft.rfft(centred, size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(centred)]
    return correlation / correlation[0]


def _best_period(correlation: np.ndarray, fps: float) -> tuple[float, float]:
    """`(period in frames, clarity)` of the most likely beat under the tempo prior."""
    shortest, longest = int(60.0 * fps / MAX_BPM), int(np.ceil(60.0 * fps / MIN_BPM))
    lags = np.arange(max(shortest, 1), min(longest, len(correlation) - 1))
    if len(lags) == 0:
        return 60.0 * fps / PRIOR_BPM, 0.0
    prior = np.exp(-0.5 * (np.log2(60.0 * fps / lags / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    best = int(lags[np.argmax(np.maximum(correlation[lags], 0.0) * prior)])
    left, centre, right = correlation[best - 1 : best + 2]
    curvature = left - 2 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return best + float(np.clip(offset, -0.5, 0.5)), float(max(centre, 0.0))


def _clarity_at(correlation: np.ndarray, period: float) -> float:
    if period >= len(correlation) - 1:
        return 0.0
    return float(max(np.interp(period, np.arange(len(correlation)), correlation), 0.0))


def _comb(envelope: np.ndarray, period: float, phases: np.ndarray) -> np.ndarray:
    """Mean envelope on the grids `phase + k * period`, one value per phase."""
    beats = np.arange(int((len(envelope) - 1 - phases.max()) // period) + 1)
    positions = phases[:, None] + beats[None, :] * period
    return np.interp(positions, np.arange(len(envelope)), envelope).mean(axis=-1)


def _refine(envelope: np.ndarray, period: float) -> float:
    """The period near `period` whose best-placed grid collects the most onset strength: a coarse
    search over +-2.5 % then a fine one around its best, each in `REFINE_STEPS` steps."""
    for span in (REFINE_SPAN, 2 * REFINE_SPAN / (REFINE_STEPS - 1)):
        candidates = period * np.linspace(1 - span, 1 + span, REFINE_STEPS)
        scores = [
            _comb(envelope, c, np.linspace(0.0, c, PHASE_STEPS, endpoint=False)).max() for c in candidates
        ]
        period = float(candidates[int(np.argmax(scores))])
    return period


def _fit_period(envelope: np.ndarray, period: float) -> float:
    """Sharpen the period: the onset peak nearest each beat of the best grid, fitted by a line
    (each beat weighted by its peak's height, so silent beats do not pull)."""
    phase = _phase(envelope, period)
    reach = max(1, int(period / 4))
    beats, times, heights = [], [], []
    for beat in range(int((len(envelope) - 1 - phase) // period) + 1):
        centre = round(phase + beat * period)
        low, high = max(centre - reach, 1), min(centre + reach, len(envelope) - 2)
        if high <= low:
            continue
        peak = low + int(np.argmax(envelope[low : high + 1]))
        left, middle, right = envelope[peak - 1 : peak + 2]
        curvature = left - 2 * middle + right
        beats.append(beat)
        times.append(peak + (0.5 * (left - right) / curvature if curvature < 0 else 0.0))
        heights.append(max(float(middle), 0.0))
    if len(beats) < 4 or not any(heights):
        return period
    fitted = float(np.polyfit(beats, times, 1, w=np.sqrt(heights))[0])
    return fitted if abs(fitted / period - 1) < REFINE_SPAN else period


def _phase(envelope: np.ndarray, period: float) -> float:
    """The grid offset in [0, period) frames; a finer search than `_refine`'s."""
    phases = np.linspace(0.0, period, 4 * PHASE_STEPS, endpoint=False)
    return float(phases[np.argmax(_comb(envelope, period, phases))])


def _downbeat_index(envelope: np.ndarray, period: float, phase: float, beats_per_bar: int) -> int:
    """Which beat of the first bar is the downbeat: the bar position with the strongest onsets."""
    if beats_per_bar == 1:
        return 0
    bar = period * beats_per_bar
    offsets = phase + period * np.arange(beats_per_bar)
    usable = offsets[offsets < len(envelope)]
    if len(usable) < beats_per_bar or offsets.max() + bar >= len(envelope):
        return 0  # less than two bars: no bar position can be told from another
    return int(np.argmax(_comb(envelope, bar, offsets)))
