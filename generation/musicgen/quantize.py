"""Weight-only int8 linear layers for the decoder on CPUs.

On a CPU a decoding step at a few rows streams every weight once, so its time is the bytes read
over what the kernels make of the memory bus. These layers keep one int8 per weight and a scale per
output channel (symmetric), and compute in bfloat16, as with bfloat16 weights. They call ATen's own
CPU kernel, `_weight_int8pack_mm`, the one torchao's eager CPU path for int8 weight-only calls too,
so no other package is needed. (4-bit weights, through `_weight_int4pack_mm_for_cpu`, measured
slower than these on the whole step here and lose ten times more: not offered.)
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights, one bfloat16 scale per output channel."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("weight", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch._weight_int8pack_mm(flat, self.weight, self.scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def quantize_linears(module: nn.Module) -> int:
    """Replace every `nn.Linear` under `module` in place; returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            count += 1
        else:
            count += quantize_linears(child)
    return count
