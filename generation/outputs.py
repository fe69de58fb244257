"""The command line's output files: checked before any work, written in pairs, found again on resume.

Each candidate is an audio file and a JSON sidecar named after the audio file's full name
(`theme-1.mp3` and `theme-1.mp3.json`), so runs in different formats never share a sidecar. Both are
written under temporary names and renamed, sidecar first: an audio file under its real name always
has its sidecar, whatever moment a Ctrl-C or a crash picks. A Ctrl-C during the renames waits for
them to finish.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.catalog import same_model
from generation.errors import InvalidRequestError
from generation.results import candidate_filename

SIDECAR_SUFFIX = ".json"
_PARTIAL = ".partial-"


def sidecar_path(audio: Path) -> Path:
    return audio.with_name(audio.name + SIDECAR_SUFFIX)


def write_probe(folder: Path) -> None:
    """Create `folder` if needed and write (then remove) a file in it; OSError if either fails."""
    folder.mkdir(parents=True, exist_ok=True)
    test = folder / f"{_PARTIAL}probe-{os.getpid()}"
    test.write_bytes(b"")
    test.unlink()


def probe_folder(folder: Path) -> None:
    """Refuse, before any work, a folder that cannot be created or written: made and unmade here."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InvalidRequestError(f"{probe} is a file, not a folder: choose another -o.")
    try:
        write_probe(folder)
    except OSError as exc:
        raise InvalidRequestError(
            f"Restyle cannot write to {folder} ({exc.strerror or exc}): choose another -o."
        ) from None
    finally:
        for created in missing:  # the real files create it again; a refused run leaves nothing
            with contextlib.suppress(OSError):
                created.rmdir()


@dataclass(frozen=True)
class TrackFiles:
    """The files one name's candidates go to."""

    folder: Path
    name: str
    count: int
    extension: str

    def audio(self) -> list[Path]:
        return [
            self.folder / candidate_filename(self.name, i, self.count, self.extension)
            for i in range(1, self.count + 1)
        ]

    def all(self) -> list[Path]:
        return [path for audio in self.audio() for path in (audio, sidecar_path(audio))]

    def existing(self) -> list[Path]:
        return [path for path in self.all() if path.exists()]

    def finished(
        self,
        prompt: str,
        *,
        loop: bool = False,
        model: str | None = None,
        made_as: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> bool:
        """Every file there, from this very prompt, by this `model` (when given: a batch switched
        to another model, MIT weights for non-commercial ones say, makes its tracks again), a loop
        if a loop is asked for, and recording every setting of `made_as` (sidecar section -> key ->
        value: a changed strength or length makes the track again). A loop's sidecar keeps the
        prompt as asked in its `loop` entry: its own `prompt` is what the model was given, the
        tempo appended."""
        if len(self.existing()) != len(self.all()):
            return False
        asked = {"prompt": prompt, "loop": loop, "model": model, "made_as": made_as or {}}
        for audio in self.audio():
            try:
                recorded = json.loads(sidecar_path(audio).read_text())
            except (OSError, ValueError):
                return False
            if not _made_like(recorded, audio.name, **asked):
                return False
        return True


def _made_like(
    recorded: dict,
    filename: str,
    *,
    prompt: str,
    loop: bool,
    model: str | None,
    made_as: Mapping[str, Mapping[str, Any]],
) -> bool:
    looped = recorded.get("loop")
    asked = looped.get("prompt") if isinstance(looped, dict) else recorded.get("prompt")
    return (
        (looped is not None) == loop
        and asked == prompt
        and (model is None or same_model(recorded.get("model", {}).get("name"), model))
        and recorded.get("output", {}).get("file") == filename
        and _records(recorded, made_as)
    )


def _records(recorded: dict, made_as: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a sidecar records each of these settings (numbers as equal as JSON keeps them)."""
    for section, settings in made_as.items():
        written = recorded.get(section)
        if settings and not isinstance(written, dict):
            return False
        for key, value in settings.items():
            kept = written.get(key)
            if isinstance(value, float) and isinstance(kept, int | float) and not isinstance(kept, bool):
                if not math.isclose(kept, value, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif kept != value:
                return False
    return True


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths are one file: the same path once links and `..` are resolved, or the same
    file on disk (a hard link; a name differing only in case on a case-insensitive file system)."""
    with contextlib.suppress(OSError, RuntimeError):
        if one.resolve() == other.resolve():
            return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # either is missing: a file that is not there is not an input
        return False


def refuse_inputs(
    tracks: Sequence[tuple[str, TrackFiles]], inputs: Sequence[tuple[str, Path]], instead: str
) -> None:
    """No output may be an input (the seed, a batch file), whatever --force or a name says: that
    would destroy it. `tracks` are (who writes, files), `inputs` (what it is, path); `instead` says
    what to change (never --force)."""
    for writer, files in tracks:
        for output in files.all():
            for what, path in inputs:
                if same_file(output, path):
                    where = "" if output == path else f" ({path})"
                    raise InvalidRequestError(
                        f"{output} is {what}{where}: {writer} must not write over it; {instead}."
                    )


def refuse_collisions(tracks: Sequence[tuple[str, TrackFiles]]) -> None:
    """No two tracks may write one file. Names are compared ignoring case: on macOS' and Windows'
    file systems `Boss.wav` and `boss.wav` are one file, and a batch file means the same anywhere."""
    owners: dict[tuple[Path, str], tuple[str, str]] = {}
    for writer, files in tracks:
        for output in files.all():
            key = (output.parent, output.name.casefold())
            first = owners.setdefault(key, (writer, output.name))
            if first[0] != writer:
                same = "both write" if first[1] == output.name else "write files that differ only in case:"
                names = output.name if first[1] == output.name else f"{first[1]} and {output.name}"
                raise InvalidRequestError(
                    f"Tracks {first[0]} and {writer} would {same} {names}: rename one of them."
                )


def refuse_to_clobber(tracks: Sequence[TrackFiles]) -> None:
    for track in tracks:
        existing = track.existing()
        if existing:
            raise InvalidRequestError(
                f"{existing[0]} already exists: use --force to overwrite, or -o another folder."
            )


def write_pairs(folder: Path, files: Sequence[tuple[str, bytes, str]]) -> list[Path]:
    """Write `(audio name, audio bytes, sidecar text)` triples; returns the audio paths."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data, sidecar in files:
            final = folder / name
            partial_audio = folder / f"{_PARTIAL}{os.getpid()}-{name}"
            partial_sidecar = sidecar_path(partial_audio)
            staged += [(partial_sidecar, sidecar_path(final)), (partial_audio, final)]
            partial_sidecar.write_text(sidecar)
            partial_audio.write_bytes(data)
        with _interrupts_deferred():
            for partial, final in staged:  # sidecar before its audio, pair after pair
                partial.replace(final)
    finally:
        for partial, _ in staged:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return [final for _, final in staged[1::2]]


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C until the block is done (renames are quick), then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
