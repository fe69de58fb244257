"""How a worker loads its models: from the config, by value, so a worker on another machine can
do it (a bound method of the bot would drag the whole bot along)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.config import ModelsSection
from generation.interface import Engine, LoadOptions


@dataclass(frozen=True)
class EngineLoader:
    """`load(model_name) -> Engine` as `[models]` says: device, dtype, cache, offline, backend, and
    the pinned revision overridden for the default model only."""

    models: ModelsSection

    def options(self, model: str) -> LoadOptions:
        models = self.models
        return LoadOptions(
            device=models.device,
            dtype=models.dtype,
            cache_dir=models.cache_dir or None,
            offline=models.offline,
            revision=(models.revision or None) if model == models.default else None,
            backend=models.backend,
        )

    def __call__(self, model: str) -> Engine:
        from generation.families import load_engine

        return load_engine(model, self.options(model))


class Separator:
    """The worker's stem separation: one separator for every model, loaded on first use (on the
    GPU thread), htdemucs on the default model's device or the tiny one for a debug model. It
    travels to a Ray worker without its loaded model, which that worker loads for itself."""

    def __init__(self, models: ModelsSection) -> None:
        self.models = models
        self._loaded: Any = None

    def load(self) -> Any:
        if self._loaded is None:
            from generation.audio.stems import separator_for
            from generation.devices import pick_device
            from generation.families import family_for

            models = self.models
            self._loaded = separator_for(
                family_for(models.default).is_random(models.default),
                pick_device(models.device),
                offline=models.offline,
                cache_dir=models.cache_dir or None,
            )
        return self._loaded

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.load().melody(samples, sample_rate)

    def __getstate__(self) -> dict[str, Any]:
        return {"models": self.models, "_loaded": None}
