"""Finished files for each candidate: mastered, encoded (to fit a size if asked), with a sidecar.

A loop's files carry its loop points where their format has a place for them (WAV `smpl`, Ogg and
FLAC tags: `generation.audio.loop_points`), the lossless copy always; an mp3 preview carries none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from generation.audio.decode import SeedAudio
from generation.audio.encode import FIT_BITRATES, encode_audio, encode_to_fit, get_format
from generation.audio.loop_points import LOOP_FORMATS, encode_loop, file_tags, with_chunk
from generation.audio.mastering import MasteringOptions, master, measure
from generation.interface import Engine
from generation.layers import LayerMix, layer_entry, layers_sidecar, mix_layers
from generation.loops import LoopInfo, loop_mastering
from generation.outputs import LAYER_NAMES, layer_filename
from generation.results import Candidate, Restyled, candidate_filename
from generation.sidecar import sidecar


@dataclass(frozen=True)
class Rendered:
    candidate: Candidate
    filename: str
    data: bytes  # the encoded file
    bitrate: int | None  # None for lossless formats
    lossless: bytes | None  # a FLAC of the same master, when asked for
    sidecar: str  # JSON
    layers: tuple[RenderedLayer, ...] = ()  # a loop's layers, when its `LoopInfo` has stems


@dataclass(frozen=True)
class RenderedLayer:
    name: str  # drums, bass, other or vocals
    filename: str
    data: bytes
    sidecar: str  # JSON: the layer, its candidate, loudness and loop points


def render_candidates(
    result: Restyled,
    engine: Engine,
    seed: SeedAudio,
    *,
    name: str,
    format_name: str = "wav",
    mastering: MasteringOptions | None = None,
    max_bytes: int | None = None,
    bitrate: int | None = None,
    lossless: bool = False,
    loop: LoopInfo | None = None,
) -> list[Rendered]:
    """Master and encode every candidate. With `max_bytes`, lossy files step their bitrate down,
    from `bitrate` (or the format's default), until each fits. With `loop`, no fade-out, and the
    loop's points in the files and the sidecars."""
    mastering = loop_mastering(mastering) if loop is not None else mastering or MasteringOptions()
    spec = get_format(format_name)
    rate = result.sample_rate
    rendered = []
    for candidate in result.candidates:
        audio, gain_db = master(candidate.audio, rate, mastering)
        filename = candidate_filename(name, candidate.index, len(result.candidates), spec.extension)
        layers: tuple[RenderedLayer, ...] = ()
        loop_entry = loop.sidecar(candidate.index) if loop is not None else None
        if loop is not None and loop.stems:
            mix = mix_layers(audio, loop.stems[candidate.index - 1], gain_db)
            audio = mix.candidate  # on the 16-bit grid the layers sum to
            layers, entry = _layers(
                mix, filename, loop, rate=rate, format_name=format_name, bitrate=bitrate, max_bytes=max_bytes
            )
            loop_entry = {**(loop_entry or {}), "layered": True, "layers": entry}  # `layered`: for resume
        data, used = _encoded(audio, rate, format_name, bitrate=bitrate, max_bytes=max_bytes, loop=loop)
        meta = sidecar(
            result,
            candidate,
            engine,
            seed=seed,
            filename=filename,
            format_name=format_name,
            bitrate=used,
            mastering=mastering,
            loudness=measure(audio, rate),
            gain_db=gain_db,
            loop=loop_entry,
        )
        flac = _lossless(audio, rate, loop) if lossless else None
        rendered.append(Rendered(candidate, filename, data, used, flac, meta, layers))
    return rendered


def _layers(
    mix: LayerMix,
    filename: str,
    loop: LoopInfo,
    *,
    rate: int,
    format_name: str,
    bitrate: int | None,
    max_bytes: int | None,
) -> tuple[tuple[RenderedLayer, ...], dict]:
    """Each layer encoded with the candidate's loop points, and the candidate sidecar's entry."""
    rendered, entries = [], []
    points = {"loop_start": loop.loop_start, "loop_end": loop.loop_end, "sample_rate": rate}
    for name in LAYER_NAMES:
        audio = mix.layers[name]
        layer_file = layer_filename(filename, name)
        data, _ = _encoded(audio, rate, format_name, bitrate=bitrate, max_bytes=max_bytes, loop=loop)
        entry = layer_entry(name, layer_file, audio, rate)
        meta = {"layer_of": filename, **entry, "loop": points}
        rendered.append(RenderedLayer(name, layer_file, data, json.dumps(meta, indent=2) + "\n"))
        entries.append(entry)
    lossless = get_format(format_name).lossless
    return tuple(rendered), layers_sidecar(entries, trimmed=mix.trimmed, lossless=lossless)


def _encoded(
    audio: np.ndarray,
    rate: int,
    format_name: str,
    *,
    bitrate: int | None,
    max_bytes: int | None,
    loop: LoopInfo | None,
) -> tuple[bytes, int | None]:
    """The file and the bitrate it took; a loop's points go in where the format has room."""
    points = (loop.loop_start, loop.loop_end) if loop is not None and format_name in LOOP_FORMATS else None
    tags = file_tags(format_name, *points, rate) if points else None
    if max_bytes is None:
        data = encode_audio(audio, rate, format_name, bitrate, tags=tags)
        used = bitrate or get_format(format_name).default_bitrate
    else:
        data, used = encode_to_fit(audio, rate, format_name, max_bytes, _ladder(bitrate), tags=tags)
    return (with_chunk(data, format_name, *points, rate) if points else data), used


def _lossless(audio: np.ndarray, rate: int, loop: LoopInfo | None) -> bytes:
    if loop is None:
        return encode_audio(audio, rate, "flac")
    return encode_loop(audio, rate, "flac", loop_start=loop.loop_start, loop_end=loop.loop_end)


def _ladder(start: int | None) -> tuple[int, ...]:
    """The bitrates to try, from `start` down."""
    if start is None:
        return FIT_BITRATES
    return tuple(rate for rate in FIT_BITRATES if rate <= start) or (start,)
