"""The decode loop: transformers' `generate` (reference) and Restyle's fast path, side by side.

For each architecture and batch (candidates, each with classifier-free guidance) both backends
generate the same window from the same conditioning; figures are per decoding step. On a GPU the
memory-bandwidth floor (reading the decoder's weights and the attended cache once per step) is
printed beside each figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.memory import peak_memory
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.models import LoadedModel
from generation.musicgen.windows import total_steps

PROMPT = "cinematic orchestral strings with soft piano"
# Achievable bandwidth on known GPUs (vendor figures, bytes per second).
SPEC_BANDWIDTH = {"H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12, "H200": 4.8e12, "A100-SXM4-80GB": 2.04e12}


@dataclass
class DecodeFigure:
    config: str
    backend: str
    batch: int
    seconds: float
    ms_per_step: float
    s_per_30s: float
    rtf: float  # wall time over audio time: below 1 is faster than real time
    peak_mib: float
    floor_ms: float | None = None
    first_run_s: float = 0.0  # the warm-up run: at the measured shape when graphs are captured
    capture_s: float = 0.0  # of which capturing graphs (fast on CUDA), outside the timed run

    @property
    def floor_ratio(self) -> float | None:
        return self.ms_per_step / self.floor_ms if self.floor_ms else None


def melody(seconds: float, rate: int = 32_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    notes = 261.6 * 2 ** (np.array([0, 4, 7, 12, 7, 4]) / 12)
    hz = notes[(t * 2).astype(int) % len(notes)]
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(lm: LoadedModel, backend: str, batch: int, seconds: float, config: str) -> DecodeFigure:
    """One timed run of a `seconds` window, after a first run that warms what it needs.

    A backend that keeps buffers and captured graphs per shape (fast, on CUDA) warms up at the very
    shape it is timed at, so allocating the cache and capturing its graphs happen before the clock
    starts; that first run and its capture time are reported apart (`first_run_s`, `capture_s`),
    since a queue of such jobs pays them once. Others warm up on a short job (kernels, allocator).
    """
    engine = MusicGenEngine(lm, backend)
    tune = melody(min(seconds, 30.0))
    shapes = (
        getattr(engine.backend, "shapes", None) if getattr(engine.backend, "fixed_spans", False) else None
    )
    warm_s = seconds if shapes is not None else 0.5
    warm = melody_job(PROMPT, tune, tuple(range(batch)), warm_s)
    first_s, first_peak = peak_memory(
        lambda: _timed(lm.device, lambda: engine.generate_codes(warm)), lm.device
    )
    job = melody_job(PROMPT, tune, tuple(range(100, 100 + batch)), seconds)
    captures = shapes.captures if shapes is not None else 0
    elapsed, peak = peak_memory(lambda: _timed(lm.device, lambda: engine.generate_codes(job)), lm.device)
    if shapes is not None:
        if shapes.captures != captures:  # the timed run must only replay
            raise RuntimeError(f"the timed run captured {shapes.captures - captures} graphs: not warmed up")
        peak = max(peak, first_peak)  # the kept cache and graphs were allocated by the first run
    steps = total_steps(seconds)
    per_step = elapsed / steps
    return DecodeFigure(
        config,
        backend,
        batch,
        seconds,
        per_step * 1e3,
        per_step * 1503,
        elapsed / seconds,
        peak,
        first_run_s=first_s,
        capture_s=shapes.capture_s if shapes is not None else 0.0,
    )


def _timed(device: torch.device, work) -> float:
    _sync(device)
    started = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - started


def bandwidth(device: torch.device) -> float:
    """Bytes per second this GPU moves in a large device-to-device copy (read + write)."""
    source = torch.empty(2**29, dtype=torch.float32, device=device)  # 2 GiB
    target = torch.empty_like(source)
    target.copy_(source)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(5):
        target.copy_(source)
    torch.cuda.synchronize()
    moved = 2 * source.numel() * source.element_size() * 5
    return moved / (time.perf_counter() - started)


def floor_ms(lm: LoadedModel, batch: int, seconds: float, bytes_per_second: float) -> float:
    """Milliseconds per step to read the decoder's weights once and the attended cache, on average."""
    decoder = lm.model.decoder
    weights = sum(
        p.numel() * p.element_size() for name, p in decoder.named_parameters() if "embed_tokens" not in name
    )
    config = decoder.config
    rows = 2 * batch  # conditional and unconditional
    prefix = lm.chroma_frames + 12  # chroma and a typical prompt's tokens
    window = min(seconds, 30.0) * 50 + lm.delay
    average_slots = prefix + window / 2
    element = torch.finfo(lm.dtype).bits // 8
    cache = 2 * config.num_hidden_layers * rows * config.hidden_size * average_slots * element
    return (weights + cache) / bytes_per_second * 1e3


def measure_isolated(spec: str, backend: str, batch: int, seconds: float, config: str) -> DecodeFigure:
    """`measure` in a fresh process, so its memory growth is its own and not the allocator's leftovers."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "benchmarks.decode", spec, backend, str(batch), str(seconds), config]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return DecodeFigure(**json.loads(done.stdout.strip().splitlines()[-1]))


def _main() -> None:
    import json
    import sys
    from dataclasses import asdict

    from transformers.utils import logging as hf_logging

    from generation.musicgen.models import load_model

    hf_logging.set_verbosity_error()
    spec, backend, batch, seconds, config = sys.argv[1:6]
    figure = measure(load_model(spec), backend, int(batch), float(seconds), config)
    print(json.dumps(asdict(figure)))


if __name__ == "__main__":
    _main()
