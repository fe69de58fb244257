"""The models Restyle knows by name, the commits it loads them at, and the defaults it shows.

Nothing here imports torch or transformers: `restyle --help` and argument errors read this module
and must answer at once.

Each named model is pinned to a commit of its Hugging Face repository, so that an update of the
repository can neither change what a seed and prompt give nor break loading. A spec may name
another commit as `name@revision` (or `--revision`, `models.revision`); a repo id that is not a
named model follows its `main` branch unless told otherwise.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from generation.errors import ModelUnavailableError

DEFAULT_MODEL = "facebook/musicgen-melody"
MODEL_ALIASES = {
    "melody": "facebook/musicgen-melody",
    "melody-large": "facebook/musicgen-melody-large",
    "stereo-melody": "facebook/musicgen-stereo-melody",
    "stereo-melody-large": "facebook/musicgen-stereo-melody-large",
}
DEBUG_MODELS = ("debug", "debug-stereo")
# ACE-Step 1.5's names as the fronts show them (the family itself, `generation.acestep`, owns them).
ACE_STEP_MODELS = ("ace-step", "debug-ace")
RANDOM_PREFIX = "random:"

# Commits of the transformers-format checkpoints (config.json and safetensors). Where they come
# from: each was found pinned or cached by other projects that load these repos with transformers
# (musicgen-melody by three of them, musicgen-melody-large by two, the stereo ones by one); none
# could be checked against the hub from here, which is offline. `restyle download NAME@main` and
# `--revision` move off a pin that turns out wrong.
PINNED_REVISIONS = {
    "facebook/musicgen-melody": "68d653a95788ec0d2b0abccab22c0b3a200c2d90",
    "facebook/musicgen-melody-large": "6fdf8d3d815995108c9bdb5183414ff464b171ac",
    "facebook/musicgen-stereo-melody": "022c3bd20a7d77e7c014082f0391bcbcd3940a7a",
    "facebook/musicgen-stereo-melody-large": "eea14861e6c29c47aea1055982a217468cd1634d",
}

# htdemucs, the stem separator audiocraft runs before the chroma: demucs' own repository on the hub.
# The commit is its latest as other projects pin it ("Remove license from model card"); the earlier
# bf35a81b663819a8255c8fefee17f9d812b786b5 holds the same 955717e8.safetensors (84,025,440 bytes).
STEMS_REPO = "adefossez/HTDemucs"
STEMS_REVISION = "cbc8a9b1a87023b7fd74e7b3412e6321c0eab003"

# Sampling as audiocraft does it (transformers falls back to top_k 50 unless told).
TOP_K = 250
TOP_P = 0.0
TEMPERATURE = 1.0
GUIDANCE = 3.0

# The longest style prompt the engines take (T5 reads a few hundred tokens at most).
MAX_PROMPT_CHARS = 500

# Loudness targets a listener can hear: BS.1770's gate is -70 LUFS; 0 LUFS is full-scale noise.
MIN_LUFS, MAX_LUFS = -70.0, 0.0

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_REVISION = re.compile(r"^[\w./-]{1,128}$")


@dataclass(frozen=True)
class ModelName:
    """A spec split into what to load and at which commit (None: not a hub model, or `main`)."""

    spec: str  # as typed, without any @revision
    revision: str | None


def split_revision(spec: str, revision: str | None = None) -> ModelName:
    """`melody@abc123` -> (`melody`, `abc123`); an explicit `revision` wins over the one in the spec."""
    name, at, in_spec = spec.partition("@")
    if not at or Path(spec).expanduser().exists():  # a folder may have an @ in its name
        name, in_spec = spec, ""
    chosen = revision or in_spec or None
    if chosen is not None and not _REVISION.match(chosen):
        raise ValueError(f"{chosen!r} is not a revision: use a commit id, a branch or a tag.")
    return ModelName(name, chosen)


def same_model(recorded: object, asked: str) -> bool:
    """Whether a sidecar's model name (the spec as typed, without its revision) is the model
    `asked` names, an alias and its repo id alike."""
    if not isinstance(recorded, str):
        return False
    spec = split_revision(asked).spec
    return MODEL_ALIASES.get(recorded, recorded) == MODEL_ALIASES.get(spec, spec)


def random_architecture(
    spec: str, debug_models: tuple[str, ...], architectures: Iterable[str], family: str = ""
) -> str | None:
    """The architecture a model built in-process with random weights has: a debug model's own, or
    `random:<architecture>`'s (refused if unknown); None for any other spec."""
    if spec in debug_models:
        return spec
    if not spec.startswith(RANDOM_PREFIX):
        return None
    arch, known = spec.removeprefix(RANDOM_PREFIX), list(architectures)
    if arch not in known:
        what = f"{family} architecture" if family else "architecture"
        raise ModelUnavailableError(f"Unknown {what} {arch!r}: choose one of {', '.join(known)}.")
    return arch


def is_random_model(spec: str) -> bool:
    """Built in-process with random weights: needs no download (and gets the tiny stem separator)."""
    return spec in DEBUG_MODELS or spec.startswith(RANDOM_PREFIX)


def hub_target(name: str) -> str | None:
    """The repo id a name stands for, or None when it is not shaped like one."""
    target = MODEL_ALIASES.get(name, name)
    return target if _REPO_ID.match(target) else None


def pinned_revision(target: str, revision: str | None) -> str:
    """The commit to load `target` at: the one asked for, else the pin, else `main`."""
    return revision or PINNED_REVISIONS.get(target, "main")


def unknown_model_message(name: str) -> str:
    known = [*MODEL_ALIASES, *DEBUG_MODELS, *ACE_STEP_MODELS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"Did you mean {close[0]}? " if close else ""
    return (
        f"Unknown model {name!r}. {hint}Use one of {', '.join(known)}, a folder written by "
        "save_pretrained, or a Hugging Face repo id (org/name)."
    )


def check_output_name(name: str) -> str:
    """A file name stem that stays inside the output folder: no separators, no leading dot."""
    if not name or any(mark in name for mark in ("/", "\\", "\0")) or name.startswith("."):
        raise ValueError(
            f"{name!r} must be a plain file name: no folders, no leading dot (use -o for the folder)"
        )
    if len(name.encode()) > 200:
        raise ValueError("a name of 200 bytes at most, please")
    return name


def models_help() -> str:
    return (
        f"MusicGen-melody (CC-BY-NC 4.0 weights: non-commercial use): {', '.join(MODEL_ALIASES)} "
        "(pinned commits), a Hugging Face repo id, a folder, or debug (a tiny random model, offline; "
        "noise, not music); NAME@REVISION picks a commit. ACE-Step 1.5 cover (MIT weights: commercial "
        "use allowed): ace-step (the turbo checkpoint, pinned), a folder, or debug-ace (tiny, random, "
        f"offline). Default {DEFAULT_MODEL}"
    )
