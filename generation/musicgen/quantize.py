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
        """In and out in bfloat16 or float32 as the kernel reads and writes them: no casts."""
        if flat.dtype != torch.bfloat16:
            flat = flat.float()
        flat = flat.contiguous()
        rows, columns = flat.shape[0], self.scale.shape[0]
        out = torch.empty(rows, columns, dtype=flat.dtype)
        bias = None if self.bias is None else self.bias.data_ptr()
        failed = self.kernel(
            self.weight.data_ptr(), flat.data_ptr(), flat.dtype == torch.bfloat16, rows, columns,
            self.in_features, self.scale.data_ptr(), self.row_sums.data_ptr(), bias, out.data_ptr(),
        )  # fmt: skip
        if failed:
            raise MemoryError("the int8 kernel could not allocate its scratch")
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


def fuse(parts: list[Int8Linear]) -> Int8Linear:
    """One layer for several that read the same input (attention's q, k and v): one call and one
    rounding of the input to int8 instead of three. The parts keep working, on views of the fused
    buffers, so nothing is stored twice. `split` cuts its output back into the parts' outputs."""
    first = parts[0]
    fused = Int8Linear.__new__(Int8Linear)
    nn.Module.__init__(fused)
    fused.kernel, fused.in_features = first.kernel, first.in_features
    fused.widths = [(part.scale.shape[0], part.out_features) for part in parts]  # (stored, real)
    fused.out_features = sum(stored for stored, _ in fused.widths)
    for name, tensor in first._buffers.items():  # the bias may be None: named_buffers skips it
        if tensor is None:
            fused.register_buffer(name, None)
            continue
        fused.register_buffer(name, torch.cat([getattr(part, name) for part in parts]))
        views = getattr(fused, name).split([getattr(part, name).shape[0] for part in parts])
        for part, view in zip(parts, views, strict=True):
            setattr(part, name, view)
    return fused


def split(fused: Int8Linear, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the layers `fused` fuses, for input `x`, from one product."""
    out = fused(x).split([stored for stored, _ in fused.widths], dim=-1)
    return [part[..., :real] for part, (_, real) in zip(out, fused.widths, strict=True)]


def quantize_linears(module: nn.Module, *, native: bool | None = None) -> int:
    """Replace every `nn.Linear` under `module` in place, and give each attention its q, k and v
    fused as `qkv_proj` (see `fuse`); returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, native=native))
            count += 1
        else:
            count += quantize_linears(child, native=native)
    projections = [getattr(module, name, None) for name in ("q_proj", "k_proj", "v_proj")]
    if all(isinstance(p, Int8Linear) for p in projections) and _fusable(projections):
        module.qkv_proj = fuse(projections)
    return count


def _fusable(parts: list[Int8Linear]) -> bool:
    first = parts[0]
    same = [(p.in_features, p.native, p.bias is None) for p in parts]
    return same == [(first.in_features, first.native, first.bias is None)] * len(parts)
