"""The real architecture on the CPU: float32 against the reduced-precision paths, step by step.

The precisions named together run in one process and take turns step by step (float32, int8,
float32, int8, ...), so the machine's noise (it is shared) falls on all of them alike and their
ratio is what it cannot move much; the torch thread count is the one Restyle itself picks
(`generation.threads`: the cores less one for the finishing thread). Each reports, at batch 1 and 4
with guidance, the time of a decoding step at the start of a window and 10 s into it. A step's
cost is linear in its context (the weights once, plus the key/value cache read so far), so the
mean over a 30 s window is the line through those two points taken at 15 s; seconds per 30 s
candidate are 1503 such steps over the batch. Beside each: the floor, the bytes a step must read
(weights, heads, cache) over the bandwidth measured in the same process, and the model's resident
weights. Steps run on a cache that was not filled by a prefill (its contents do not change the
time), which spares minutes of prompt processing per row.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

from generation.audio.chroma import conditioning_chroma
from generation.musicgen.backends import WindowBatch
from generation.musicgen.backends.conditioning import build_prefix
from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.kvcache import Int8Cache
from generation.musicgen.models import LoadedModel
from generation.musicgen.params import SamplingParams
from generation.musicgen.windows import Window

CONTEXTS_S = (0.0, 10.0)
TIMED_STEPS = 9
FRAME_RATE = 50


@dataclass
class StepFigure:
    config: str
    precision: str
    batch: int
    ms_start: float  # a step at the start of a window
    ms_10s: float  # a step 10 s into it
    ms_mean: float  # the mean over a 30 s window (the line through both, at 15 s)
    s_per_30s_candidate: float
    floor_ms_mean: float
    model_gib: float  # the whole model's weights and buffers, resident
    peak_gib: float  # the process's peak after this batch (every precision it holds)
    bandwidth_gbs: float
    threads: int
    native_int8: bool  # int8 layers run generation/musicgen/int8_gemm.c


def bandwidth() -> float:
    """Bytes per second the process's threads read from memory (a 1 GiB sum: larger than any cache)."""
    data = torch.ones(2**28)
    data.sum()
    started = time.perf_counter()
    for _ in range(3):
        data.sum()
    return 3 * data.numel() * 4 / (time.perf_counter() - started)


@dataclass
class _Timed:
    lm: LoadedModel
    backend: FastBackend
    state: object = None
    first: int = 0
    times: list[float] | None = None


def _prepare(timed: _Timed, batch: int, context_frames: int) -> None:
    """A window's decode state after `context_frames` of codes, ready for timed steps."""
    lm = timed.lm
    melody = torch.sin(torch.arange(32_000 * 4) / 32_000 * 2 * torch.pi * 440).numpy()
    chroma = conditioning_chroma(melody, offset_s=0.0, single_window=True, frames=lm.chroma_frames)
    carried = None
    if context_frames:
        carried = torch.randint(0, 2048, (batch, lm.num_codebooks, context_frames))
    window = Window(0, 0, context_frames, context_frames + TIMED_STEPS + 2)
    prompts, chromas = ["cinematic strings"] * batch, chroma[None].repeat(batch, 1, 1)
    rows = WindowBatch(prompts, chromas, carried, list(range(batch)), window, SamplingParams())
    prefix = build_prefix(lm, rows, guided=True)
    timed.state = timed.backend._allocate(rows, prefix, guided=True)
    timed.first = timed.backend._first_free(rows)
    timed.state.tokens.clamp_(min=0)  # no prefill chose the first token: any code will do for timing
    timed.times = []


def step_ms(models: list[_Timed], batch: int, context_frames: int) -> list[tuple[float, int, int]]:
    """Per model, (ms of its fastest step after `context_frames` of codes, cache bytes per slot, prefix
    slots); the models take turns, one step each."""
    with torch.inference_mode():
        for timed in models:
            _prepare(timed, batch, context_frames)
        for offset in range(1, 1 + TIMED_STEPS):
            for timed in models:
                position = torch.tensor([timed.first + offset])
                started = time.perf_counter()
                timed.backend._advance(timed.state, position, span=None)
                timed.times.append(time.perf_counter() - started)
    found = []
    for timed in models:
        per_slot = _slot_bytes(timed.state)
        # The fastest step: other processes on a shared machine only ever add time to a step.
        fastest = min(timed.times) * 1e3
        found.append((fastest, per_slot, timed.state.valid.shape[1] - timed.state.tokens.shape[-1]))
        timed.state = None  # free the cache before the next shape
    return found


def _slot_bytes(state) -> int:
    """Bytes of key/value cache per slot (an int8 cache holds keys and values in one object)."""
    caches = {id(c): c for c in state.keys_cache + state.values_cache}.values()
    return sum(
        c.slot_bytes if isinstance(c, Int8Cache) else c[:, :, 0].numel() * c.element_size() for c in caches
    )


def weight_bytes(lm: LoadedModel) -> int:
    """What a step reads of the model: every layer's weights, the final norm and the heads."""
    core = lm.model.decoder.model.decoder
    parts = [core.layers, core.layer_norm, lm.model.decoder.lm_heads]
    return _stored_bytes([t for part in parts for t in (*part.parameters(), *part.buffers())])


def model_bytes(lm: LoadedModel) -> int:
    return _stored_bytes([*lm.model.parameters(), *lm.model.buffers()])


def _stored_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes held, each storage once (int8's q, k and v are views of their fused layer's buffers)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def _uses_native_int8(lm: LoadedModel) -> bool:
    from generation.musicgen.quantize import Int8Linear

    return any(isinstance(m, Int8Linear) and m.native for m in lm.model.modules())


def measure(spec: str, config: str, precisions: list[str], batches: list[int]) -> list[StepFigure]:
    from generation.threads import apply_threads, plan_threads

    plan = plan_threads()
    apply_threads(plan)
    models = [_Timed(lm, FastBackend(lm, fixed_spans=False)) for lm in map(_loader(spec), precisions)]
    step_ms(models, 1, 0)  # warm-up: kernels, allocator, first-touch pages
    speed = bandwidth()
    figures = []
    for batch in batches:
        starts = step_ms(models, batch, 0)
        laters = step_ms(models, batch, int(CONTEXTS_S[1] * FRAME_RATE))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        for timed, (start, _, _), (later, per_slot, prefix) in zip(models, starts, laters, strict=True):
            mean = start + (later - start) * 1.5
            floor = (weight_bytes(timed.lm) + per_slot * (prefix + 1 + 15 * FRAME_RATE)) / speed * 1e3
            lm = timed.lm
            figures.append(
                StepFigure(
                    config=config,
                    precision=lm.precision.name,
                    batch=batch,
                    ms_start=start,
                    ms_10s=later,
                    ms_mean=mean,
                    s_per_30s_candidate=mean * 1503 / batch / 1e3,
                    floor_ms_mean=floor,
                    model_gib=model_bytes(lm) / 2**30,
                    peak_gib=peak,
                    bandwidth_gbs=speed / 1e9,
                    threads=plan.torch_threads,
                    native_int8=_uses_native_int8(lm),
                )
            )
    return figures


def _loader(spec: str):
    from generation.musicgen.models import load_model

    return lambda name: load_model(spec, device="cpu", dtype=name)


def run_isolated(arguments: list[str]):
    """This module's `_main` in a fresh process: its memory is its own, and only one big model lives."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cpu", *arguments], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_isolated(spec: str, config: str, precisions: str, batches: list[int]) -> list[StepFigure]:
    """`precisions` (comma-separated) in one fresh process, taking turns step by step."""
    rows = run_isolated([spec, config, precisions, ",".join(map(str, batches))])
    return [StepFigure(**row) for row in rows]


def _main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if sys.argv[1] == "codec":
        print(json.dumps(codec_memory(sys.argv[2])))
        return
    if sys.argv[1] == "distance":
        spec, names, seconds = sys.argv[2:5]
        print(json.dumps(distances(spec, tuple(names.split(",")), float(seconds))))
        return
    spec, config, precisions, batches = sys.argv[1:5]
    figures = measure(spec, config, precisions.split(","), [int(b) for b in batches.split(",")])
    print(json.dumps([asdict(f) for f in figures]))


def codec_memory(spec: str) -> dict[str, float]:
    """GiB EnCodec decoding adds over the resident model: 30 s (one chunk) and 300 s (chunked)."""
    from benchmarks.memory import peak_memory
    from generation.musicgen.codec import decode_codes
    from generation.musicgen.models import load_model

    lm = load_model(spec, device="cpu", dtype="int8")  # the smallest resident model: the codec is float32
    found = {}
    for seconds in (30, 300):
        codes = torch.randint(0, 2048, (1, lm.num_codebooks, seconds * FRAME_RATE))
        started = time.perf_counter()
        audio, mib = peak_memory(lambda codes=codes: decode_codes(lm, codes), lm.device)
        assert audio.shape[-1] == seconds * lm.sample_rate
        found[f"decode_{seconds}s_gib"] = mib / 1024
        found[f"decode_{seconds}s_s"] = time.perf_counter() - started
    return found


def distances(spec: str, names: tuple[str, ...], seconds: float) -> dict[str, dict]:
    """Each precision's distance from float32 over one teacher-forced window (`generation.musicgen.fidelity`),
    two big models at a time at most."""
    from generation.musicgen.engine import melody_job
    from generation.musicgen.fidelity import compare_precisions
    from generation.musicgen.models import load_model

    melody = torch.sin(torch.arange(32_000 * 4) / 32_000 * 2 * torch.pi * 440).numpy()
    job = melody_job("cinematic strings", melody, (7,), seconds)
    reference = load_model(spec, device="cpu", dtype="float32")
    found = {}
    for name in names:
        other = load_model(spec, device="cpu", dtype=name)
        found[name] = asdict(compare_precisions(reference, other, job))
        del other
    return found


if __name__ == "__main__":
    _main()
