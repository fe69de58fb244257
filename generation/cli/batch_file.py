"""`restyle batch` files: one seed track, a table of named style prompts, one track per name.

seed = "level-theme.mp3"            # relative to this file
model = "melody"                    # optional, as `restyle generate --model`
format = "flac"                     # optional: wav, flac, mp3, ogg
output = "variations"               # optional folder, relative to this file
candidates = 1                      # optional, per track
random_seed = 42                    # optional: reproducible runs
loop = true                         # optional: seamless loops (per track too), in wav, flac or ogg
bpm = 120                           # optional, loops only: the seed's tempo (default: detected)
beats_per_bar = 4                   # optional, loops only (default 4)
strength = 0.6                      # optional, per track too: ACE-Step's cover strength (0 to 1)
intro = 1                           # optional, loops only (per track too): bars played once before the loop
layers = true                       # optional, loops only (per track too): drums, bass, other, vocals too
set = true                          # optional: every track a loop of one tempo, metre and bar count
                                    #   (a game switches between them on a bar line), and a set.json

[tracks]
ambient = "serene ambient piano, gentle chimes"
clockwork = { prompt = "minimalist ticking, soft synth pads, clockwork puzzle", candidates = 2 }
menu = { prompt = "soft harp", loop = false }
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from generation.audio.tempo import check_bpm
from generation.cli.numbers import in_file
from generation.errors import InvalidRequestError
from generation.tomlfile import read_toml

LOOP_KEYS = {"loop", "bpm", "beats_per_bar", "intro", "layers"}
TOP_KEYS = {
    *("seed", "model", "format", "output", "candidates", "duration", "random_seed", "stems", "tracks"),
    "strength",
    "set",
    *LOOP_KEYS,
}
# What a set's tracks share, so no track may set its own.
SET_SHARED = ("bpm", "beats_per_bar", "duration", "intro")
TRACK_KEYS = {"prompt", "candidates", "duration", "random_seed", "strength"} | LOOP_KEYS
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Track:
    name: str
    prompt: str
    candidates: int | None = None
    duration: float | None = None
    random_seed: int | None = None
    loop: bool | None = None  # None: as the file says
    bpm: float | None = None
    beats_per_bar: int | None = None
    strength: float | None = None  # ACE-Step's cover strength; checked by the model's family
    intro: int | None = None
    layers: bool | None = None


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
    loop: bool = False
    bpm: float | None = None
    beats_per_bar: int | None = None
    intro: int | None = None
    layers: bool | None = None
    set: bool = False  # one tempo, metre and bar count for every track, and a set.json

    def loops(self, track: Track) -> bool:
        return self.loop if track.loop is None else track.loop

    def wants_layers(self, track: Track) -> bool:
        return bool(self.layers if track.layers is None else track.layers)


def load_batch_file(path: Path) -> BatchFile:
    """Parse and check a batch file; every problem is one `InvalidRequestError` line."""
    try:
        data = read_toml(path)
    except ValueError as exc:
        raise InvalidRequestError(f"{exc}.") from exc
    _no_unknown(data, TOP_KEYS, str(path))
    _typed(data, "seed", str)  # `output = 5` was dropped in silence: the tracks went elsewhere
    output = _typed(data, "output", str)
    if not isinstance(data.get("seed"), str):
        raise InvalidRequestError(f'{path} needs a seed track: seed = "theme.mp3".')
    tracks = data.get("tracks")
    if not isinstance(tracks, dict) or not tracks:
        raise InvalidRequestError(f'{path} needs a [tracks] table with at least one name = "prompt".')
    base, where = path.parent, path.name
    spec = BatchFile(
        seed=base / data["seed"],
        tracks=[_track(name, value) for name, value in tracks.items()],
        model=_typed(data, "model", str),
        format=_typed(data, "format", str),
        output=None if output is None else base / output,
        candidates=in_file(data, "candidates", where),
        duration=in_file(data, "duration", where),
        random_seed=in_file(data, "random_seed", where, "seed"),
        strength=in_file(data, "strength", where),
        stems=_typed(data, "stems", bool) is not False,
        set=_typed(data, "set", bool) is True,
        **_loop_settings(data, where, unset=False),
    )
    if spec.set:
        _check_set(spec, tracks)
        spec = replace(spec, loop=True)
    _check_tempos_loop(spec)
    return spec


def _check_set(spec: BatchFile, tables: dict[str, Any]) -> None:
    """A set's tracks share one tempo, metre, length and intro: none may set its own, or not loop."""
    for track in spec.tracks:
        table = tables[track.name] if isinstance(tables[track.name], dict) else {}
        own = [key for key in SET_SHARED if table.get(key) is not None]
        if own:
            raise InvalidRequestError(
                f"Track {track.name} sets its own {own[0]}, but a set's tracks share one tempo, metre,"
                f" length and intro: set it once at the top of the file."
            )
        if track.loop is False:
            raise InvalidRequestError(f"Track {track.name} does not loop, but every track of a set does.")


def _track(name: str, value: Any) -> Track:
    if not NAME.match(name):
        raise InvalidRequestError(f"Track name {name!r} must be letters, digits, '-', '_' or '.' (up to 64).")
    if isinstance(value, str):
        return Track(name, value)
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
        raise InvalidRequestError(f'Track {name} needs a prompt: {name} = "style words".')
    _no_unknown(value, TRACK_KEYS, f"track {name}")
    where = f"Track {name}"
    return Track(
        name,
        value["prompt"],
        in_file(value, "candidates", where),
        in_file(value, "duration", where),
        in_file(value, "random_seed", where, "seed"),
        strength=in_file(value, "strength", where),
        **_loop_settings(value, where),
    )


def _loop_settings(table: dict, where: str, unset: bool | None = None) -> dict[str, Any]:
    """`loop`, `bpm` and `beats_per_bar`, checked; `loop` is `unset` where the table has none."""
    bpm = in_file(table, "bpm", where)
    return {
        "loop": unset if table.get("loop") is None else _typed(table, "loop", bool),
        "bpm": None if bpm is None else check_bpm(bpm),  # rounded as every tempo is
        "beats_per_bar": in_file(table, "beats_per_bar", where),
        "intro": in_file(table, "intro", where),
        "layers": _typed(table, "layers", bool),
    }


def _check_tempos_loop(spec: BatchFile) -> None:
    """A tempo is a loop's: one given for a track that does not loop is a mistake, said now."""
    for track in spec.tracks:
        if not spec.loops(track) and (track.bpm is not None or track.beats_per_bar is not None):
            raise InvalidRequestError(f"Track {track.name} sets a tempo but does not loop: add loop = true.")
        if not spec.loops(track) and (track.intro is not None or track.layers):
            raise InvalidRequestError(
                f"Track {track.name} asks for an intro or layers but does not loop: add loop = true."
            )
    if (spec.bpm is not None or spec.beats_per_bar is not None) and not any(map(spec.loops, spec.tracks)):
        raise InvalidRequestError("The file sets a tempo but no track loops: add loop = true.")
    if (spec.intro is not None or spec.layers) and not any(map(spec.loops, spec.tracks)):
        raise InvalidRequestError("The file asks for an intro or layers but no track loops: add loop = true.")


def _no_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown setting {unknown[0]!r} in {where}: use {', '.join(sorted(allowed))}."
        )


# How a TOML type is said to someone writing the file.
KINDS = {int: "a whole number", bool: "true or false", str: "text in quotes"}


def _typed(table: dict, key: str, kind: type) -> Any:
    value = table.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise InvalidRequestError(f"{key} must be {KINDS.get(kind, kind.__name__)}, not {value!r}.")
    return value
