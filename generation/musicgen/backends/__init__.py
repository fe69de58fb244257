"""Decoding backends: each turns one window's conditioning into codes, the same way.

`reference` drives transformers' own `generate` (the fallback, and the oracle in tests); `fast` runs
its own decode loop over the same weights. Both pick tokens with `generation.musicgen.sampling`, so for a
given seed they agree token for token, up to floating-point ties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from generation.musicgen.sampling import SamplingParams
from generation.musicgen.windows import Window

StepHook = Callable[[], None]


@dataclass
class WindowBatch:
    """One window for a batch of rows; each row is one candidate of one job."""

    prompts: list[str]  # the text prompt of each row
    chroma: torch.Tensor  # (rows, frames, 12) float32, the melody condition of each row
    prompt_codes: torch.Tensor | None  # (rows, codebooks, prompt_frames) carried over, or None
    seeds: list[int]  # the seed of each row
    window: Window
    sampling: SamplingParams

    @property
    def rows(self) -> int:
        return len(self.prompts)

    def select(self, rows: slice) -> WindowBatch:
        """The same window for a run of rows only (each row keeps its own seed and conditioning)."""
        carried = None if self.prompt_codes is None else self.prompt_codes[rows]
        return WindowBatch(
            self.prompts[rows], self.chroma[rows], carried, self.seeds[rows], self.window, self.sampling
        )

    def row_groups(self) -> list[slice]:
        """Runs of consecutive rows that share a prompt: the candidates of one job."""
        groups, start = [], 0
        for index in range(1, self.rows + 1):
            if index == self.rows or self.prompts[index] != self.prompts[start]:
                groups.append(slice(start, index))
                start = index
        return groups


class Backend(Protocol):
    name: str

    def generate_window(self, batch: WindowBatch, on_step: StepHook) -> torch.Tensor:
        """Codes `(rows, codebooks, window.total_frames)` int64 on the CPU, prompt included.

        `on_step` is called once per decoding step; it raises to stop (cancel).
        """
        ...
