"""The JSON written beside each candidate: enough to know how it was made and to make it again."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from generation.audio.mastering import Loudness, MasteringOptions

if TYPE_CHECKING:
    from generation.audio.decode import SeedAudio
    from generation.interface import Engine
    from generation.results import Candidate, Restyled

LIBRARIES = ("restyle", "torch", "transformers", "av", "numpy", "pyloudnorm")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sidecar(
    result: Restyled,
    candidate: Candidate,
    engine: Engine,
    *,
    seed: SeedAudio,
    filename: str,
    format_name: str,
    bitrate: int | None,
    mastering: MasteringOptions,
    loudness: Loudness,
    gain_db: float,
    loop: dict[str, Any] | None = None,
) -> str:
    """`loop`: a loop's entry (`generation.loops.LoopInfo.sidecar`), for loops only."""
    record: dict[str, Any] = {
        "prompt": result.prompt,
        "candidate": candidate.index,
        "seed": candidate.seed,
        "model": engine.describe(),
        "licence": asdict(engine.licence),  # of the weights: whether this file may ship in a paid game
        "parameters": {
            "duration_s": result.duration_s,
            "candidates": len(result.candidates),
            **engine.parameters(result.duration_s, result.params),
            "stems": result.stems,
        },
        "input": {"sha256": seed.sha256, "source": seed.source, "duration_s": round(seed.duration_s, 3)},
        "output": {
            "file": filename,
            "format": format_name,
            "bitrate": bitrate,
            "sample_rate": result.sample_rate,
            "channels": int(candidate.audio.shape[0]),
            "duration_s": round(candidate.audio.shape[-1] / result.sample_rate, 3),
        },
        "loudness": {
            "normalized": mastering.target_lufs is not None,
            "target_lufs": mastering.target_lufs,
            "true_peak_limit_dbtp": mastering.true_peak_db,
            "gain_db": round(gain_db, 2),
            "integrated_lufs": _rounded(loudness.integrated_lufs),
            "true_peak_dbtp": _rounded(loudness.true_peak_dbtp),
            "fade_out_s": mastering.fade_out_s,
        },
        "melody_adherence": round(candidate.adherence, 4),
        **({"loop": loop} if loop is not None else {}),
        "timings_s": {name: round(value, 3) for name, value in result.timings.items()},
        "versions": library_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def _rounded(value: float | None) -> float | None:
    if value is None or value == float("-inf"):
        return None
    return round(value, 2)
