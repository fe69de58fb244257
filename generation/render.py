"""Finished files for each candidate: mastered, encoded (to fit a size if asked), with a sidecar."""

from __future__ import annotations

from dataclasses import dataclass

from generation.audio.decode import SeedAudio
from generation.audio.encode import FIT_BITRATES, encode_audio, encode_to_fit, get_format
from generation.audio.mastering import MasteringOptions, master, measure
from generation.interface import Engine
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
) -> list[Rendered]:
    """Master and encode every candidate. With `max_bytes`, lossy files step their bitrate down,
    from `bitrate` (or the format's default), until each fits."""
    mastering = mastering or MasteringOptions()
    spec = get_format(format_name)
    rate = result.sample_rate
    rendered = []
    for candidate in result.candidates:
        audio, gain_db = master(candidate.audio, rate, mastering)
        filename = candidate_filename(name, candidate.index, len(result.candidates), spec.extension)
        if max_bytes is None:
            data, used = encode_audio(audio, rate, format_name, bitrate), bitrate or spec.default_bitrate
        else:
            data, used = encode_to_fit(audio, rate, format_name, max_bytes, _ladder(bitrate))
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
        )
        flac = encode_audio(audio, rate, "flac") if lossless else None
        rendered.append(Rendered(candidate, filename, data, used, flac, meta))
    return rendered


def _ladder(start: int | None) -> tuple[int, ...]:
    """The bitrates to try, from `start` down."""
    if start is None:
        return FIT_BITRATES
    return tuple(rate for rate in FIT_BITRATES if rate <= start) or (start,)
