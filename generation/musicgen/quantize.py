"""Weight-only int8 linear layers for the decoder on CPUs.

On a CPU a decoding step at a few rows streams every weight once, so its time is the bytes read
over what the kernel makes of the memory bus. These layers keep one int8 per weight and a float32
scale per output channel (symmetric). Where `generation.musicgen.native` can build its kernel
(AVX-512 VNNI and a C compiler), the rows are quantised to 8 bits per call as well and multiplied
in int8, at memory speed; elsewhere they call ATen's `_weight_int8pack_mm` (what torchao's eager
CPU path for int8 weight-only calls), which computes in bfloat16 but is bound by instructions, not
memory, at about a third of the speed. (4-bit weights, through `_weight_int4pack_mm_for_cpu`, lose
ten times more per product than int8 and ran no faster through torch's kernel: not offered.)
"""

from __future__ import annotations

import torch
from torch import nn

from generation.musicgen.native import int8_gemm

TILE_COLUMNS = 64  # the native kernel's tile: output channels are padded to a multiple


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights and one float32 scale per output channel, computing in
    float32 through the native kernel where it runs (`native`), else in bfloat16 through torch's."""

    def __init__(self, linear: nn.Linear, *, native: bool | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.kernel = int8_gemm() if native is not False and self.in_features % 4 == 0 else None
        if native and self.kernel is None:
            raise RuntimeError("the native int8 kernel cannot run on this machine")
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        if self.kernel is None:
            self.register_buffer("weight", quantized)
            self.register_buffer("scale", scale.to(torch.bfloat16))
            self.register_buffer("bias", None if bias is None else bias.to(torch.bfloat16))
            return
        padded = -self.out_features % TILE_COLUMNS
        quantized = nn.functional.pad(quantized, (0, 0, 0, padded))
        self.register_buffer("weight", _tiles(quantized))
        self.register_buffer("scale", nn.functional.pad(scale, (0, padded)))
        self.register_buffer("row_sums", quantized.sum(dim=1, dtype=torch.int32))
        self.register_buffer("bias", None if bias is None else nn.functional.pad(bias, (0, padded)))

    @property
    def native(self) -> bool:
        return self.kernel is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = self._native(flat) if self.native else self._torch(flat)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def _native(self, flat: torch.Tensor) -> torch.Tensor:
        flat = flat.float().contiguous()
        rows, columns = flat.shape[0], self.scale.shape[0]
        out = torch.empty(rows, columns)
        scratch = torch.empty(rows * self.in_features, dtype=torch.uint8)
        row_scales = torch.empty(rows)
        bias = None if self.bias is None else self.bias.data_ptr()
        self.kernel(
            self.weight.data_ptr(), flat.data_ptr(), rows, columns, self.in_features, self.scale.data_ptr(),
            self.row_sums.data_ptr(), bias, out.data_ptr(), scratch.data_ptr(), row_scales.data_ptr(),
        )  # fmt: skip
        return out[:, : self.out_features] if columns != self.out_features else out

    def _torch(self, flat: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(flat.to(torch.bfloat16).contiguous(), self.weight, self.scale)
        return out if self.bias is None else out + self.bias


def _tiles(quantized: torch.Tensor) -> torch.Tensor:
    """(n, k) int8 to the kernel's layout [n/64][k/4][64][4]: each tile of 64 output channels is
    one sequential run of memory, four input channels per output channel at a time."""
    n, k = quantized.shape
    tiles = quantized.reshape(n // TILE_COLUMNS, TILE_COLUMNS, k // 4, 4).permute(0, 2, 1, 3)
    return tiles.contiguous()


def quantize_linears(module: nn.Module, *, native: bool | None = None) -> int:
    """Replace every `nn.Linear` under `module` in place; returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, native=native))
            count += 1
        else:
            count += quantize_linears(child, native=native)
    return count
