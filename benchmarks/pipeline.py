"""The work around the model: reading a seed, finishing candidates, and cross-job batching."""

from __future__ import annotations

import fractions
import io
import statistics
import time
from collections.abc import Callable

import av
import numpy as np

from benchmarks.decode import PROMPT, melody
from generation.audio.chroma import chroma, conditioning_chroma
from generation.audio.decode import decode_audio
from generation.audio.encode import encode_audio
from generation.audio.mastering import MasteringOptions, master
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.windows import plan_windows


def _timed(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def stereo_mp3(seconds: float = 120.0, rate: int = 44_100) -> bytes:
    """A two-minute 44.1 kHz stereo mp3 with a tune, a bass line and some noise."""
    t = np.arange(int(seconds * rate)) / rate
    tune = melody(seconds, rate)
    bass = 0.2 * np.sin(2 * np.pi * 65.4 * t)
    noise = 0.02 * np.random.default_rng(0).standard_normal(len(t))
    left, right = tune + bass + noise, 0.8 * tune + bass - noise
    planar = np.ascontiguousarray(np.stack([left, right]).astype(np.float32))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
        stream.bit_rate = 192_000
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def seed_reading(repeats: int = 3) -> dict[str, float]:
    """Decode + resample + chroma of a two-minute mp3 (the whole seed, then every window's)."""
    data = stereo_mp3()

    def decode() -> None:
        seed = decode_audio(data)
        chroma(seed.samples)
        windows = plan_windows(round(seed.duration_s * 50))
        for window in windows:
            conditioning_chroma(
                seed.samples, offset_s=window.offset_s, single_window=len(windows) == 1, frames=235
            )

    return {"decode_chroma_2min_mp3_s": _timed(decode, repeats), "mp3_bytes": len(data)}


def finishing(repeats: int = 3) -> dict[str, float]:
    """Loudness normalisation, fade and encoding of four 30 s candidates (mp3 and flac)."""
    rng = np.random.default_rng(1)
    candidates = [
        (melody(30.0) + 0.05 * rng.standard_normal(30 * 32_000)).astype(np.float32)[None] for _ in range(4)
    ]

    def finish() -> None:
        for audio in candidates:
            mastered, _ = master(audio, 32_000, MasteringOptions())
            encode_audio(mastered, 32_000, "mp3")
            encode_audio(mastered, 32_000, "flac")

    return {"master_encode_4x30s_s": _timed(finish, repeats)}


def batching(engine: MusicGenEngine, jobs: int, seconds: float) -> dict[str, float]:
    """Candidates per minute for `jobs` one-candidate jobs (different prompts), alone and batched."""
    tune = melody(seconds)
    work = [melody_job(f"{PROMPT}, take {index}", tune, (index,), seconds) for index in range(jobs)]
    engine.generate_codes(melody_job(PROMPT, tune, (0,), 0.5))  # warm-up
    alone = _timed(lambda: [engine.generate_codes(job) for job in work], 1)
    together = _timed(lambda: engine.generate_latents(work, [None] * jobs, [None] * jobs), 1)
    return {
        "jobs": jobs,
        "seconds": seconds,
        "alone_candidates_per_min": 60 * jobs / alone,
        "batched_candidates_per_min": 60 * jobs / together,
        "speedup": alone / together,
    }
