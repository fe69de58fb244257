"""What a restyle was asked for and what it made: the types the pipeline hands to rendering,
sidecars and output files, in a module of their own so that none of those imports another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generation.interface import Params


@dataclass(frozen=True)
class RestyleOptions:
    candidates: int = 1
    duration_s: float | None = None  # None: the seed's length, capped by max_duration_s
    max_duration_s: float = 300.0
    seed: int | None = None  # candidate i gets seed + i; None draws one
    params: Params | None = None  # the engine's family's parameters; None: its defaults
    stems: bool = False


@dataclass
class Candidate:
    index: int  # 1-based, as people count them
    seed: int
    audio: np.ndarray  # (channels, samples) float32 at `sample_rate`, not yet mastered
    adherence: float


@dataclass
class Restyled:
    prompt: str
    options: RestyleOptions
    params: Params  # as the job ran: the options' parameters, or the family's defaults
    stems: bool  # whether the melody was read from the seed's stems
    duration_s: float
    sample_rate: int
    candidates: list[Candidate]
    timings: dict[str, float]


def candidate_filename(name: str, index: int, count: int, extension: str) -> str:
    """`name.wav` for a lone candidate, `name-1.wav`, `name-2.wav`... for several."""
    return f"{name}{extension}" if count == 1 else f"{name}-{index}{extension}"
