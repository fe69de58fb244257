"""Refusals the command line makes before any work: outputs that are inputs or each other's, a
revision for a model that has none, and which track of a batch a refusal is about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generation.errors import InvalidRequestError, RestyleError
from generation.interface import Family
from generation.outputs import TrackFiles, refuse_collisions, refuse_inputs, same_file


def check_output(files: TrackFiles, seed: Path) -> None:
    """No file of `restyle generate` is its seed, whatever --name, -o or --force say."""
    refuse_inputs([("this run", files)], [("the seed", seed)], "choose another --name or -o")


def check_names(tracks: list[tuple[str, TrackFiles]], seed: Path, tracks_file: Path) -> None:
    """Every output name of a batch, known before any work: none is an input, none is two tracks'."""
    writers = [(f"track {name}", files) for name, files in tracks]
    inputs = [("the seed", seed), ("the batch file", tracks_file)]
    refuse_inputs(writers, inputs, "rename the track, or choose another output folder (-o or output =)")
    refuse_collisions(tracks)


def check_set_file(path: Path, seed: Path, tracks_file: Path) -> None:
    """A set's set.json is an output too: a batch file (or a seed) of that name was replaced."""
    for what, source in (("the seed", seed), ("the batch file", tracks_file)):
        if same_file(path, source):
            raise InvalidRequestError(
                f"{path} is {what}: the set's {path.name} must not write over it;"
                " choose another output folder (-o or output =)."
            )


def refuse_revision(family: Family, model: str, revision: str | None) -> None:
    """A model built in-process has no commits: a --revision for it would be ignored and then
    claimed (the sidecar, or a pinned family's refusal naming a hub commit)."""
    name, at, typed = model.partition("@")  # `debug@abc` asks for a revision as --revision does
    if (revision is not None or at) and family.is_random(name):
        drop = "--revision" if revision is not None else f"@{typed}"
        raise InvalidRequestError(
            f"{name} is built in-process with random weights: it has no revisions, drop {drop}."
        )


@contextmanager
def track_named(name: str | None) -> Iterator[None]:
    """A refusal about one track of a batch says which: "Track boss: the duration must be..."."""
    try:
        yield
    except RestyleError as exc:
        if name is None or str(exc).startswith("Track "):
            raise
        text = str(exc)
        text = text[0].lower() + text[1:] if text[:2].istitle() else text
        raise type(exc)(f"Track {name}: {text}") from exc
