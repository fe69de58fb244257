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
from generation.errors import InvalidRequestError, OutputWriteError
from generation.results import candidate_filename

SIDECAR_SUFFIX = ".json"
_PARTIAL = ".partial-"


def exists(path: Path) -> bool:
    """`path.exists()`, False for a path the file system cannot even name (too long, say): such a
    path is refused where it is read or written, in one line, not met here as an OSError."""
    try:
        return path.exists()
    except OSError:
        return False


def sidecar_path(audio: Path) -> Path:
    return audio.with_name(audio.name + SIDECAR_SUFFIX)


LAYER_NAMES = ("drums", "bass", "other", "vocals")  # htdemucs' sources, in its order


def layer_filename(candidate_filename: str, layer: str) -> str:
    """`theme-1.wav` -> `theme-1-drums.wav`."""
    stem, dot, extension = candidate_filename.rpartition(".")
    return f"{stem}-{layer}{dot}{extension}" if dot else f"{candidate_filename}-{layer}"


def layer_paths(audio: Path) -> list[Path]:
    """A candidate's layer files and their sidecars."""
    names = [audio.with_name(layer_filename(audio.name, layer)) for layer in LAYER_NAMES]
    return [path for name in names for path in (name, sidecar_path(name))]


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
    while not exists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if exists(probe) and not probe.is_dir():
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
    layers: bool = False  # each candidate's layers too (`generation.layers`): outputs like the rest

    def audio(self) -> list[Path]:
        return [
            self.folder / candidate_filename(self.name, i, self.count, self.extension)
            for i in range(1, self.count + 1)
        ]

    def all(self) -> list[Path]:
        """Every file written: each candidate, its sidecar and (asked) its layers with theirs, so
        that the guards against clobbering an input or another track see the layers too."""
        own = [path for audio in self.audio() for path in (audio, sidecar_path(audio))]
        return own + ([path for audio in self.audio() for path in layer_paths(audio)] if self.layers else [])

    def existing(self) -> list[Path]:
        return [path for path in self.all() if exists(path)]

    def unlike(
        self,
        prompt: str,
        *,
        loop: bool = False,
        model: str | None = None,
        made_as: Mapping[str, Mapping[str, Any]] | None = None,
        seed_sha256: str | None = None,
        first_seed: int | None = None,
    ) -> str | None:
        """None if every file is there, from this very prompt, by this `model` (when given: a batch
        switched to another model, MIT weights for non-commercial ones say, makes its tracks again),
        a loop if a loop is asked for, and recording every setting of `made_as` (sidecar section ->
        key -> value: a changed strength or length makes the track again). A loop's sidecar keeps
        the prompt as asked in its `loop` entry: its own `prompt` is what the model was given, the
        tempo appended. `seed_sha256` (when given) is the seed track's file's, `first_seed` the
        random seed asked for (candidate i took it + i - 1): another seed track or another asked
        random seed makes the track again. Otherwise why not, as said after "already exists, ..."
        ("" when there is nothing to say: no files, or only some)."""
        if len(self.existing()) != len(self.all()):
            return ""
        for index, audio in enumerate(self.audio()):
            try:
                recorded = json.loads(sidecar_path(audio).read_text())
            except (OSError, ValueError):
                return "its sidecar cannot be read"
            why = _unlike(recorded, audio.name, prompt=prompt, loop=loop, model=model, made_as=made_as or {})
            why = why or _unseeded(recorded, seed_sha256, None if first_seed is None else first_seed + index)
            if why is not None:
                return why
        return None


def _unseeded(recorded: dict, seed_sha256: str | None, random_seed: int | None) -> str | None:
    """Why a sidecar is not of this seed track's file or of this random seed (None if it is)."""
    source = recorded.get("input")
    if seed_sha256 is not None and (not isinstance(source, dict) or source.get("sha256") != seed_sha256):
        return "made from another seed track"
    if random_seed is not None and recorded.get("seed") != random_seed:
        return f"made with another random seed ({_said(recorded.get('seed'))}, not {random_seed})"
    return None


def _unlike(
    recorded: dict,
    filename: str,
    *,
    prompt: str,
    loop: bool,
    model: str | None,
    made_as: Mapping[str, Mapping[str, Any]],
) -> str | None:
    """Why a sidecar does not record what is asked now, or None if it does."""
    if not isinstance(recorded, dict):
        return "its sidecar cannot be read"
    looped = recorded.get("loop")
    asked = looped.get("prompt") if isinstance(looped, dict) else recorded.get("prompt")
    made_by = recorded.get("model", {}).get("name") if isinstance(recorded.get("model"), dict) else None
    if (looped is not None) != loop:
        return "made as a loop" if looped is not None else "made as no loop"
    if asked != prompt:
        return "made from another prompt"
    if model is not None and not same_model(made_by, model):
        return f"made by another model ({made_by}, not {model})"
    if recorded.get("output", {}).get("file") != filename:
        return "its sidecar is another file's"
    setting = _unrecorded(recorded, made_as)
    return None if setting is None else f"made with another {setting}"


# How a sidecar's key is said in a refusal.
SAID = {
    "asked_duration_s": "duration",
    "duration_s": "duration",
    "guidance_scale": "guidance",
    "intro_bars": "intro",
    "tempo_detected": "tempo",
}
# Keys whose values are said in words: "tempo (given, not detected)".
IN_WORDS = {"tempo_detected": {True: "detected", False: "given", None: "not recorded"}}


def _said(value: object) -> str:
    return "none asked" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _unrecorded(recorded: dict, made_as: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The first setting a sidecar does not record as asked (numbers as equal as JSON keeps
    them), said as "strength (0.5, not 0.4)"; None if it records them all."""
    for section, settings in made_as.items():
        written = recorded.get(section)
        if settings and not isinstance(written, dict):
            return section
        for key, value in settings.items():
            kept = written.get(key)
            if isinstance(value, float) and isinstance(kept, int | float) and not isinstance(kept, bool):
                if not math.isclose(kept, value, rel_tol=1e-9, abs_tol=1e-9):
                    return f"{SAID.get(key, key)} ({kept:g}, not {value:g})"
            elif kept != value:
                words = IN_WORDS.get(key)
                was, now = (words.get(kept), words.get(value)) if words else (_said(kept), _said(value))
                return f"{SAID.get(key, key)} ({was}, not {now})"
    return None


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths are one file: the same path once links and `..` are resolved, or the same
    file on disk (a hard link; a name differing only in case on a case-insensitive file system).
    `other` is an input: one that is not there is no file to lose (reading it is refused later)."""
    if not exists(other):
        return False
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


def refuse_to_clobber(
    tracks: Sequence[TrackFiles],
    unlike: Sequence[str | None] | None = None,
    instead: str = "use --force to overwrite, or -o another folder",
) -> None:
    """Refuse earlier results; `unlike` says, per track, why a batch does not keep them, and
    `instead` what to do (a batch's --force makes its finished tracks again too: it says so)."""
    for track, why in zip(tracks, unlike or [None] * len(tracks), strict=True):
        existing = track.existing()
        if existing:
            said = f", {why}" if why else ""
            raise InvalidRequestError(f"{existing[0]} already exists{said}: {instead}.")


def write_pairs(folder: Path, files: Sequence[tuple[str, bytes, str]]) -> list[Path]:
    """Write `(audio name, audio bytes, sidecar text)` triples; returns the audio paths. Every file is
    written in full under a temporary name before the first is renamed, so a full disk keeps none."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data, sidecar in files:
            final = folder / name
            partial_audio = folder / f"{_PARTIAL}{os.getpid()}-{name}"
            partial_sidecar = sidecar_path(partial_audio)
            staged += [(partial_sidecar, sidecar_path(final)), (partial_audio, final)]
            try:
                write_new(partial_sidecar, sidecar.encode())
                write_new(partial_audio, data)
            except OSError as exc:  # a full disk is the user's to fix, not an internal error
                raise OutputWriteError(
                    f"Restyle cannot write {final} ({exc.strerror or exc}); nothing of this track was"
                    " kept: free some space or choose another -o."
                ) from None
        with _interrupts_deferred():
            for partial, final in staged:  # sidecar before its audio, pair after pair
                partial.replace(final)
    finally:
        for partial, _ in staged:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return [final for _, final in staged[1::2]]


def write_new(path: Path, data: bytes) -> None:
    """Write `data` to a temporary name as a new file: whatever is there already (a leftover, or a
    link planted at the predictable name in a shared folder) is removed, never written through."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


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
