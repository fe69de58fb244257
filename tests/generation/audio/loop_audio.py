"""Loop tests' material: synthetic seeds at a known tempo, and readers of loop points written
independently of the code under test (RIFF chunks parsed by hand, tags read back with PyAV)."""

from __future__ import annotations

import io
import struct

import av
import numpy as np

# C, F, G, A minor: one chord a bar, so the harmony itself marks the bars.
CHORDS_HZ = ((261.6, 329.6, 392.0), (349.2, 440.0, 523.3), (392.0, 493.9, 587.3), (220.0, 261.6, 329.6))


def click_track(
    seconds: float,
    rate: int,
    *,
    bpm: float = 120.0,
    beats_per_bar: int = 4,
    first_beat_s: float = 0.1,
    downbeat_index: int = 2,
    chords: bool = True,
) -> np.ndarray:
    """Beats every 60/bpm s from `first_beat_s`; beat `downbeat_index` (0-based) is the first downbeat.

    The default starts on a pickup: beats at 0.1 and 0.6 s, the first downbeat at 1.1 s.
    """
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    beat = 60.0 / bpm
    for k in range(int((seconds - first_beat_s) / beat) + 1):
        start = first_beat_s + k * beat
        is_downbeat = (k - downbeat_index) % beats_per_bar == 0
        out += _click(t, start, 2_000.0, 0.5 if is_downbeat else 0.2)
        if chords and is_downbeat:
            bar = (k - downbeat_index) // beats_per_bar
            out += _chord(t, start, beat * beats_per_bar, CHORDS_HZ[bar % len(CHORDS_HZ)])
    if chords and downbeat_index > 0:  # the pickup plays the last chord
        out += _chord(t, 0.0, first_beat_s + downbeat_index * beat, CHORDS_HZ[-1])
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def _click(t: np.ndarray, start: float, hz: float, gain: float) -> np.ndarray:
    after = t - start
    shape = np.where(after >= 0, np.exp(-np.clip(after, 0, None) / 0.008), 0.0)
    return gain * shape * np.sin(2 * np.pi * hz * after)


def _chord(t: np.ndarray, start: float, length: float, notes: tuple[float, ...]) -> np.ndarray:
    inside = (t >= start) & (t < start + length)
    ramp = np.clip(np.minimum(t - start, start + length - t) / 0.02, 0, 1)
    tone = sum(np.sin(2 * np.pi * hz * t) for hz in notes) / len(notes)
    return 0.15 * np.where(inside, ramp * tone, 0.0)


def evolving_piece(seconds: float, rate: int, *, bpm: float = 120.0) -> np.ndarray:
    """`(1, samples)`: a drone gliding up a third over the piece, with a click on every beat.

    Like a generated track, it never comes back to where it started: cut at any bar line, the end
    does not lead into the beginning.
    """
    t = np.arange(int(seconds * rate)) / rate
    pitch = 200.0 + 60.0 * t / t[-1]
    drone = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / rate)
    clicks = 0.5 * click_track(seconds, rate, bpm=bpm, first_beat_s=0.0, downbeat_index=0, chords=False)
    return (drone + clicks).astype(np.float32)[None]


def riff_chunks(data: bytes) -> dict[bytes, bytes]:
    """A WAV file's chunks by id, read independently of the code under test."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    chunks, offset = {}, 12
    while offset + 8 <= len(data):
        size = struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        chunks[data[offset : offset + 4]] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    assert offset == len(data)
    return chunks


def smpl_loops(data: bytes) -> list[tuple[int, int, int, int]]:
    """`(type, start, end, play_count)` of each loop in a WAV file's `smpl` chunk."""
    body = riff_chunks(data)[b"smpl"]
    count = struct.unpack("<I", body[28:32])[0]
    loops = [struct.unpack("<6I", body[36 + 24 * i : 60 + 24 * i]) for i in range(count)]
    return [(kind, start, end, plays) for _, kind, start, end, _, plays in loops]


def tags_and_length(data: bytes) -> tuple[dict[str, str], int, int]:
    """A file's metadata (container and stream), decoded length in samples and sample rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        tags = {**container.metadata, **stream.metadata}
        return tags, sum(frame.samples for frame in container.decode(stream)), stream.rate
