"""ACE-Step 1.5 cover as a family: its facts known without loading anything, and its loaders.

It serves `ace-step` (the pinned turbo checkpoint), `debug-ace`, `random:<architecture>` and
folders holding an `AceStepPipeline`. The checkpoint is pinned: no other revision is taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from generation.acestep.architectures import CHANNELS, DEBUG_MODELS, SAMPLE_RATE
from generation.acestep.loading import (
    CHECKPOINTS,
    DEBUG_MIN_DURATION_S,
    HUB_REVISION,
    RANDOM_PREFIX,
    is_acestep_spec,
)
from generation.acestep.params import (
    LICENCE,
    MAX_DURATION_S,
    MIN_DURATION_S,
    SAMPLES_PER_FRAME,
    CoverParams,
    latent_frames,
)
from generation.errors import InvalidRequestError, ModelUnavailableError
from generation.interface import Engine, LoadOptions, ModelLocation

# Seconds a step of a 30 s XL turbo cover takes, the VAE's encode and decode spread over 8 steps:
# the bot's first ETA before it has timed a job. CPU: 447 s per 30 s measured with the 2B DiT on 2
# cores (issue 19: 205 s DiT, 242 s VAE), the XL DiT about twice the 2B's, the VAE ~1.5x faster now
# (benchmarks/RESULTS.md): ~560 s / 8. GPU and MPS: unmeasured guesses, on the high side.
FIRST_GUESS_30S = {"cpu": 70.0, "cuda": 0.5, "mps": 5.0}


class AceStepFamily:
    name = "acestep"
    title = "ACE-Step 1.5"
    licence = LICENCE
    sample_rate = SAMPLE_RATE
    input_rate = SAMPLE_RATE  # the source goes through the pipeline's own 48 kHz stereo VAE
    input_channels = CHANNELS
    reads_melody = False
    frame_rate = SAMPLE_RATE // SAMPLES_PER_FRAME
    default_params = CoverParams()

    def serves(self, spec: str) -> bool:
        return is_acestep_spec(spec)

    def is_random(self, spec: str) -> bool:
        return spec in DEBUG_MODELS or spec.startswith(RANDOM_PREFIX)

    def make_params(self, **values: Any) -> CoverParams:
        names = {field.name for field in dataclasses.fields(CoverParams)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidRequestError(f"{self.title} has no setting {unknown[0]!r}.")
        return dataclasses.replace(self.default_params, **values)  # checked as it is made

    def total_steps(self, duration_s: float, params: CoverParams | None = None) -> int:
        return (params or self.default_params).total_steps  # the whole piece is one pass

    def lengths(self, spec: str) -> tuple[float, float]:
        shortest = DEBUG_MIN_DURATION_S if spec in DEBUG_MODELS else MIN_DURATION_S
        return shortest, MAX_DURATION_S

    def batch_key(self, spec: str, duration_s: float, params: CoverParams) -> Hashable:
        # Prompts of different lengths in tokens cannot share a batch either: the engine says so.
        return (self.name, spec, latent_frames(duration_s), params)

    def first_guess_step_s(self, spec: str, device_type: str, duration_s: float) -> float:
        """One DiT pass over the whole piece, with the VAE's share spread over the steps: it grows
        with the length (figures: benchmarks/acestep.py, 30 s on 2 CPU cores; GPU: an H100)."""
        if self.is_random(spec) and spec in DEBUG_MODELS:
            return 0.01
        per_30s = FIRST_GUESS_30S.get(device_type, FIRST_GUESS_30S["cuda"])
        return per_30s * max(duration_s, MIN_DURATION_S) / 30.0

    def dtype_name(self, spec: str, dtype: str, device) -> str:
        from generation.acestep.loading import resolve
        from generation.acestep.precision import is_tiny, pick_acestep_dtype

        _pinned(spec, None)  # `ace-step@abc` is refused as a revision, not as an unknown name
        tiny = is_tiny(*resolve(spec))
        return str(pick_acestep_dtype(dtype, device, tiny=tiny)).removeprefix("torch.")

    def locate(self, spec: str, options: LoadOptions) -> ModelLocation:
        from generation.acestep.loading import locate_acestep

        _pinned(spec, options.revision)
        return locate_acestep(spec, cache_dir=options.cache_dir, offline=options.offline)

    def load(self, spec: str, options: LoadOptions) -> Engine:
        from generation.acestep.engine import AceStepEngine
        from generation.acestep.loading import load_acestep

        _pinned(spec, options.revision)
        return AceStepEngine(load_acestep(spec, **options.loader_keywords()))

    def download(self, spec: str, *, cache_dir: str | Path | None, revision: str | None) -> Path:
        from generation.acestep.loading import download_acestep

        _pinned(spec, revision)
        return download_acestep(spec, cache_dir=cache_dir)


def _pinned(spec: str, revision: str | None) -> None:
    """No --revision, and no `ace-step@abc` either."""
    name, at, _ = spec.partition("@")
    if revision is not None or (at and name in CHECKPOINTS):
        raise ModelUnavailableError(
            f"{name} is loaded at the commit Restyle was checked with ({HUB_REVISION[:12]}): "
            "it takes no other revision."
        )


ACESTEP = AceStepFamily()
