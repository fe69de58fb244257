"""Decode a seed track from any common container to float32 at the rate and channels a model reads.

Limits are checked before and while decoding, never after: the byte size before reading, the
duration the container claims before decoding, and the decoded duration frame by frame, so a tiny
file that expands to hours of audio costs no more than the limit to refuse.

FFmpeg never guesses the format: left to probe, it also "plays" session descriptions (opening
network sockets), concat scripts and playlists (reading other files). The container is named from
its first bytes, from an allow-list of audio containers, and opened with that demuxer only, with no
protocol to open anything beyond the bytes handed in.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.errors import AudioInputError
from generation.humanize import format_bytes, format_duration

MODEL_SAMPLE_RATE = 32_000
MIN_SOURCE_RATE = 8_000
MAX_SOURCE_RATE = 192_000
MAX_SOURCE_CHANNELS = 8
# -80 dBFS: below one step of 13-bit audio, so nothing a melody could be heard in.
SILENCE_PEAK = 1e-4
# Decoders disagree with headers by a frame or two (encoder delay, padding).
DURATION_SLACK_S = 0.5

NOT_AUDIO = "This file is not audio Restyle can read: try mp3, wav, flac, ogg, opus or m4a."

# The only demuxers FFmpeg may use, by the name `av.open` takes. "mov" reads mp4 and m4a,
# "matroska" reads webm.
DEMUXERS = ("wav", "mp3", "aac", "ogg", "flac", "mov", "matroska", "aiff")
CONTAINER_OPTIONS = {
    "format_whitelist": ",".join(DEMUXERS),  # belt and braces: FFmpeg itself refuses any other
    "protocol_whitelist": "none",  # no protocol has this name: nothing is opened but our buffer
    "enable_drefs": "0",  # mov: never follow a reference to another file
}
ID3_HEADER = 10
LAYOUTS = {1: "mono", 2: "stereo"}


@dataclass(frozen=True)
class _Output:
    """What the decoded samples are resampled to."""

    rate: int
    channels: int

    @property
    def layout(self) -> str:
        return LAYOUTS[self.channels]


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 300.0
    min_seconds: float = 1.0


@dataclass(frozen=True)
class SeedAudio:
    """A decoded seed: float32 samples in [-1, 1] and where they came from.

    `samples` is `(samples,)` for a mono decode (the default, what MusicGen's melody is) and
    `(channels, samples)` for more channels; `planar` is always the latter, `mono` the former
    (for a stereo decode, the channels' mean, 3 dB below FFmpeg's own mono downmix: it serves
    level-blind reads such as the chroma).
    """

    samples: np.ndarray
    sample_rate: int
    sha256: str
    source: str

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[0]

    @property
    def planar(self) -> np.ndarray:
        return self.samples[None] if self.samples.ndim == 1 else self.samples

    @property
    def mono(self) -> np.ndarray:
        return self.samples if self.samples.ndim == 1 else mono_of(self.samples)


def is_silent(samples: np.ndarray) -> bool:
    """Whether there is nothing to hear in any channel (`(samples,)` or `(channels, samples)`).
    Judged per channel, never on a mono mix: stereo whose channels are opposite in phase cancels in
    the sum, yet each channel holds the music."""
    return samples.size == 0 or float(np.abs(samples).max()) < SILENCE_PEAK


def mono_of(planar: np.ndarray) -> np.ndarray:
    """One channel from `(channels, samples)`: their mean, or the loudest channel where the mean
    is silent but a channel is not (opposite-phase stereo cancels in the mean)."""
    mean = planar.mean(axis=0)
    if len(planar) == 1 or not is_silent(mean) or is_silent(planar):
        return mean
    return planar[int(np.abs(planar).max(axis=1).argmax())]


def decode_audio(
    source: bytes | str | Path,
    limits: AudioLimits | None = None,
    *,
    sample_rate: int = MODEL_SAMPLE_RATE,
    channels: int = 1,
) -> SeedAudio:
    """Decode `source` (a path or the file's bytes), mixed to `channels` (1 or 2) and resampled.

    Raises `AudioInputError` with a one-line message for anything unusable.
    """
    if channels not in LAYOUTS:
        raise ValueError(f"channels must be one of {sorted(LAYOUTS)}")
    limits = limits or AudioLimits()
    data = _read_bounded(source, limits.max_bytes)
    samples, description, errors_seen = _decode(data, limits, _Output(sample_rate, channels))
    _check_content(samples, sample_rate, limits, errors_seen)
    if is_silent(samples) and channels == 1:
        # FFmpeg's mono mix of opposite-phase channels is silence: take the channels themselves.
        stereo, _, _ = _decode(data, limits, _Output(sample_rate, 2))
        samples = mono_of(stereo)[None]
    if is_silent(samples):
        raise AudioInputError("The audio is silent, so there is no melody to follow.")
    if channels == 1:
        samples = samples[0]
    return SeedAudio(samples, sample_rate, hashlib.sha256(data).hexdigest(), description)


def _read_bounded(source: bytes | str | Path, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        _check_size(len(source), max_bytes)
        return bytes(source)
    path = Path(source)
    try:  # a name too long, a folder that cannot be read: one line, not an internal error
        if not path.is_file():
            raise AudioInputError(f"There is no file at {path}.")
        _check_size(path.stat().st_size, max_bytes)
        return path.read_bytes()
    except OSError as exc:
        raise AudioInputError(f"Restyle cannot read {path} ({exc.strerror or exc}).") from None


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise AudioInputError("The file is empty.")
    if size > max_bytes:
        raise AudioInputError(f"The file is {format_bytes(size)}; the limit is {format_bytes(max_bytes)}.")


def _decode(data: bytes, limits: AudioLimits, output: _Output) -> tuple[np.ndarray, str, bool]:
    """Samples, a description of the source, and whether FFmpeg reported errors on the way."""
    import av

    if av.logging.get_level() is None:  # PyAV drops FFmpeg's messages unless a level is set
        av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        samples, description = _open_and_decode(data, limits, output)
    return samples, description, any(level <= av.logging.ERROR for level, _, _ in logs)


def sniff_demuxer(head: bytes) -> str | None:  # noqa: PLR0911 - one return per signature
    """The allowed demuxer for a file starting with `head`, or None if it is no audio container
    Restyle reads. An ID3 tag is looked past: it may sit before mp3, aac or flac."""
    if head.startswith(b"ID3") and len(head) >= ID3_HEADER:
        size = int.from_bytes(bytes(b & 0x7F for b in head[6:10]), "big")  # syncsafe
        footer = ID3_HEADER if head[5] & 0x10 else 0
        return sniff_demuxer(head[ID3_HEADER + size + footer :]) or "mp3"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head[4:8] == b"ftyp":
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "matroska"
    if len(head) < 2 or head[0] != 0xFF:
        return None
    if head[1] & 0xF6 == 0xF0:  # a 12-bit sync and layer 00: an ADTS (raw aac) frame
        return "aac"
    # An MPEG audio frame: an 11-bit sync, neither the reserved version (01) nor layer (00).
    if head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08 and head[1] & 0x06 != 0:
        return "mp3"
    return None


def _open_and_decode(data: bytes, limits: AudioLimits, output: _Output) -> tuple[np.ndarray, str]:
    import av

    demuxer = sniff_demuxer(data)
    if demuxer is None:
        raise AudioInputError(NOT_AUDIO)
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer, container_options=CONTAINER_OPTIONS)
    except av.error.EOFError as exc:  # a known container whose data ends too soon
        raise AudioInputError("The file is damaged or cut short: it ends before its audio does.") from exc
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise AudioInputError(NOT_AUDIO) from exc
    with container:
        if not container.streams.audio:
            raise AudioInputError("The file has no audio track.")
        stream = container.streams.audio[0]
        _check_stream(stream)
        claimed = _claimed_seconds(container, stream)
        if claimed is not None and claimed > limits.max_seconds + DURATION_SLACK_S:
            limit = format_duration(limits.max_seconds)
            raise AudioInputError(f"The track is {format_duration(claimed)} long; the limit is {limit}.")
        samples, decoded_s = _decode_stream(container, stream, limits.max_seconds, output)
        description = f"{stream.codec_context.name}, {stream.rate} Hz, {stream.channels} ch"
    if claimed is not None and decoded_s < claimed - max(DURATION_SLACK_S, 0.05 * claimed):
        raise AudioInputError(
            f"The file is damaged or cut short: it should last {format_duration(claimed)} "
            f"but only {format_duration(decoded_s)} could be read."
        )
    return samples, description


def _check_stream(stream) -> None:
    rate, channels = stream.rate or 0, stream.channels or 0
    if rate == 0 or channels == 0:
        raise AudioInputError(NOT_AUDIO)
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioInputError(
            f"The audio's sample rate ({rate} Hz) is outside what Restyle accepts "
            f"({MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz)."
        )
    if channels > MAX_SOURCE_CHANNELS:
        raise AudioInputError(
            f"The audio has {channels} channels; Restyle accepts up to {MAX_SOURCE_CHANNELS}."
        )


def _claimed_seconds(container, stream) -> float | None:
    """The duration the headers announce, if they announce one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _decode_stream(container, stream, max_seconds: float, output: _Output) -> tuple[np.ndarray, float]:
    """`(channels, samples)` float32 at the output's rate and layout, and the seconds decoded."""
    import av

    chunks: list[np.ndarray] = []
    resampler: av.AudioResampler | None = None
    setup: tuple | None = None
    decoded_s = 0.0
    try:
        for frame in container.decode(stream):
            decoded_s += frame.samples / frame.sample_rate
            if decoded_s > max_seconds + DURATION_SLACK_S:
                raise AudioInputError(f"The track is longer than the {format_duration(max_seconds)} limit.")
            # A stream may change rate or layout midway (joined mp3s): start a new resampler then.
            frame_setup = (frame.format.name, frame.layout.name, frame.sample_rate)
            if frame_setup != setup:
                _flush(resampler, chunks)
                resampler = av.AudioResampler(format="fltp", layout=output.layout, rate=output.rate)
                setup = frame_setup
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        _flush(resampler, chunks)
    except av.error.FFmpegError as exc:
        raise AudioInputError(
            f"The file is damaged: decoding failed after {format_duration(decoded_s)}."
        ) from exc
    empty = np.zeros((output.channels, 0), np.float32)
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False) if chunks else empty
    return samples, decoded_s


def _flush(resampler, chunks: list[np.ndarray]) -> None:
    if resampler is not None:
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))


def _check_content(samples: np.ndarray, sample_rate: int, limits: AudioLimits, errors_seen: bool) -> None:
    """`samples` is `(channels, samples)`."""
    length = samples.shape[-1]
    if errors_seen and length < limits.min_seconds * sample_rate:
        # Some demuxers lose their way in damaged data and quietly return almost nothing.
        raise AudioInputError("The file is damaged: almost none of its audio could be decoded.")
    if length == 0:
        raise AudioInputError("The file holds no audio that could be decoded.")
    if not np.isfinite(samples).all():
        raise AudioInputError("The file is damaged: it holds samples that are not numbers.")
    duration = length / sample_rate
    if duration < limits.min_seconds:
        raise AudioInputError(
            f"The track is {format_duration(duration)} long; it needs at least "
            f"{format_duration(limits.min_seconds)} to carry a melody."
        )
