"""ACE-Step's DiT with less work per step than diffusers' (the same numbers, within float rounding).

Where a step's time goes (the 2B DiT at 30 s, 375 positions, 2 shared CPU cores; see
docs/models-acestep.md): in CPU seconds the step is its matrix products. In bfloat16 a step of its
24 layers does about 1.06 TFLOP in about 13 CPU seconds, some 80 GFLOPS a core, what the products
reach alone; float32's are 1.8x slower, which is why `auto` picks bfloat16 on CPUs with bfloat16
instructions (`generation.acestep.precision`). A wall-clock profile on the busy machine showed the
many small passes (RMS norms casting to float32 and back in six passes each, the rotary embedding)
as half of a step, but that was waiting on a descheduled thread at each of them, not work. So what
this module does is small, and it keeps the numbers; once at load:
- every RMS norm is `torch.nn.functional.rms_norm`: the same formula (it still sums in float32; in
  bfloat16 it rounds once where diffusers' rounds twice);
- the rotary embedding multiplies and adds in one fused multiply-add, in float32 as before;
- the condition embedder's output, and each layer's cross-attention keys and values computed from
  it, are kept for the next step while the pipeline passes the same conditions tensor, unchanged:
  they do not change across the steps of a call (diffusers recomputes them every step).
Measured against diffusers' DiT (`python -m benchmarks --only acestep`): the same CPU seconds within
noise, a few per cent less wall time on a busy machine. Nothing here changes a weight or the state
dict: `save_pretrained` writes what diffusers reads.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from diffusers.models.normalization import RMSNorm
from diffusers.models.transformers.ace_step_transformer import AceStepAttnProcessor2_0

log = logging.getLogger(__name__)


class FusedRMSNorm(RMSNorm):
    """diffusers' RMSNorm in one fused kernel (weight, no bias: what ACE-Step's norms are)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if weight is not None and weight.dtype != hidden_states.dtype:
            hidden_states = hidden_states.to(weight.dtype)  # as diffusers' returns the weight's dtype
        return F.rms_norm(hidden_states, (hidden_states.shape[-1],), weight, self.eps)


class CachedLinear(torch.nn.Linear):
    """A Linear that gives back its last output while it is called on the very same, unchanged
    input tensor (the same object, the same version): the condition embedder across steps."""

    _last: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self._last = None
            return super().forward(inputs)
        last = self._last
        if last is not None and last[0] is inputs and last[1] == _version(inputs):
            return last[2]
        out = super().forward(inputs)
        self._last = (inputs, _version(inputs), out)
        return out


def _version(tensor: torch.Tensor) -> int:
    """The tensor's version counter (in-place writes bump it); inference tensors have none, and
    are never written in place by the pipeline, so they count as unchanged."""
    return -1 if tensor.is_inference() else tensor._version


class FastAceStepAttnProcessor(AceStepAttnProcessor2_0):
    """diffusers' processor, with cross-attention keys and values kept per layer across steps
    (keyed on the conditions tensor itself) and a fused rotary embedding; any flash backend or
    training goes through diffusers' own code."""

    def __init__(self) -> None:
        super().__init__()
        self._kv: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor] | None = None

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None
    ):
        if attn.training or torch.is_grad_enabled() or self._attention_backend is not None:
            given = (encoder_hidden_states, attention_mask, image_rotary_emb)
            return super().__call__(attn, hidden_states, *given)
        is_cross = attn.is_cross_attention and encoder_hidden_states is not None
        query = attn.norm_q(attn.to_q(hidden_states).unflatten(-1, (attn.heads, attn.head_dim)))
        if is_cross:
            key, value = self._cross_kv(attn, encoder_hidden_states)
        else:
            key = attn.norm_k(attn.to_k(hidden_states).unflatten(-1, (attn.kv_heads, attn.head_dim)))
            value = attn.to_v(hidden_states).unflatten(-1, (attn.kv_heads, attn.head_dim))
            if image_rotary_emb is not None:
                query, key = rotate(query, image_rotary_emb), rotate(key, image_rotary_emb)
        out = F.scaled_dot_product_attention(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=attention_mask,
            scale=attn.scaling,
            enable_gqa=attn.heads != attn.kv_heads,
        )
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))

    def _cross_kv(self, attn, conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = self._kv
        if kept is not None and kept[0] is conditions and kept[1] == _version(conditions):
            return kept[2], kept[3]
        key = attn.norm_k(attn.to_k(conditions).unflatten(-1, (attn.kv_heads, attn.head_dim)))
        value = attn.to_v(conditions).unflatten(-1, (attn.kv_heads, attn.head_dim))
        self._kv = (conditions, _version(conditions), key, value)
        return key, value


def rotate(x: torch.Tensor, freqs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """diffusers' `apply_rotary_emb(use_real=True, use_real_unbind_dim=-2, sequence_dim=1)` on
    `(B, S, H, D)`, in float32 as it is, with one fused multiply-add instead of a multiply and an add."""
    cos, sin = (f[None, :, None, :].float() for f in freqs)
    first, second = x.unflatten(-1, (2, -1)).unbind(-2)
    rotated = torch.cat([-second, first], dim=-1).float()
    return torch.addcmul(x.float() * cos, rotated, sin).to(x.dtype)


def speed_up(transformer) -> None:
    """Swap in the fused norms, the cached condition embedder and the fast attention processor on
    `transformer` (an `AceStepTransformer1DModel`; in place, for inference; the weights untouched)."""
    norms = 0
    for module in transformer.modules():
        if type(module) is RMSNorm and module.weight is not None and module.bias is None:
            module.__class__ = FusedRMSNorm
            norms += 1
    if type(transformer.condition_embedder) is torch.nn.Linear:
        transformer.condition_embedder.__class__ = CachedLinear
    for layer in transformer.layers:
        for attn in (layer.self_attn, layer.cross_attn):
            attn.set_processor(FastAceStepAttnProcessor())
    log.debug("DiT: %d norms fused, cross-attention keys and values kept across steps", norms)


def forget(transformer) -> None:
    """Drop what the DiT kept from its last call (the conditions and their keys and values)."""
    for module in transformer.modules():
        if isinstance(module, CachedLinear):
            module._last = None
        processor = getattr(module, "processor", None)
        if isinstance(processor, FastAceStepAttnProcessor):
            processor._kv = None
