"""The int8 decoder's key/value cache on CPUs: one byte per value, read by the native kernel.

A decoding step's attention reads every cached key and value once per layer: 15 s into a window,
in bfloat16, about 0.6 GB at batch 1, nearly half of what the int8 weights weigh. Here each slot's
key and value keep one int8 per value and one float32 scale per head (`int8_gemm.c`'s
`restyle_kv_store`), and a decoding step's attention (`restyle_kv_attend`) multiplies the query,
rounded to int8 as the linear layers round theirs, against 16 keys per instruction. A prefill
attends over its own float keys and values (they are all there is), then stores them rounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generation.musicgen.native import kv_kernels

SLOT_BLOCK = 16  # keys are stored in blocks of 16 slots


def int8_cache_fits(head_dim: int) -> bool:
    """The kernel reads keys 4 dimensions at a time and needs the native library."""
    return head_dim % 4 == 0 and kv_kernels() is not None


@dataclass
class Int8Cache:
    """One layer's keys and values for `rows` rows, `heads` heads and `slots` slots."""

    keys: torch.Tensor  # uint8 (rows, heads, slots / 16, head_dim / 4, 16, 4)
    key_scales: torch.Tensor  # float32 (rows, heads, slots)
    values: torch.Tensor  # int8 (rows, heads, slots, head_dim)
    value_scales: torch.Tensor  # float32 (rows, heads, slots)
    kernels: tuple  # (store, attend) from `kv_kernels`

    @classmethod
    def allocate(cls, rows: int, heads: int, slots: int, head_dim: int) -> Int8Cache:
        slots += -slots % SLOT_BLOCK
        blocks = (rows, heads, slots // SLOT_BLOCK, head_dim // 4, SLOT_BLOCK, 4)
        return cls(
            torch.zeros(blocks, dtype=torch.uint8),
            torch.zeros(rows, heads, slots),
            torch.zeros(rows, heads, slots, head_dim, dtype=torch.int8),
            torch.zeros(rows, heads, slots),
            kv_kernels(),
        )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(rows, heads, slots, head_dim), as a float cache's."""
        return tuple(self.values.shape)

    @property
    def slot_bytes(self) -> int:
        """Bytes a slot holds, keys and values, every row and head."""
        tensors = (self.keys, self.key_scales, self.values, self.value_scales)
        return sum(t.numel() * t.element_size() for t in tensors) // self.shape[2]

    def store(self, key: torch.Tensor, value: torch.Tensor, start: int) -> None:
        """Write `key` and `value` (rows, length, heads * head_dim; rows of any stride) from slot `start`."""
        rows, heads, slots, head_dim = self.shape
        store, _ = self.kernels
        store(
            key.data_ptr(), value.data_ptr(), key.dtype == torch.bfloat16, rows, key.shape[1], heads,
            head_dim, key.stride(0), key.stride(1), slots, start, *self._pointers(),
        )  # fmt: skip

    def attend(
        self, query: torch.Tensor, span: int, valid: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        """Attention of one query per row (rows, 1, heads * head_dim) over slots 0..span-1 where
        `valid` (rows, any slots; None: all) allows."""
        rows, heads, slots, head_dim = self.shape
        out = torch.empty(rows, 1, heads * head_dim, dtype=query.dtype)
        _, attend = self.kernels
        attend(
            query.data_ptr(), query.dtype == torch.bfloat16, rows, heads, head_dim, query.stride(0), slots,
            span, None if valid is None else valid.data_ptr(), 0 if valid is None else valid.stride(0), scale,
            *self._pointers(), out.data_ptr(),
        )  # fmt: skip
        return out

    def _pointers(self) -> list[int]:
        return [t.data_ptr() for t in (self.keys, self.key_scales, self.values, self.value_scales)]
