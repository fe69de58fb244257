"""Which dtype an ACE-Step pipeline runs in under `--dtype auto`.

On a GPU, half precision (bfloat16 where supported), as everywhere. On a CPU with bfloat16
instructions (AVX-512 BF16 or AMX), bfloat16 for the released models: the DiT and the encoders
are stored and run in it, and the VAE's decoder runs its convolutions in it (`fastvae`), while
the VAE's weights and the audio stay float32. Its matrix products run about 2.5x faster than
float32's there, and the whole cover about 2x (benchmarks/RESULTS.md, ACE-Step); the audio it
gives is about 30 dB from float32's on the real shapes (measured beside the speed), where
ACE-Step's own checkpoints are stored in bfloat16. Without those instructions torch emulates
bfloat16 products, slower than float32, so float32 stays. The debug models stay float32 under
`auto`: tests use them as oracles, and reduced precision buys them nothing.
"""

from __future__ import annotations

import torch

from generation.acestep.architectures import DEBUG_MODELS
from generation.devices import pick_dtype
from generation.musicgen.precision import cpu_has_fast_bf16


def pick_acestep_dtype(spec: str, name: str, device: torch.device) -> torch.dtype:
    """`name` (auto, float32, bfloat16, float16) for `spec` on `device`; see the module's docstring."""
    if name == "auto" and device.type == "cpu" and spec not in DEBUG_MODELS and cpu_has_fast_bf16():
        return torch.bfloat16
    return pick_dtype(name, device)
