"""Loop points where players and game engines read them.

- WAV: a `smpl` chunk with one forward loop. Its end is inclusive in the RIFF spec ("the last
  sample to be played"), so a loop over samples [start, end) is written as `start` and `end - 1`;
  Godot's importer copies the value into `loop_end` as it is (see docs/loops.md).
  The chunk goes before `data`, where readers that stop at the audio still see it.
- Ogg (Opus) and FLAC: Vorbis comments `LOOPSTART` and `LOOPLENGTH`, in samples. Opus always
  decodes at 48 kHz, so an Opus file's figures are at 48 kHz, converted from the model's rate
  (exactly: loop lengths are whole samples at both rates, see `generation.loops`).
- mp3 has no place for them; its encoder also pads the start and end, so an mp3 never loops
  seamlessly. Use wav, flac or ogg for loops.
"""

from __future__ import annotations

import struct

import numpy as np

from generation.audio.encode import encode_audio, get_format
from generation.errors import InvalidRequestError

LOOP_FORMATS = ("wav", "flac", "ogg")
MIDI_UNITY_NOTE = 60  # middle C: the sample plays at its own pitch


def loop_tags(start: int, end: int, sample_rate: int, out_rate: int) -> dict[str, str]:
    """`LOOPSTART`/`LOOPLENGTH` for samples [start, end) at `sample_rate`, counted at `out_rate`."""

    def at_out_rate(samples: int) -> int:
        if samples * out_rate % sample_rate:
            raise ValueError("loop points must be whole samples at the output rate too")
        return samples * out_rate // sample_rate

    return {"LOOPSTART": str(at_out_rate(start)), "LOOPLENGTH": str(at_out_rate(end - start))}


def smpl_chunk(start: int, end: int, sample_rate: int) -> bytes:
    """A RIFF `smpl` chunk holding one forward loop over samples [start, end)."""
    period_ns = round(1e9 / sample_rate)
    header = struct.pack("<9I", 0, 0, period_ns, MIDI_UNITY_NOTE, 0, 0, 0, 1, 0)
    loop = struct.pack("<6I", 0, 0, start, end - 1, 0, 0)  # id, forward, start, inclusive end, -, forever
    body = header + loop
    return b"smpl" + struct.pack("<I", len(body)) + body


def add_smpl(wav: bytes, start: int, end: int, sample_rate: int) -> bytes:
    """The WAV file `wav` with a `smpl` chunk before its `data` chunk (the RIFF size fixed)."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("not a RIFF WAVE file")
    offset = 12
    while offset + 8 <= len(wav):
        chunk_id, size = wav[offset : offset + 4], struct.unpack("<I", wav[offset + 4 : offset + 8])[0]
        if chunk_id == b"data":
            out = wav[:offset] + smpl_chunk(start, end, sample_rate) + wav[offset:]
            return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
        offset += 8 + size + (size & 1)
    raise ValueError("the WAV file has no data chunk")


def encode_loop(
    audio: np.ndarray,
    sample_rate: int,
    format_name: str,
    *,
    loop_start: int = 0,
    loop_end: int | None = None,
    bitrate: int | None = None,
) -> bytes:
    """Encode `(channels, samples)` audio with its loop points (by default: the whole file)."""
    end = audio.shape[-1] if loop_end is None else loop_end
    if not 0 <= loop_start < end <= audio.shape[-1]:
        raise ValueError("the loop must lie inside the audio")
    tags = file_tags(format_name, loop_start, end, sample_rate)
    data = encode_audio(audio, sample_rate, format_name, bitrate, tags=tags)
    return with_chunk(data, format_name, loop_start, end, sample_rate)


def check_loop_format(format_name: str) -> str:
    if format_name not in LOOP_FORMATS:
        raise InvalidRequestError(
            f"{format_name} cannot carry loop points: use one of {', '.join(LOOP_FORMATS)} for loops."
        )
    return format_name


def file_tags(format_name: str, start: int, end: int, sample_rate: int) -> dict[str, str] | None:
    """The tags a `format_name` file carries loop [start, end) in; None for WAV (a chunk instead)."""
    if check_loop_format(format_name) == "wav":
        return None
    return loop_tags(start, end, sample_rate, get_format(format_name).rate or sample_rate)


def with_chunk(data: bytes, format_name: str, start: int, end: int, sample_rate: int) -> bytes:
    """An encoded file with its loop chunk added, where its format takes one (WAV's `smpl`)."""
    return add_smpl(data, start, end, sample_rate) if check_loop_format(format_name) == "wav" else data
