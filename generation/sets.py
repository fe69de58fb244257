"""Sets: loops of one theme a game switches between on any bar line (calm, tense, combat...).

Every track of a set comes from the same seed with one loop plan: one tempo, one metre, one bar
count and one intro, so every candidate is the same length to the sample with the same loop points
and bar lines. The tracks are mastered to one common loudness: the target, or lower where a track's
true peak would not let it reach the target (no limiter), so none stands out when the game switches.
`set.json` beside them is built from the tracks' own sidecars (the files as written, resumed ones
too) and refuses to describe tracks that do not share the grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generation.audio.mastering import measure
from generation.errors import OutputWriteError, RestyleError
from generation.loops import bar_lines
from generation.outputs import write_new

SET_FILE = "set.json"
GRID_KEYS = ("bpm", "beats_per_bar", "bars", "sample_rate", "loop_start", "loop_end")


class SetMismatchError(RestyleError):
    """Tracks written for one set do not share its grid (a resumed track made otherwise, say)."""


def common_loudness(
    audios: Sequence[np.ndarray], rate: int, target_lufs: float, ceiling_dbtp: float
) -> float:
    """The loudness every track can reach within the true-peak ceiling: the target, or the quietest
    track's most where a peak holds it under the target."""
    most = [target_lufs]
    for audio in audios:
        loudness = measure(audio, rate)
        if loudness.integrated_lufs is not None and math.isfinite(loudness.true_peak_dbtp):
            most.append(loudness.integrated_lufs + ceiling_dbtp - loudness.true_peak_dbtp)
    return round(min(most), 2)


def written_loudness(files: Sequence[Path]) -> list[float]:
    """The integrated loudness each written candidate's sidecar records (a resumed set's kept
    tracks: the new ones are matched to them); unreadable or unmeasured ones are left out."""
    values = []
    for audio in files:
        try:
            value = json.loads(audio.with_name(audio.name + ".json").read_text())["loudness"][
                "integrated_lufs"
            ]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            values.append(float(value))
    return values


def set_manifest(tracks: Sequence[tuple[str, Sequence[Path]]]) -> dict[str, Any]:
    """`set.json`'s content from each track's name and candidate files (their sidecars beside them)."""
    entries, grid = [], None
    for name, files in tracks:
        candidates = []
        for audio in files:
            sidecar = json.loads(audio.with_name(audio.name + ".json").read_text())
            loop = sidecar.get("loop") or {}
            this = {key: loop.get(key) for key in GRID_KEYS} | {"intro_bars": loop.get("intro_bars", 0)}
            if grid is None:
                grid = this
            elif this != grid:
                raise SetMismatchError(
                    f"{audio.name} does not share the set's tempo, bars and loop points ({this} against"
                    f" {grid}): make it again with --force."
                )
            candidates.append(_candidate(audio.name, sidecar))
        entries.append({"name": name, "prompt": _prompt(files), "candidates": candidates})
    if grid is None:
        raise SetMismatchError("A set needs at least one track.")
    return _grid(grid) | {"loudness_spread_db": _spread(entries), "tracks": entries}


def _grid(grid: dict[str, Any]) -> dict[str, Any]:
    rate, start, end = grid["sample_rate"], grid["loop_start"], grid["loop_end"]
    lines = bar_lines(start, grid["intro_bars"], end - start, grid["bars"])
    return {
        "bpm": grid["bpm"],
        "beats_per_bar": grid["beats_per_bar"],
        "bars": grid["bars"],
        "intro_bars": grid["intro_bars"],
        "sample_rate": rate,
        "length_samples": end,
        "intro_samples": start,
        "loop_start": start,
        "loop_end": end,
        "loop_start_s": round(start / rate, 6),
        "loop_end_s": round(end / rate, 6),
        "bar_lines": lines,  # samples; the last is the file's end, where the loop wraps to loop_start
    }


def _candidate(filename: str, sidecar: dict[str, Any]) -> dict[str, Any]:
    loudness = sidecar.get("loudness", {})
    layers = (sidecar.get("loop") or {}).get("layers")
    return {
        "file": filename,
        "integrated_lufs": loudness.get("integrated_lufs"),
        "true_peak_dbtp": loudness.get("true_peak_dbtp"),
        "seam": (sidecar.get("loop") or {}).get("seam"),
        "layers": [] if layers is None else layers["files"],
    }


def _prompt(files: Sequence[Path]) -> str | None:
    for audio in files:
        loop = json.loads(audio.with_name(audio.name + ".json").read_text()).get("loop") or {}
        return loop.get("prompt")
    return None


def _spread(entries: list[dict[str, Any]]) -> float | None:
    """The loudest candidate less the quietest, in LU (None where any is unmeasurable)."""
    values = [c["integrated_lufs"] for entry in entries for c in entry["candidates"]]
    if not values or any(value is None for value in values):
        return None
    return round(max(values) - min(values), 2)


def write_set(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / SET_FILE
    partial = folder / f".partial-{SET_FILE}"
    try:
        write_new(partial, (json.dumps(manifest, indent=2) + "\n").encode())
        partial.replace(path)
    except OSError as exc:  # a full disk: one line, and nothing half-written left behind
        partial.unlink(missing_ok=True)
        raise OutputWriteError(f"Restyle cannot write {path} ({exc.strerror or exc}).") from None
    return path
