"""Encode finished audio with PyAV: 16-bit wav, flac, mp3 or Ogg Opus."""

from __future__ import annotations

import fractions
import io
from dataclasses import dataclass

import numpy as np

from generation.errors import InvalidRequestError


@dataclass(frozen=True)
class Format:
    container: str
    codec: str
    sample_format: str
    extension: str
    lossless: bool
    default_bitrate: int | None = None
    rate: int | None = None  # None keeps the model's rate; Opus only runs at 48 kHz


FORMATS: dict[str, Format] = {
    "wav": Format("wav", "pcm_s16le", "s16", ".wav", lossless=True),
    "flac": Format("flac", "flac", "s16", ".flac", lossless=True),
    "mp3": Format("mp3", "libmp3lame", "fltp", ".mp3", lossless=False, default_bitrate=192_000),
    "ogg": Format("ogg", "libopus", "flt", ".ogg", lossless=False, default_bitrate=128_000, rate=48_000),
}
# What `encode_to_fit` steps down through when a file must fit an upload limit.
FIT_BITRATES = (192_000, 160_000, 128_000, 96_000, 64_000, 48_000, 32_000)


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise InvalidRequestError(f"Unknown format {name!r}: choose one of {', '.join(FORMATS)}.")
    return FORMATS[name]


def encode_audio(
    audio: np.ndarray,
    sample_rate: int,
    format_name: str,
    bitrate: int | None = None,
    *,
    tags: dict[str, str] | None = None,
) -> bytes:
    """Encode `(channels, samples)` float audio; samples beyond [-1, 1] are clipped. `tags` become
    the file's metadata (Vorbis comments in Ogg and FLAC)."""
    import av

    spec = get_format(format_name)
    channels = audio.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    out_rate = spec.rate or sample_rate
    planar = np.ascontiguousarray(np.clip(audio, -1.0, 1.0).astype(np.float32))
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=spec.container) as container:
        container.metadata.update(tags or {})
        stream = container.add_stream(spec.codec, rate=out_rate, layout=layout)
        stream.format = spec.sample_format
        if not spec.lossless:
            stream.bit_rate = bitrate or spec.default_bitrate
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, fractions.Fraction(1, sample_rate)
        resampler = av.AudioResampler(format=spec.sample_format, layout=layout, rate=out_rate)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def encode_to_fit(
    audio: np.ndarray,
    sample_rate: int,
    format_name: str,
    max_bytes: int,
    bitrates: tuple[int, ...] = FIT_BITRATES,
    *,
    tags: dict[str, str] | None = None,
) -> tuple[bytes, int | None]:
    """Encode at the highest bitrate whose file fits `max_bytes`; `(data, bitrate)`.

    Lossless formats have no bitrate to lower: they fit or raise. Raises `InvalidRequestError` when
    even the lowest bitrate is too big.
    """
    spec = get_format(format_name)
    if spec.lossless:
        data = encode_audio(audio, sample_rate, format_name, tags=tags)
        if len(data) > max_bytes:
            raise InvalidRequestError("The lossless file is larger than the upload limit.")
        return data, None
    seconds = audio.shape[-1] / sample_rate
    for bitrate in bitrates:
        if bitrate * seconds / 8 > max_bytes:  # an estimate: skip what cannot fit before encoding
            continue
        data = encode_audio(audio, sample_rate, format_name, bitrate, tags=tags)
        if len(data) <= max_bytes:
            return data, bitrate
    raise InvalidRequestError("The track is too long to fit the upload limit, even at the lowest bitrate.")
