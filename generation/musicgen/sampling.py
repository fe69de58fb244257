"""Token choice with one random stream per candidate, the same in every decoding backend.

A batch holds several candidates, each with its own recorded seed. A shared generator (what
`torch.multinomial` uses) would make a candidate depend on its batch mates; here each draw is a pure
function of (seed, window, position, codebook, token), hashed on the device, so a candidate can be
reproduced alone from its seed, in any batch, by either backend, without a host sync per step.

The draw is the Gumbel-max trick: `argmax(logits / T + G)` with `G = -log(-log(U))` samples exactly
from `softmax(logits / T)` restricted to the kept tokens. Filtering follows audiocraft: top-p when
`top_p > 0`, else top-k when `top_k > 0`, else the full distribution; temperature 0 is greedy.
"""

from __future__ import annotations

import torch

from generation.musicgen.params import SamplingParams

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32) on int64 tensors; products wrap, the mask keeps 32 bits."""
    x = x & MASK32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & MASK32
    x = ((x ^ (x >> 15)) * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def row_keys(seeds: list[int], num_codebooks: int, window: int, device: torch.device | str) -> torch.Tensor:
    """One key per (candidate, codebook) row, in the `b * K + k` order of the decoder's rows."""
    seed_t = torch.tensor(seeds, dtype=torch.int64, device=device)
    codebook = torch.arange(num_codebooks, dtype=torch.int64, device=device)
    keys = mix32(
        mix32(seed_t)[:, None]
        ^ (codebook * _GOLDEN)[None, :]
        ^ mix32(torch.tensor(window + 1, device=device))
    )
    return mix32(keys).reshape(-1)


def gumbel_noise(keys: torch.Tensor, position: torch.Tensor | int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise `(rows, vocab)` for one decoding position."""
    position = torch.as_tensor(position, dtype=torch.int64, device=keys.device)
    per_row = mix32(keys ^ mix32(position * _GOLDEN + 1))
    tokens = torch.arange(vocab_size, dtype=torch.int64, device=keys.device)
    bits = mix32(per_row[:, None] + tokens[None, :] * _GOLDEN)
    uniform = ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))  # in (0, 1), never 0 or 1
    return -torch.log(-torch.log(uniform))


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Set the logits of tokens that top-p or top-k rule out to -inf (float32 in, float32 out)."""
    scaled = logits / params.temperature
    if params.top_p > 0.0:
        probs = torch.softmax(scaled, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        drop_sorted = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) > params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        return scaled.masked_fill(drop, float("-inf"))
    if params.top_k > 0:
        kth = torch.topk(scaled, params.top_k, dim=-1).values[..., -1:]
        return scaled.masked_fill(scaled < kth, float("-inf"))
    return scaled


def choose_tokens(
    logits: torch.Tensor, params: SamplingParams, keys: torch.Tensor, position: torch.Tensor | int
) -> torch.Tensor:
    """Pick one token per row of `logits` `(rows, vocab)` after guidance; returns `(rows,)` int64."""
    logits = logits.float()
    if params.temperature == 0.0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits, params)
    return (filtered + gumbel_noise(keys, position, logits.shape[-1])).argmax(dim=-1)
