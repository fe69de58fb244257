"""Layers: a loop's candidate as synchronised stems a game fades in and out over one timeline.

htdemucs (the separator the melody already uses, on the model's device) splits each folded
candidate into drums, bass, other and vocals. Three layers are the separator's own; the fourth,
`REMAINDER_LAYER`, is the candidate less those three, so the layers sum to the candidate exactly
whatever the separator does (a tiny random one in the tests, htdemucs in use). Exactly means in the
files too: candidate and layers are quantised to 16 bits before encoding and the remainder taken in
integers, so the four WAV (or FLAC) layers add up to the candidate's samples bit for bit. Ogg is lossy:
there the sum holds before encoding only, and the sidecar says so.

The loop is separated with its own continuation after its end (its first seconds again: what plays
next in a game) and, for a plain loop, its last seconds before its start, so the separator hears the
wrap as music and the layers wrap as the candidate does.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from generation.audio.mastering import SILENT_LUFS, measure
from generation.loops import Looped
from generation.outputs import LAYER_NAMES

log = logging.getLogger(__name__)

REMAINDER_LAYER = "other"  # what the separator leaves over goes here
CONTEXT_S = 3.0  # the music heard on each side of the wrap while separating
SILENT_PEAK_DB = -60.0  # a layer whose true peak stays under this (or unmeasurably quiet) is silent
FULL_SCALE = 32768


def separate_layers(separator: Any, audio: np.ndarray, rate: int, loop_start: int = 0) -> np.ndarray:
    """`(len(LAYER_NAMES), channels, samples)` stems of `(channels, samples)` audio whose loop runs
    from `loop_start` to its end; `separator` is a `generation.audio.stems.StemSeparator`."""
    samples = audio.shape[-1]
    context = min(round(CONTEXT_S * rate), samples - loop_start)
    after = audio[:, loop_start : loop_start + context]
    before = audio[:, samples - context :] if loop_start == 0 else audio[:, :0]
    padded = np.concatenate([before, audio, after], axis=-1)
    stems = _separate(separator, padded, rate)
    return stems[:, :, before.shape[-1] : before.shape[-1] + samples]


def _separate(separator: Any, audio: np.ndarray, rate: int) -> np.ndarray:
    import torch
    from demucs.apply import apply_model
    from demucs.audio import convert_audio

    model = separator.model
    wav = torch.from_numpy(np.ascontiguousarray(audio)).float()[None]  # (batch, channels, time)
    wav = convert_audio(wav, rate, model.samplerate, model.audio_channels)
    with torch.inference_mode():
        stems = apply_model(model, wav, device=separator.device, shifts=0, progress=False)[0]
    order = [model.sources.index(name) for name in LAYER_NAMES]
    back = convert_audio(stems[order], model.samplerate, rate, audio.shape[0])
    out = np.zeros((len(LAYER_NAMES), *audio.shape), dtype=np.float32)
    length = min(audio.shape[-1], back.shape[-1])
    out[..., :length] = back[..., :length].cpu().numpy()
    return out


def quantised(audio: np.ndarray) -> np.ndarray:
    """16-bit sample values of float audio (clipped), as int32 so sums never wrap."""
    values = np.round(audio.astype(np.float64) * FULL_SCALE)
    return np.clip(values, -FULL_SCALE, FULL_SCALE - 1).astype(np.int32)


@dataclass(frozen=True)
class LayerMix:
    """A mastered candidate and its layers, on the 16-bit grid: the layers sum to `candidate`."""

    candidate: np.ndarray  # float32, exactly representable in 16 bits
    layers: dict[str, np.ndarray]  # LAYER_NAMES order, float32, each exactly representable
    trimmed: int  # samples where the separator's layers were pulled in so the remainder fits 16 bits


def mix_layers(mastered: np.ndarray, stems: np.ndarray, gain_db: float) -> LayerMix:
    """The candidate as mastered (gain `gain_db`) and its stems at the same gain, the remainder
    layer taken in integers so that the four sum to the candidate's 16-bit samples."""
    candidate = quantised(mastered)
    gain = 10 ** (gain_db / 20)
    ints = {name: quantised(stems[i] * gain) for i, name in enumerate(LAYER_NAMES)}
    own = [ints[name] for name in LAYER_NAMES if name != REMAINDER_LAYER]
    trimmed = _fit_remainder(candidate, own)
    ints[REMAINDER_LAYER] = candidate - sum(own)
    to_float = lambda values: (values / FULL_SCALE).astype(np.float32)  # noqa: E731
    return LayerMix(to_float(candidate), {name: to_float(ints[name]) for name in LAYER_NAMES}, trimmed)


def _fit_remainder(candidate: np.ndarray, own: list[np.ndarray]) -> int:
    """Pull the separator's layers toward 0 (in place) wherever the remainder would not fit 16 bits.

    The remainder fits when the layers' sum lies in [candidate - 32767, candidate + 32768]; silence
    always does, so taking the excess off the layers that carry it (those of its sign) always
    succeeds. A separator whose layers add up to about the mix never gets here; any other still
    gives layers that sum exactly. Returns the number of samples changed.
    """
    total = sum(own)
    excess = total - np.clip(total, candidate - (FULL_SCALE - 1), candidate + FULL_SCALE)
    changed = int(np.count_nonzero(excess))
    for layer in own:
        take = np.where(excess > 0, np.clip(layer, 0, excess), np.clip(layer, excess, 0))
        np.subtract(layer, take, out=layer)  # in place: `own` holds the layers themselves
        excess -= take
    if changed:
        log.warning("%d samples of the separated layers were pulled in to keep the sum exact", changed)
    return changed


def layer_entry(name: str, filename: str, audio: np.ndarray, rate: int) -> dict[str, Any]:
    """One layer in the sidecar: its file, loudness and whether it is silent (kept, and said)."""
    loudness = measure(audio, rate)
    peak = loudness.true_peak_dbtp
    silent = loudness.integrated_lufs is None or peak < SILENT_PEAK_DB
    return {
        "layer": name,
        "file": filename,
        "integrated_lufs": None if loudness.integrated_lufs is None else round(loudness.integrated_lufs, 2),
        "true_peak_dbtp": round(peak, 2) if math.isfinite(peak) else None,
        "silent": silent,
    }


def layers_sidecar(entries: list[dict[str, Any]], *, trimmed: int, lossless: bool) -> dict[str, Any]:
    """The candidate sidecar's `layers` entry."""
    silent = [entry["layer"] for entry in entries if entry["silent"]]
    return {
        "separator": "htdemucs",
        "remainder_layer": REMAINDER_LAYER,
        "sum": (
            "exact: the layers' samples add up to the candidate's"
            if lossless
            else "approximate: ogg is lossy (exact before encoding)"
        ),
        "trimmed_samples": trimmed,
        "silent_layers": silent,
        "files": entries,
        "silent_below": f"{SILENT_LUFS:g} LUFS or a true peak under {SILENT_PEAK_DB:g} dBTP",
    }


def with_layers(looped: Looped, separator: Any) -> Looped:
    """`looped` with each candidate's stems (`LoopInfo.stems`), for `render_candidates` to write as
    layers. Runs the separator, so call it where the model runs (it is on the model's device)."""
    rate, start = looped.result.sample_rate, looped.info.loop_start
    stems = tuple(
        separate_layers(separator, candidate.audio, rate, start) for candidate in looped.result.candidates
    )
    return replace(looped, info=replace(looped.info, stems=stems))


def layers_line(rendered: Any) -> str:
    """What the console says of a `generation.render.Rendered`'s layers."""
    names = ", ".join(layer.filename for layer in rendered.layers)
    entry = json.loads(rendered.sidecar)["loop"]["layers"]
    silent = entry["silent_layers"]
    said = f"; silent: {', '.join(silent)} (kept, so every candidate has all four)" if silent else ""
    return f"layers: {names} (sum {entry['sum'].split(':')[0]}; leftover in {entry['remainder_layer']}{said})"
