"""One name to generate (`Planned`), and what its files must record to be kept on resume."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from generation.audio.decode import AudioLimits, SeedAudio
from generation.audio.tempo import DEFAULT_BEATS_PER_BAR
from generation.interface import Family
from generation.loops import LoopOptions, LoopPlan, plan_loop
from generation.outputs import TrackFiles
from generation.results import RestyleOptions

# A desk user may hand over a whole album side; the output length is capped separately.
CLI_SEED_LIMITS = AudioLimits(max_bytes=1024**3, max_seconds=3600.0)


@dataclass(frozen=True)
class Planned:
    """One name to generate: its prompt, options and files (and its loop, for loops)."""

    name: str
    prompt: str
    options: RestyleOptions
    files: TrackFiles
    loop: LoopOptions | None = None
    loop_plan: LoopPlan | None = None  # made once the seed is read, before the model loads
    layers: bool = False  # a loop's candidates also as layers (generation.layers)

    def with_loop_planned(self, seed: SeedAudio, family: Family) -> Planned:
        if self.loop is None:
            return self
        return replace(self, loop_plan=plan_loop(seed, self.options, self.loop, frame_rate=family.frame_rate))


def unlike(plan: Planned, model: str, seed_digest: str | None = None) -> str | None:
    """None if the plan's files are there as asked now (kept on resume), else why not."""
    return plan.files.unlike(
        plan.prompt,
        loop=plan.loop is not None,
        model=model,
        made_as=made_as(plan),
        seed_sha256=seed_digest,
        first_seed=plan.options.seed,
    )


def seed_sha256(path: Path) -> str | None:
    """The seed track's file's digest, as its sidecars record it (None if it cannot be read: the
    seed's decoding says why, if anything is left to make). Only a plain file within the seed's
    limit is read: a FIFO or /dev/zero named as the seed would never end."""
    digest = hashlib.sha256()
    try:
        if not path.is_file() or path.stat().st_size > CLI_SEED_LIMITS.max_bytes:
            return None
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def made_as(plan: Planned) -> dict[str, dict[str, Any]]:
    """What a track's sidecars must record to be kept on resume: its family's settings, stems, an
    asked length (a loop's is its bars), its tempo (or that it is detected) and metre."""
    options = plan.options
    parameters: dict[str, Any] = {**asdict(options.params), "stems": options.stems}
    if options.duration_s is not None and plan.loop is None:
        parameters["duration_s"] = options.duration_s
    asked: dict[str, Any] = {}
    if plan.loop is not None:  # a metre not given is 4; a tempo not given is detected, not a given one
        beats = plan.loop.beats_per_bar
        asked = {"beats_per_bar": DEFAULT_BEATS_PER_BAR if beats is None else beats}
        asked |= {"bpm": plan.loop.bpm} if plan.loop.bpm is not None else {"tempo_detected": True}
    if plan.layers:
        asked["layered"] = True
    loop = {key: value for key, value in asked.items() if value is not None}
    if plan.loop is not None:  # None too: a loop of the seed's bars is not one of 16 s
        loop["asked_duration_s"] = options.duration_s
        # None too: a plain loop's sidecar has no intro, and an intro + loop is not a plain loop
        loop["intro_bars"] = plan.loop.intro_bars or None
    return {"parameters": parameters, "loop": loop}
