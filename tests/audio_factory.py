"""Test audio made at test time: synthetic melodies, encoded by PyAV into real containers.

Independent of Restyle's own encoder on purpose, so decoding is checked against files written by a
different path (and in formats Restyle never writes: 24-bit and float wav, vorbis, aac, webm).
"""

from __future__ import annotations

import fractions
import io
import wave

import numpy as np

# PyAV is imported where a file is encoded, not here: tests/conftest.py imports `melody`, and the
# GPU machines' image has no PyAV, so a top-level import there stopped every GPU test's collection.

# name: (container, codec, sample format or None for the codec's first, rate)
FORMATS = {
    "wav16": ("wav", "pcm_s16le", "s16", 44_100),
    "wav24": ("wav", "pcm_s24le", "s32", 48_000),
    "wavfloat": ("wav", "pcm_f32le", "flt", 22_050),
    "mp3": ("mp3", "libmp3lame", None, 44_100),
    "ogg-vorbis": ("ogg", "vorbis", None, 44_100),
    "ogg-opus": ("ogg", "libopus", None, 48_000),
    "flac": ("flac", "flac", "s16", 96_000),
    "m4a": ("ipod", "aac", None, 44_100),
    "webm": ("webm", "libopus", None, 48_000),
    "aiff": ("aiff", "pcm_s16be", "s16", 44_100),
    "adts-aac": ("adts", "aac", None, 44_100),
    "mp3-22k": ("mp3", "libmp3lame", None, 22_050),  # MPEG-2 frames: another frame sync
}


def melody(notes_hz: list[float], note_s: float, rate: int, amplitude: float = 0.4) -> np.ndarray:
    """A plain sine melody, one note after another, with short ramps so nothing clicks."""
    parts = []
    ramp = int(0.01 * rate)
    for hz in notes_hz:
        t = np.arange(int(note_s * rate)) / rate
        note = amplitude * np.sin(2 * np.pi * hz * t)
        note[:ramp] *= np.linspace(0, 1, ramp)
        note[-ramp:] *= np.linspace(1, 0, ramp)
        parts.append(note)
    return np.concatenate(parts).astype(np.float32)


def encode(
    samples: np.ndarray,
    rate: int,
    container: str,
    codec: str,
    *,
    sample_format: str | None = None,
    channels: int = 2,
    bit_rate: int | None = None,
) -> bytes:
    """Encode mono `samples` (copied to every channel) with PyAV; returns the file's bytes."""
    import av

    layout = {1: "mono", 2: "stereo"}[channels]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if sample_format:
            stream.format = sample_format
        if bit_rate:
            stream.bit_rate = bit_rate
        stream.codec_context.options = {"strict": "experimental"}  # the native vorbis encoder
        planar = np.ascontiguousarray(np.tile(samples[None], (channels, 1)))
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def encode_format(name: str, samples_at_rate: np.ndarray, channels: int = 2) -> bytes:
    container, codec, sample_format, rate = FORMATS[name]
    return encode(samples_at_rate, rate, container, codec, sample_format=sample_format, channels=channels)


def pcm_wav(channels: list[np.ndarray], rate: int) -> bytes:
    """16-bit PCM WAV of `channels` (each -1..1, one array per channel), written with the standard
    library: no encoder between the test and the samples it means."""
    frames = np.stack(channels, axis=1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((frames * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
