"""audiocraft's float16 split for the decode loop: a float32 residual stream around half products.

audiocraft runs MusicGen's language model in float16 autocast over float32 weights: every product
(projections, attention, feed-forward, heads) runs in float16, but the residual stream, the layer
norms, the sinusoidal position embeddings and the final norm stay float32 (its `StreamingTransformer`
in `modules/transformer.py`). Restyle stores the decoder's weights in float16 (half the bytes a step
streams) and, with this, keeps the same split: the stream is float32, each norm runs in float32 with
float32 copies of its few weights, and only a norm's output is cast to float16 for the products.
Without it the stream itself is rounded after every layer, 48 times a step on the melody
architecture. Measured on the CPU against float32, teacher-forced over one window (the mid
architecture, 0.5 s, 2 candidates with guidance; `generation.musicgen.fidelity`):

| weights  | stream  | mean KL | max KL  | top-1 agreement | top-250 overlap |
|----------|---------|---------|---------|-----------------|-----------------|
| float16  | half    | 1.3e-6  | 1.9e-6  | 0.995           | 0.9975          |
| float16  | float32 | 1.9e-7  | 6.8e-7  | 1.000           | 0.9992          |
| bfloat16 | half    | 7.9e-5  | 1.0e-4  | 0.970           | 0.982           |
| bfloat16 | float32 | 1.1e-5  | 1.4e-5  | 0.985           | 0.993           |

So both half dtypes keep the split (7x nearer float32 in mean KL). Its cost is two casts per layer
(each norm's output), tiny tensors, but launches: the GPU benchmark's ms/step includes them. int8
layers (the CPU default) keep their tuned bfloat16-in, bfloat16-out steps. The heads stay float32
here (audiocraft runs them in float16): nearer float32 still.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Float32Stream:
    """Float32 copies of the core's norms and position table, and the casts around the products."""

    def __init__(self, core, compute: torch.dtype) -> None:
        self.core = core
        self.compute = compute
        self.norms = {
            id(module): (module.weight.float(), module.bias.float(), module.eps)
            for module in core.modules()
            if isinstance(module, torch.nn.LayerNorm)
        }
        self._table: torch.Tensor | None = None

    def table(self) -> torch.Tensor:
        """The float32 position table, as long as the core's (remade when that grows: before a
        window's steps, never inside a captured graph)."""
        table = self.core.embed_positions
        if self._table is None or self._table.shape[0] != table.weights.shape[0]:
            weights = table.get_embedding(table.weights.shape[0], table.embedding_dim)
            self._table = weights.float().to(table.weights.device)
        return self._table

    def norm(self, module: torch.nn.LayerNorm, hidden: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """`module` over the float32 stream; cast for the products that follow, unless `last`
        (the final norm feeds the float32 heads)."""
        weight, bias, eps = self.norms[id(module)]
        out = F.layer_norm(hidden.float(), module.normalized_shape, weight, bias, eps)
        return out if last else out.to(self.compute)
