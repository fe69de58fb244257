"""How a worker loads its models: from the config, by value, so a worker on another machine can
do it (a bound method of the bot would drag the whole bot along)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.config import ModelsSection
from generation.engine import Engine

Separate = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class EngineLoader:
    """`load(model_name) -> Engine` as `[models]` says: device, dtype, cache, offline, backend."""

    models: ModelsSection

    def __call__(self, model: str) -> Engine:
        from generation.models import load_model

        models = self.models
        lm = load_model(
            model,
            device=models.device,
            dtype=models.dtype,
            cache_dir=models.cache_dir or None,
            offline=models.offline,
        )
        return Engine(lm, models.backend)


@dataclass(frozen=True)
class StemsLoader:
    """Loads the stem separator where the worker runs, when `[models] stems` asks for it."""

    offline: bool

    def __call__(self) -> Separate:
        from generation.stems import load_separator

        return load_separator(offline=self.offline).melody
