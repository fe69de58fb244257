"""Devices and dtypes by name, for every family: refused in one line when this machine lacks them."""

from __future__ import annotations

import gc
import re

import torch

from generation.errors import ModelUnavailableError

_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")
FLOAT_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def pick_device(name: str = "auto") -> torch.device:
    """The device `name` stands for, refused in one line if this machine does not have it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ModelUnavailableError("This machine has no MPS (Apple GPU) device: use cpu or auto.")
        return torch.device("mps")
    if name == "cuda" or _CUDA_INDEX.match(name):
        return _cuda_device(name)
    raise ModelUnavailableError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.")


def _cuda_device(name: str) -> torch.device:
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
        raise ModelUnavailableError(
            f"Device {name}: CUDA is not available here (torch {torch.__version__}, {build}): "
            "use cpu or auto."
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ModelUnavailableError(
            f"{name} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}."
        )
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """One dtype for a whole pipeline (ACE-Step's): half precision on accelerators (bf16 where
    supported), float32 on the CPU. MusicGen's parts each get their own
    (`generation.musicgen.precision`)."""
    if name != "auto":
        if name not in FLOAT_DTYPES:
            raise ModelUnavailableError(f"Unknown dtype {name!r}: use float32, bfloat16 or float16.")
        return FLOAT_DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def release_memory(device: torch.device) -> None:
    """After a cancelled or failed batch: what its tensors held goes back (to the device too)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
