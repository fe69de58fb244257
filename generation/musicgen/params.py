"""What a MusicGen-melody job is besides its prompt and melody: sampling, and the weights' licence.

No torch here: the fronts read the defaults and the licence before any model is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from generation import catalog
from generation.errors import InvalidRequestError
from generation.interface import Licence

# The weights' licence (the code is MIT): music made with them is for non-commercial use only.
LICENCE = Licence("CC-BY-NC 4.0", commercial_use=False, url="https://huggingface.co/facebook/musicgen-melody")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling defaults are audiocraft's, not transformers' (which falls back to top_k 50)."""

    top_k: int = catalog.TOP_K
    top_p: float = catalog.TOP_P
    temperature: float = catalog.TEMPERATURE
    guidance_scale: float = catalog.GUIDANCE

    @property
    def guided(self) -> bool:
        """audiocraft computes `uncond + g * (cond - uncond)` for every g (g = 0: the unconditional
        model alone); g = 1 is exactly the conditional model, so it skips the unconditional rows."""
        return self.guidance_scale != 1.0

    def validate(self, vocab_size: int = 2048) -> None:
        if not 0 <= self.top_k <= vocab_size:
            raise InvalidRequestError(f"top_k must be between 0 and {vocab_size}.")
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidRequestError("top_p must be between 0 and 1 (0 turns it off).")
        if not 0.0 <= self.temperature <= 10.0:
            raise InvalidRequestError("temperature must be between 0 (greedy) and 10.")
        if not 0.0 <= self.guidance_scale <= 20.0:
            raise InvalidRequestError("guidance must be between 0 and 20.")
