"""`restyle batch` files: one seed track, a table of named style prompts, one track per name.

seed = "level-theme.mp3"            # relative to this file
model = "melody"                    # optional, as `restyle generate --model`
format = "flac"                     # optional: wav, flac, mp3, ogg
output = "variations"               # optional folder, relative to this file
candidates = 1                      # optional, per track
random_seed = 42                    # optional: reproducible runs
strength = 0.6                      # optional, per track too: ACE-Step's cover strength (0 to 1)

[tracks]
ambient = "serene ambient piano, gentle chimes"
clockwork = { prompt = "minimalist ticking, soft synth pads, clockwork puzzle", candidates = 2 }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import InvalidRequestError
from generation.tomlfile import read_toml

TOP_KEYS = {
    *("seed", "model", "format", "output", "candidates", "duration", "random_seed", "stems", "tracks"),
    "strength",
}
TRACK_KEYS = {"prompt", "candidates", "duration", "random_seed", "strength"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Track:
    name: str
    prompt: str
    candidates: int | None = None
    duration: float | None = None
    random_seed: int | None = None
    strength: float | None = None  # ACE-Step's cover strength; checked by the model's family


@dataclass(frozen=True)
class BatchFile:
    seed: Path
    tracks: list[Track]
    model: str | None = None
    format: str | None = None
    output: Path | None = None
    candidates: int | None = None
    duration: float | None = None
    random_seed: int | None = None
    strength: float | None = None
    stems: bool = True  # audiocraft's way; `stems = false` reads the melody from the whole mix


def load_batch_file(path: Path) -> BatchFile:
    """Parse and check a batch file; every problem is one `InvalidRequestError` line."""
    try:
        data = read_toml(path)
    except ValueError as exc:
        raise InvalidRequestError(f"{exc}.") from exc
    _no_unknown(data, TOP_KEYS, str(path))
    if not isinstance(data.get("seed"), str):
        raise InvalidRequestError(f'{path} needs a seed track: seed = "theme.mp3".')
    tracks = data.get("tracks")
    if not isinstance(tracks, dict) or not tracks:
        raise InvalidRequestError(f'{path} needs a [tracks] table with at least one name = "prompt".')
    base = path.parent
    return BatchFile(
        seed=base / data["seed"],
        tracks=[_track(name, value) for name, value in tracks.items()],
        model=_typed(data, "model", str),
        format=_typed(data, "format", str),
        output=base / data["output"] if isinstance(data.get("output"), str) else None,
        candidates=_typed(data, "candidates", int),
        duration=_number(data, "duration"),
        random_seed=_typed(data, "random_seed", int),
        strength=_number(data, "strength", "a number from 0 to 1"),
        stems=_typed(data, "stems", bool) is not False,
    )


def _track(name: str, value: Any) -> Track:
    if not NAME.match(name):
        raise InvalidRequestError(f"Track name {name!r} must be letters, digits, '-', '_' or '.' (up to 64).")
    if isinstance(value, str):
        return Track(name, value)
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
        raise InvalidRequestError(f'Track {name} needs a prompt: {name} = "style words".')
    _no_unknown(value, TRACK_KEYS, f"track {name}")
    return Track(
        name,
        value["prompt"],
        _typed(value, "candidates", int),
        _number(value, "duration"),
        _typed(value, "random_seed", int),
        _number(value, "strength", "a number from 0 to 1"),
    )


def _no_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown setting {unknown[0]!r} in {where}: use {', '.join(sorted(allowed))}."
        )


def _typed(table: dict, key: str, kind: type) -> Any:
    value = table.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise InvalidRequestError(f"{key} must be a {kind.__name__}, not {value!r}.")
    return value


def _number(table: dict, key: str, what: str = "a number of seconds") -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{key} must be {what}, not {value!r}.")
    return float(value)
