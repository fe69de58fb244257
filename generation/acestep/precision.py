"""Which dtype an ACE-Step pipeline runs in under `--dtype auto`.

On a GPU, half precision (bfloat16 where supported), as everywhere. On a CPU with bfloat16
instructions (AVX-512 BF16 or AMX), bfloat16 for the released models: the DiT, the encoders and
the audio tokenizer are stored and run in it, and the VAE's convolutions run in it for the seed's
encode and the output's decode (`fastvae`; the VAE's weights and the audio stay float32). There a
DiT step runs 2.3x faster than in float32 and a whole 30 s cover about 2x (benchmarks/RESULTS.md,
ACE-Step, 2026-12-07), at 41.7 dB from float32 per DiT step and 45.6 dB on the VAE's audio (real
shapes, random weights; a whole debug cover 36.5 dB); ACE-Step's own checkpoints are stored in
bfloat16. Without those instructions torch emulates bfloat16 products, slower than float32, so
float32 stays. The debug models stay float32 under `auto` (`is_tiny`): tests use them as oracles,
and reduced precision buys them nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from generation.acestep.architectures import ARCHITECTURES
from generation.devices import pick_dtype

TINY_DIT_WIDTH = 512  # the released DiTs are 2048 and 2560 wide; the debug and test builds 32


def cpu_has_fast_bf16() -> bool:
    """bfloat16 products run in hardware (AVX-512 BF16 or AMX). The same probe as MusicGen's
    (`generation.musicgen.precision`); a family does not import another's modules."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def pick_acestep_dtype(name: str, device: torch.device, *, tiny: bool) -> torch.dtype:
    """`name` (auto, float32, bfloat16, float16) on `device`; see the module's docstring."""
    if name == "auto" and device.type == "cpu" and not tiny and cpu_has_fast_bf16():
        return torch.bfloat16
    return pick_dtype(name, device)


def is_tiny(kind: str, target: str) -> bool:
    """Whether a resolved model (`loading.resolve`) has a debug-sized DiT: a random build's
    architecture, or a saved folder's `transformer/config.json`; hub checkpoints are real."""
    if kind == "random":
        return ARCHITECTURES[target].dit_hidden < TINY_DIT_WIDTH
    if kind == "local":
        config = Path(target) / "transformer" / "config.json"
        try:
            return json.loads(config.read_text()).get("hidden_size", TINY_DIT_WIDTH) < TINY_DIT_WIDTH
        except (OSError, ValueError):
            return False  # loading will say what is wrong with the folder
    return False
