"""The decode step's attention on the device: which SDPA kernel each mask lets run, and how fast.

A fixed-span step (one captured CUDA graph per 256 slots of cache) has one query per row reading a
whole span, masked past the present and over a left-padded prefix. Flash attention takes no mask;
the memory-efficient and cuDNN kernels take one. Each choice is timed on the melody architecture's
attention shape (24 heads of 64, a 30 s window's last span) with CUDA events:
- `bool mask`: what the steps passed before (SDPA turns it into an additive mask in every layer);
- `additive mask`: 0 / -inf in the queries' dtype, made once per step (what the steps pass now);
- `no mask, exact span`: flash over only the filled slots, the floor (not graph-ready: the span
  grows every step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

KERNELS = {
    "default (SDPA's own pick)": None,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def _time_ms(call, repeats: int = 200) -> float:
    for _ in range(10):
        call()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats


def _inputs(rows: int, span: int, filled: int, dtype: torch.dtype, *, heads: int = 24, head_dim: int = 64):
    device = torch.device("cuda")
    query = torch.randn(rows, heads, 1, head_dim, device=device, dtype=dtype)
    keys = torch.randn(rows, heads, span, head_dim, device=device, dtype=dtype)
    values = torch.randn_like(keys)
    allowed = torch.zeros(rows, 1, 1, span, dtype=torch.bool, device=device)
    allowed[..., 10:filled] = True  # a left-padded prefix, then the slots filled so far
    additive = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))
    return query, keys, values, allowed, additive


def measure(rows: int, dtype: torch.dtype, span: int = 1792, filled: int = 1700) -> list[dict]:
    """Each (mask, kernel) pair that runs, in milliseconds per attention call."""
    query, keys, values, allowed, additive = _inputs(rows, span, filled, dtype)
    cases = {
        "bool mask": (keys, values, allowed),
        "additive mask": (keys, values, additive),
        "no mask, exact span": (keys[:, :, :filled], values[:, :, :filled], None),
    }
    found = []
    for mask_name, (k, v, mask) in cases.items():
        for kernel_name, kernel in KERNELS.items():

            def call(k=k, v=v, mask=mask):
                return F.scaled_dot_product_attention(query, k, v, mask)

            try:
                if kernel is None:
                    ms = _time_ms(call)
                else:
                    with sdpa_kernel([kernel]):
                        ms = _time_ms(call)
            except RuntimeError:  # this kernel does not take this mask, shape or dtype
                continue
            found.append({"mask": mask_name, "kernel": kernel_name, "rows": rows, "ms": ms})
    return found


def run(batches: list[int], dtype: torch.dtype = torch.float16) -> list[dict]:
    print(
        f"\n### Attention in one decode step ({str(dtype).removeprefix('torch.')}, 24 heads of 64, "
        "span 1792, 1700 filled)\n"
    )
    print("| rows (candidates x 2) | mask | kernel | us per call |\n|---|---|---|---|")
    found = []
    for batch in batches:
        rows = measure(2 * batch, dtype)
        for row in rows:
            print(f"| {row['rows']} | {row['mask']} | {row['kernel']} | {row['ms'] * 1e3:.1f} |", flush=True)
        found += rows
    return found
