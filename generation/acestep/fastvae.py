"""The Oobleck VAE made cheaper to run, most of all on a CPU, where it is about half of a cover.

Measured (`python -m benchmarks --only acestep`, the VAE profile on 2 CPU cores): convolutions are
about two thirds of a decode, the Snake activations (five full passes over 128- to 2048-channel
audio-rate tensors each) a quarter or more, and weight norm, recomputed from its two halves on every
forward, another 6 %. So, once at load:
- weight norm is folded: the same weights, computed once instead of on every call;
- each Snake is one multiply, two in-place passes and one fused multiply-add, with its exponentials
  precomputed: `x + sin(alpha * x)^2 / (beta + 1e-9)`, the same formula;
- the decoder's tiles are 30 s long, like the encoder's window (`DECODE_TILE_FRAMES`);
and, on request, the decoder's convolutions run in bfloat16 (autocast: weights and sums stay float32),
which CPUs with AVX-512 BF16 or AMX run much faster, and so do the encoder's when the pipeline runs
in bfloat16 (`audio.source_codes`); the distance it costs is measured beside the speed by the
benchmark.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from diffusers.models.autoencoders.autoencoder_oobleck import Snake1d

log = logging.getLogger(__name__)

# Decoder tiles of 768 latent frames (30.7 s) instead of diffusers' 512 (20.5 s), 64 frames of
# overlap each side either way: a 30 s piece decodes in one tile, as its encoder window already is
# (30 s), instead of two that decode 17 % more frames; memory per tile stays that of the encoder's.
DECODE_TILE_FRAMES = 768


class FusedSnake1d(Snake1d):
    """Snake1d with fewer passes over memory and its parameters' exponentials computed once."""

    _constants: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        alpha, inverse_beta = self._scales(hidden_states.dtype)
        shape = hidden_states.shape
        flat = hidden_states.reshape(shape[0], shape[1], -1)
        wave = (flat * alpha).sin_().square_()
        return torch.addcmul(flat, wave, inverse_beta).reshape(shape)

    def _scales(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._constants
        if cached is None or cached[0].dtype != dtype or cached[0].device != self.alpha.device:
            alpha = torch.exp(self.alpha) if self.logscale else self.alpha
            beta = torch.exp(self.beta) if self.logscale else self.beta
            self._constants = (alpha.detach().to(dtype), (beta.detach() + 1e-9).reciprocal().to(dtype))
        return self._constants


def speed_up(vae) -> None:
    """Fold weight norm and fuse the Snakes of `vae` (in place; for inference, after the last move
    to its device), and decode in 30 s tiles. The weight is computed once and the per-call hook
    dropped; `weight_g` and `weight_v` stay, so `save_pretrained` still writes what diffusers reads."""
    from torch.nn.utils.weight_norm import WeightNorm

    vae.tile_latent_min_length = DECODE_TILE_FRAMES
    folded = 0
    for module in vae.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, WeightNorm):
                with torch.no_grad():
                    weight = hook.compute_weight(module)
                del module._forward_pre_hooks[key]
                setattr(module, hook.name, weight)  # a plain attribute, as the hook itself sets it
                folded += 1
        if type(module) is Snake1d:
            module.__class__ = FusedSnake1d
    log.debug("VAE: weight norm folded in %d convolutions, snakes fused", folded)


def decoding(device: torch.device, dtype: torch.dtype | None):
    """The context a decode (or an encode) runs in: bfloat16 autocast when asked for (CPU or CUDA),
    else none."""
    if dtype is torch.bfloat16 and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
