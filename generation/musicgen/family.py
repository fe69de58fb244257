"""MusicGen-melody as a family: its facts known without loading anything, and its loaders.

It takes every spec no other family claims (aliases, hub repo ids, `save_pretrained` folders,
`debug`, `random:<architecture>`); its own loader refuses, in one line, what it cannot load either.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from generation.catalog import DEBUG_MODELS, is_random_model
from generation.errors import InvalidRequestError
from generation.interface import Engine, LoadOptions, ModelLocation
from generation.musicgen.params import LICENCE, SamplingParams
from generation.musicgen.windows import FRAME_RATE, frames_for, total_steps


class MusicGenFamily:
    name = "musicgen"
    title = "MusicGen-melody"
    licence = LICENCE
    sample_rate = 32_000
    input_rate = 32_000  # the melody's chroma is taken at the model's own rate
    input_channels = 1
    reads_melody = True
    frame_rate = FRAME_RATE  # EnCodec frames a second: what plans a loop in whole frames
    default_params = SamplingParams()

    def serves(self, spec: str) -> bool:
        return True  # the family of last resort (see the module's docstring)

    def is_random(self, spec: str) -> bool:
        return is_random_model(spec)

    def make_params(self, **values: Any) -> SamplingParams:
        names = {field.name for field in dataclasses.fields(SamplingParams)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidRequestError(f"{self.title} has no setting {unknown[0]!r}.")
        params = dataclasses.replace(self.default_params, **values)
        params.validate()
        return params

    def total_steps(self, duration_s: float, params: SamplingParams | None = None) -> int:
        return total_steps(duration_s)

    def lengths(self, spec: str) -> tuple[float, float]:
        return 1 / FRAME_RATE, math.inf  # one frame of codes; windows go on as long as asked

    def batch_key(self, spec: str, duration_s: float, params: SamplingParams) -> Hashable:
        return (self.name, spec, frames_for(duration_s), params)  # the engine's windows count frames

    def first_guess_step_s(self, spec: str, device_type: str, duration_s: float) -> float:
        """One token of every codebook: ~0.15 s on 2 CPU cores (int8, benchmarks/RESULTS.md,
        2026-12-01), the bot's long-standing 0.02 s on a GPU; any length (a step is one frame)."""
        if self.is_random(spec):
            return 0.005
        return 0.15 if device_type == "cpu" else 0.02

    def dtype_name(self, spec: str, dtype: str, device) -> str:
        from generation.musicgen.precision import pick_precision

        # The debug builds are tiny and stay float32 under `auto` (see `generation.musicgen.precision`).
        return pick_precision(dtype, device, tiny=spec in DEBUG_MODELS).name

    def locate(self, spec: str, options: LoadOptions) -> ModelLocation:
        from generation.musicgen.models import locate_model

        return locate_model(
            spec, revision=options.revision, cache_dir=options.cache_dir, offline=options.offline
        )

    def load(self, spec: str, options: LoadOptions) -> Engine:
        from generation.musicgen.engine import MusicGenEngine
        from generation.musicgen.models import load_model

        lm = load_model(spec, revision=options.revision, **options.loader_keywords())
        return MusicGenEngine(lm, options.backend)

    def download(self, spec: str, *, cache_dir: str | Path | None, revision: str | None) -> Path:
        from generation.musicgen.models import download_model

        return download_model(spec, cache_dir=cache_dir, revision=revision)


MUSICGEN = MusicGenFamily()
