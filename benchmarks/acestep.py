"""python -m benchmarks.acestep [--seconds 30,120] [--dtype bfloat16] [--json PATH]

ACE-Step 1.5 cover at batch 1 with the real shapes and random weights (speed does not depend on the
weights' values): seconds per 30 s and per 120 s of output, and memory.

A cover is: the source through the VAE encoder and the audio tokenizer, the prompt through the text
and condition encoders (twice: once per phase), 8 DiT steps, the latents through the VAE decoder.
On a 2-core CPU a whole cover takes many minutes, so each part is measured in a process of its own
and the total is their sum:
- the VAE (shared by every ACE-Step 1.5 model) at 30 s, its one encoder window and two decoder
  tiles; longer pieces are priced by the windows and tiles diffusers' tiling actually runs;
- the DiT and encoders at each length, as text-to-music (no VAE work) stopped by a cancel after
  3 steps; a step's time is their median, and 8 of them make the 8 turbo steps;
- the XL DiT (what `ace-step` loads, about 4.1 B parameters) does not fit beside the rest in the
  memory a shared machine spares, so it runs with 4 and with 8 of its 32 layers and its step time
  is extrapolated linearly to 32; its weights' memory is counted on the meta device.
Every figure says which of these it is. On a GPU the same parts run, the XL DiT in full.

First, paths taking turns in one process with the same weights, each with its distance to float32:
the VAE (diffusers', the fast one, its decoder and then also its encoder in bfloat16) and the 2B
DiT (diffusers' and `generation.acestep.fastdit`, each in float32 and bfloat16); then a whole
cover per path from them (`--paths-only`: those tables alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import machine
from benchmarks.decode import PROMPT, melody
from benchmarks.memory import peak_memory

VAE_SECONDS = 30.0
CANCEL_AT = 3  # steps 2 and 3 are timed whole; the cancel is seen at the end of step 4
TURBO_STEPS = 8
XL_LAYERS_CPU = (4, 8)
ARCHES = {"ace-step-2b": 24, "ace-step": 32}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.acestep", description=__doc__)
    parser.add_argument("--seconds", default="30,120", help="comma-separated output lengths")
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16 (AMX / AVX-512 BF16 CPUs) or float32")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/acestep-last-run.json"))
    parser.add_argument(
        "--vae-seconds", type=float, default=None, help="length for the VAE paths (default 30, 5 on a CPU)"
    )
    parser.add_argument(
        "--paths-only", action="store_true", help="only the VAE's and the DiT's paths and the cover per path"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args()


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _timed(work) -> tuple[object, float, float]:
    """`work()`'s result, wall seconds and CPU seconds (all threads: wall x cores when unshared)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure_vae(dtype: torch.dtype) -> dict:
    """VAE encode + audio tokenizer over 30 s of stereo, then the VAE decode of its latents."""
    from generation.acestep.architectures import ARCHITECTURES, build_audio_tokenizer, build_vae
    from generation.acestep.params import FRAMES_PER_CODE, SAMPLES_PER_FRAME

    arch, device = ARCHITECTURES["ace-step"], _device()
    with torch.device(device):
        vae = build_vae(arch).eval()
        tokenizer = build_audio_tokenizer(arch).to(dtype).eval()
    vae.enable_tiling()
    frames = round(VAE_SECONDS * 48_000 / SAMPLES_PER_FRAME)
    tune = torch.from_numpy(melody(VAE_SECONDS, 48_000))
    audio = torch.stack([tune, 0.8 * tune])[None].to(device)

    def encode():
        with torch.inference_mode():
            latents = vae.encode(audio).latent_dist.mode().transpose(1, 2)
            patches = latents.to(dtype).reshape(1, frames // FRAMES_PER_CODE, FRAMES_PER_CODE, -1)
            return latents, tokenizer(patches)

    def decode(latents):
        with torch.inference_mode():
            return vae.decode(latents.transpose(1, 2).contiguous()).sample

    def both() -> tuple[float, float, float, float]:
        (latents, _), encode_s, encode_cpu = _timed(encode)
        _, decode_s, decode_cpu = _timed(lambda: decode(latents))
        return encode_s, encode_cpu, decode_s, decode_cpu

    (encode_s, encode_cpu, decode_s, decode_cpu), peak_mib = peak_memory(both, device)
    return {
        "part": "vae",
        "seconds": VAE_SECONDS,
        "encode_s": encode_s,
        "encode_cpu_s": encode_cpu,
        "decode_s": decode_s,
        "decode_cpu_s": decode_cpu,
        "peak_mib": peak_mib,
        "weights_mib": _mib([vae, tokenizer]),
    }


def measure_dit(arch_name: str, layers: int, seconds: float, dtype: torch.dtype) -> dict:
    """The encoders and the DiT through the engine: text-to-music, cancelled after a few steps."""
    from generation.acestep.architectures import ARCHITECTURES, build_pipeline
    from generation.acestep.engine import AceStepEngine
    from generation.acestep.loading import LoadedAceStep
    from generation.acestep.params import CoverParams, cover_job
    from generation.interface import CancelToken

    device = _device()
    arch = dataclasses.replace(ARCHITECTURES[arch_name], dit_layers=layers)
    pipe = build_pipeline(arch, device=device, dtype=dtype)
    engine = AceStepEngine(LoadedAceStep(f"random:{arch_name}", "random", None, None, pipe, device, dtype))
    source = np.zeros((2, 48_000), np.float32)  # never read: strength 0 is plain text-to-music
    job = cover_job(PROMPT, source, (0,), seconds, CoverParams(strength=0.0))
    token, stamps = CancelToken(), []

    def stamp(done: int, total: int) -> None:
        stamps.append(time.perf_counter())
        if done == CANCEL_AT:
            token.cancel()

    def run() -> None:
        stamps.append(time.perf_counter())
        engine.generate_many([job], [stamp], [token])

    _, peak_mib = peak_memory(run, device)
    steps = [later - earlier for earlier, later in itertools.pairwise(stamps[1:])]
    step_s = statistics.median(steps)
    return {
        "part": "dit",
        "arch": arch_name,
        "dit_layers": layers,
        "seconds": seconds,
        "step_s": step_s,
        "steps_timed": len(steps),
        "conditions_s": stamps[1] - stamps[0] - step_s,  # text + condition encoders, noise, setup
        "peak_mib": peak_mib,
        "weights_mib": _mib(pipe.components.values()),
    }


VAE_PATHS = ("reference float32", "fast float32", "fast, bf16 decode", "fast, bf16 encode and decode")


def measure_vae_paths(seconds: float, turns: int = 4) -> dict:
    """The VAE as diffusers ships it against `generation.acestep.fastvae` (weight norm folded, snakes
    fused; then also the decoder in bfloat16), same weights, taking turns in one process; the best
    of `turns` each, in wall and in CPU seconds (on a machine shared with other work the CPU seconds
    are the steadier), and each path's distance to the reference (signal-to-error ratio, dB)."""
    from generation.acestep.architectures import ARCHITECTURES, build_vae, quiet_weight_norm
    from generation.acestep.fastvae import decoding, speed_up

    device, frames = _device(), round(seconds * 25)
    torch.manual_seed(0)
    with torch.device(device), quiet_weight_norm():
        reference, fast = (
            build_vae(ARCHITECTURES["ace-step"]).eval(),
            build_vae(ARCHITECTURES["ace-step"]).eval(),
        )
    fast.load_state_dict(reference.state_dict())
    speed_up(fast)
    tune = torch.from_numpy(melody(seconds, 48_000))
    audio = torch.stack([tune, 0.8 * tune])[None].to(device)
    paths = {  # the VAE, the dtype its encoder runs in, and its decoder's
        VAE_PATHS[0]: (reference, None, None),
        VAE_PATHS[1]: (fast, None, None),
        VAE_PATHS[2]: (fast, None, torch.bfloat16),
        VAE_PATHS[3]: (fast, torch.bfloat16, torch.bfloat16),
    }
    kinds = ("encode", "decode", "encode_cpu", "decode_cpu")
    times: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in paths}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(turns):
        for name, (vae, encode_dtype, decode_dtype) in paths.items():
            with torch.inference_mode():
                with decoding(device, encode_dtype):
                    latents, encode_s, encode_cpu = _timed(
                        lambda vae=vae: vae.encode(audio).latent_dist.mode()
                    )
                latents = latents.float()
                with decoding(device, decode_dtype):
                    out, decode_s, decode_cpu = _timed(
                        lambda vae=vae, z=latents: vae.decode(z[:, :, :frames]).sample
                    )
            for kind, value in zip(kinds, (encode_s, decode_s, encode_cpu, decode_cpu), strict=True):
                times[name][kind].append(value)
            outputs[name] = out.float().cpu()
    truth = outputs[VAE_PATHS[0]]
    figures = {}
    for name in paths:
        error = float(((outputs[name] - truth) ** 2).mean())
        figures[name] = {
            **{f"{kind}_s": min(times[name][kind]) for kind in kinds},
            "snr_db": math.inf if error == 0 else 10 * math.log10(float((truth**2).mean()) / error),
        }
    return {"part": "vae_paths", "seconds": seconds, "turns": turns, "paths": figures}


def print_vae_paths(figure: dict) -> None:
    ref = figure["paths"][VAE_PATHS[0]]
    print(f"\n### ACE-Step VAE, {figure['seconds']:g} s of stereo, best of {figure['turns']} turns each\n")
    print(
        "| path | encode s (CPU s) | decode s (CPU s) | x reference, wall | x reference, CPU "
        "| decode x, CPU | distance to reference (dB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in figure["paths"].items():
        wall = (ref["encode_s"] + ref["decode_s"]) / (row["encode_s"] + row["decode_s"])
        cpu = (ref["encode_cpu_s"] + ref["decode_cpu_s"]) / (row["encode_cpu_s"] + row["decode_cpu_s"])
        snr = "exact" if math.isinf(row["snr_db"]) else f"{row['snr_db']:.1f}"
        print(
            f"| {name} | {row['encode_s']:.1f} ({row['encode_cpu_s']:.1f}) "
            f"| {row['decode_s']:.1f} ({row['decode_cpu_s']:.1f}) | {wall:.2f} | {cpu:.2f} "
            f"| {ref['decode_cpu_s'] / row['decode_cpu_s']:.2f} | {snr} |",
            flush=True,
        )


DIT_PATHS = ("reference float32", "fast float32", "reference bfloat16", "fast bfloat16")
DIT_PATH_LAYERS = 6  # of the 2B's 24: the layers are alike, so a step is priced per layer
CONDITION_TOKENS = 150  # prompt, "[Instrumental]" lyrics and the timbre, packed


def measure_dit_paths(seconds: float, turns: int = 3) -> dict:
    """The 2B DiT as diffusers ships it against `generation.acestep.fastdit`, in float32 and in
    bfloat16, the same weights, taking turns in one process, best of `turns`, and each path's
    distance to float32 diffusers' (dB). A cover is two pipeline calls of 4 steps (cover, then
    text-to-music): the first step of each computes the conditions' keys and values, the fast path
    keeps them for the other three, so a step is priced as (2 first + 6 later) / 8."""
    import copy

    from generation.acestep.architectures import ARCHITECTURES, build_transformer
    from generation.acestep.fastdit import forget, speed_up

    arch = dataclasses.replace(ARCHITECTURES["ace-step-2b"], dit_layers=DIT_PATH_LAYERS)
    device, frames = _device(), round(seconds * 25)
    torch.manual_seed(0)
    with torch.device(device):
        reference = build_transformer(arch).eval()
    reduced = copy.deepcopy(reference).to(torch.bfloat16)
    models = {DIT_PATHS[0]: reference, DIT_PATHS[2]: reduced}
    for slow, fast in ((DIT_PATHS[0], DIT_PATHS[1]), (DIT_PATHS[2], DIT_PATHS[3])):
        models[fast] = copy.deepcopy(models[slow])
        speed_up(models[fast])
    models = {name: models[name] for name in DIT_PATHS}
    inputs = [torch.randn(1, frames, 64), torch.randn(1, frames, 128), torch.randn(1, CONDITION_TOKENS, 2048)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(turns):
        for name, dit in models.items():
            noisy, context, conditions = (x.to(device, dit.dtype) for x in inputs)
            t = torch.full((1,), 0.5, device=device, dtype=dit.dtype)

            def step(dit=dit, noisy=noisy, t=t, conditions=conditions, context=context) -> torch.Tensor:
                return dit(noisy, t, t, conditions, context).sample

            with torch.no_grad():
                walls, cpus = [], []
                for _call in range(2):  # the first fills what the fast path keeps
                    out, wall, cpu = _timed(step)
                    walls.append(wall)
                    cpus.append(cpu)
            forget(dit)
            times[name].append(((2 * walls[0] + 6 * walls[1]) / 8, (2 * cpus[0] + 6 * cpus[1]) / 8))
            outputs[name] = out.float().cpu()
    truth = outputs[DIT_PATHS[0]]
    figures = {
        name: {
            "step_s": min(t[0] for t in times[name]),
            "step_cpu_s": min(t[1] for t in times[name]),
            "snr_db": _snr_db(truth, outputs[name]),
        }
        for name in models
    }
    return {
        "part": "dit_paths",
        "seconds": seconds,
        "layers": DIT_PATH_LAYERS,
        "turns": turns,
        "paths": figures,
    }


def _snr_db(truth: torch.Tensor, other: torch.Tensor) -> float:
    error = float(((other - truth) ** 2).mean())
    return math.inf if error == 0 else 10 * math.log10(float((truth**2).mean()) / error)


def print_dit_paths(figure: dict) -> None:
    ref = figure["paths"][DIT_PATHS[0]]
    print(
        f"\n### ACE-Step 2B DiT step, {figure['seconds']:g} s, {figure['layers']} of 24 layers, "
        f"best of {figure['turns']} turns each\n"
    )
    print(
        "| path | s per step (CPU s) | x float32 reference, wall | x, CPU | distance to float32 ref. (dB) |"
    )
    print("|---|---|---|---|---|")
    for name, row in figure["paths"].items():
        snr = "exact" if math.isinf(row["snr_db"]) else f"{row['snr_db']:.1f}"
        print(
            f"| {name} | {row['step_s']:.2f} ({row['step_cpu_s']:.2f}) | {ref['step_s'] / row['step_s']:.2f} "
            f"| {ref['step_cpu_s'] / row['step_cpu_s']:.2f} | {snr} |",
            flush=True,
        )


# A whole cover per path: (DiT path, VAE path); the encoders are the same in every row.
COVER_PATHS = {
    "float32, as diffusers ships": (DIT_PATHS[0], VAE_PATHS[0]),
    "bfloat16 DiT, diffusers' VAE (issue 19's 447 s)": (DIT_PATHS[2], VAE_PATHS[0]),
    "float32, before (auto on a CPU)": (DIT_PATHS[0], VAE_PATHS[1]),
    "bfloat16, before (--dtype bfloat16)": (DIT_PATHS[2], VAE_PATHS[2]),
    "float32, now (CPUs without bfloat16)": (DIT_PATHS[1], VAE_PATHS[1]),
    "bfloat16, now (auto here)": (DIT_PATHS[3], VAE_PATHS[3]),
}


def cover_paths(dit: dict, vae: dict, seconds: float, conditions_s: float, wall: bool) -> dict[str, dict]:
    """Each path's whole cover of `seconds` at the 2B's 24 layers, from the two tables: on a CPU
    their CPU seconds over the threads (the steadier on a shared machine), on a GPU wall seconds;
    8 steps priced per layer, the VAE per second of audio and per decoded frame (the reference
    decodes 20 s tiles, the fast VAE one 30 s tile), plus the encoders' measured seconds, the
    same in every row (bfloat16's; float32's would be more, so float32's ratios are understated)."""
    from generation.acestep.fastvae import DECODE_TILE_FRAMES

    frames, cpu, threads = round(seconds * 25), "" if wall else "_cpu", 1 if wall else torch.get_num_threads()
    rows = {}
    for name, (dit_path, vae_path) in COVER_PATHS.items():
        step = dit["paths"][dit_path][f"step{cpu}_s"] / threads * ARCHES["ace-step-2b"] / dit["layers"]
        row = vae["paths"][vae_path]
        tile = DECODE_TILE_FRAMES if vae_path != VAE_PATHS[0] else 512
        decoded = tiled_length(frames, tile, 64) / round(vae["seconds"] * 25)
        encode_s, decode_s = row[f"encode{cpu}_s"], row[f"decode{cpu}_s"]
        vae_s = (encode_s * seconds / vae["seconds"] + decode_s * decoded) / threads
        rows[name] = {
            "steps_s": TURBO_STEPS * step,
            "vae_s": vae_s,
            "conditions_s": conditions_s,
            "total_s": TURBO_STEPS * step + vae_s + conditions_s,
            "dit_snr_db": dit["paths"][dit_path]["snr_db"],
            "vae_snr_db": row["snr_db"],
        }
    return rows


def print_cover_paths(rows: dict[str, dict], seconds: float) -> None:
    base = rows[next(iter(COVER_PATHS))]["total_s"]
    before = rows["bfloat16, before (--dtype bfloat16)"]["total_s"]
    issue = rows["bfloat16 DiT, diffusers' VAE (issue 19's 447 s)"]["total_s"]
    print(f"\n### Whole 2B cover of {seconds:g} s per path (on a CPU: CPU seconds over the threads)\n")
    print(
        "| path | 8 steps s | VAE s | encoders s | cover s | x float32 diffusers | x issue 19's | "
        "x bf16 before | DiT step dB | VAE dB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        dit_db, vae_db = (
            "exact" if math.isinf(row[key]) else f"{row[key]:.1f}" for key in ("dit_snr_db", "vae_snr_db")
        )
        print(
            f"| {name} | {row['steps_s']:.0f} | {row['vae_s']:.0f} | {row['conditions_s']:.0f} "
            f"| {row['total_s']:.0f} | {base / row['total_s']:.2f} | {issue / row['total_s']:.2f} "
            f"| {before / row['total_s']:.2f} | {dit_db} | {vae_db} |",
            flush=True,
        )


def _mib(parts) -> float:
    modules = [part for part in parts if isinstance(part, torch.nn.Module)]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters()) / 2**20


def dit_weights_mib(arch_name: str, layers: int, dtype: torch.dtype) -> float:
    """A DiT's weights at `layers` layers, counted on the meta device (nothing allocated)."""
    from generation.acestep.architectures import ARCHITECTURES, build_transformer

    with torch.device("meta"):
        dit = build_transformer(dataclasses.replace(ARCHITECTURES[arch_name], dit_layers=layers))
    return sum(p.numel() for p in dit.parameters()) * torch.finfo(dtype).bits / 8 / 2**20


def tiled_length(total: int, chunk: int, overlap: int) -> int:
    """How much input diffusers' Oobleck tiling runs through for `total` (windows overlap)."""
    if total <= chunk:
        return total
    stride = chunk - 2 * overlap
    return sum(
        min(total, (i + 1) * stride + overlap) - max(0, i * stride - overlap)
        for i in range(math.ceil(total / stride))
    )


def vae_cost(vae: dict, seconds: float) -> tuple[float, float]:
    """(encode, decode) seconds for `seconds`, priced by the windows and tiles the VAE runs."""
    rate, frame_rate = 48_000, 25
    encoded = tiled_length(round(seconds * rate), 30 * rate, 2 * rate)
    decoded = tiled_length(round(seconds * frame_rate), 512, 64)
    measured = tiled_length(round(VAE_SECONDS * frame_rate), 512, 64)
    return (
        vae["encode_s"] * encoded / (VAE_SECONDS * rate),
        vae["decode_s"] * decoded / measured,
    )


def _isolated(*child: str, dtype: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.acestep", "--dtype", dtype, "--child", *child]
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(child)} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": load}


def dit_figure(arch: str, seconds: float, dtype: str, on_gpu: bool) -> tuple[dict, list[dict]]:
    """The DiT at its full depth: measured, or extrapolated from shallower runs on the CPU."""
    if arch != "ace-step" or on_gpu:
        run = _isolated("dit", arch, str(ARCHES[arch]), str(seconds), dtype=dtype)
        return run, [run]
    runs = [_isolated("dit", arch, str(layers), str(seconds), dtype=dtype) for layers in XL_LAYERS_CPU]
    low, high = runs
    per_layer = (high["step_s"] - low["step_s"]) / (high["dit_layers"] - low["dit_layers"])
    full = ARCHES[arch]
    torch_dtype = getattr(torch, dtype)
    missing_mib = dit_weights_mib(arch, full, torch_dtype)
    missing_mib -= dit_weights_mib(arch, high["dit_layers"], torch_dtype)
    return {
        **high,
        "dit_layers": full,
        "step_s": high["step_s"] + per_layer * (full - high["dit_layers"]),
        "weights_mib": high["weights_mib"] + missing_mib,
        "extrapolated_from": list(XL_LAYERS_CPU),
    }, runs


def main() -> None:
    args = _arguments()
    if args.child:
        dtype = getattr(torch, args.dtype)
        kind, *rest = args.child
        if kind == "vae":
            figure = measure_vae(dtype)
        elif kind == "vaepaths":
            figure = measure_vae_paths(float(rest[0]))
        elif kind == "ditpaths":
            figure = measure_dit_paths(float(rest[0]))
        else:
            figure = measure_dit(rest[0], int(rest[1]), float(rest[2]), dtype)
        print(json.dumps(figure), flush=True)
        return
    seconds = [float(value) for value in args.seconds.split(",")]
    args.json.write_text(json.dumps(run(seconds, args.dtype, args.vae_seconds, args.paths_only), indent=2))


def run(lengths: list[float], dtype: str, vae_seconds: float | None = None, paths_only: bool = False) -> dict:
    """Every part in a process of its own, a table row per architecture and length; the figures
    (what `python -m benchmarks --only acestep` records, too). The VAE's and the DiT's paths come
    first, and the whole cover per path last (`paths_only`: those alone, without the encoders)."""
    on_gpu = torch.cuda.is_available()
    paths = _isolated("vaepaths", str(vae_seconds or (30.0 if on_gpu else 5.0)), dtype=dtype)
    print_vae_paths(paths)
    dit_paths = _isolated("ditpaths", str(lengths[0]), dtype=dtype)
    print_dit_paths(dit_paths)
    if paths_only:
        covers = cover_paths(dit_paths, paths, lengths[0], 0.0, wall=on_gpu)
        print_cover_paths(covers, lengths[0])
        figures = [paths, dit_paths, {"part": "cover_paths", "seconds": lengths[0], "paths": covers}]
        return {"machine": machine.describe(), "load_after": os.getloadavg()[0], "figures": figures}
    vae = _isolated("vae", dtype=dtype)
    figures = [paths, dit_paths, vae]
    print(f"\n### ACE-Step 1.5 cover, batch 1, {TURBO_STEPS} turbo steps, {dtype}\n")
    print(
        "| architecture | output | total s | RTF | s per DiT step | 8 steps s | encoders s (x2) "
        "| VAE in s | VAE out s | weights MiB | peak MiB (VAE / DiT part) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seconds in lengths:
        encode_s, decode_s = vae_cost(vae, seconds)
        for arch in ARCHES:
            dit, runs = dit_figure(arch, seconds, dtype, on_gpu)
            figures += runs
            row = {
                "arch": arch,
                "seconds": seconds,
                "step_s": dit["step_s"],
                "steps_s": TURBO_STEPS * dit["step_s"],
                "conditions_s": 2 * dit["conditions_s"],  # one cover call, one text-to-music call
                "vae_in_s": encode_s,
                "vae_out_s": decode_s,
                "weights_mib": dit["weights_mib"],  # the whole pipeline, VAE included
                "peak_mib": f"{vae['peak_mib']:.0f} / {dit['peak_mib']:.0f}",
                "xl_from_layers": dit.get("extrapolated_from"),
            }
            row["total_s"] = row["steps_s"] + row["conditions_s"] + encode_s + decode_s
            saving = _vae_saving({**paths, "cover_seconds": seconds}, encode_s, decode_s)
            row["total_fast_vae_s"] = row["total_s"] - saving
            figures.append({"part": "total", **row})
            _print_row(row)
    _print_whole_cover(figures)
    first = next(f for f in figures if f["part"] == "total" and f["arch"] == "ace-step-2b")
    covers = cover_paths(dit_paths, paths, lengths[0], first["conditions_s"], wall=on_gpu)
    print_cover_paths(covers, lengths[0])
    figures.append({"part": "cover_paths", "seconds": lengths[0], "paths": covers})
    return {"machine": machine.describe(), "load_after": os.getloadavg()[0], "figures": figures}


def _vae_saving(paths: dict, encode_s: float, decode_s: float) -> float:
    """Seconds the fast VAE (bf16 decode) saves on a cover, by the paths' measured CPU-time ratios."""
    ref, fast = paths["paths"][VAE_PATHS[0]], paths["paths"][VAE_PATHS[2]]
    from generation.acestep.fastvae import DECODE_TILE_FRAMES

    frames = round(paths["cover_seconds"] * 25)
    tiles = tiled_length(frames, DECODE_TILE_FRAMES, 64) / tiled_length(frames, 512, 64)
    encode_ratio = fast["encode_cpu_s"] / ref["encode_cpu_s"]
    decode_ratio = fast["decode_cpu_s"] / ref["decode_cpu_s"] * tiles  # the paths ran one tile
    return encode_s * (1 - encode_ratio) + decode_s * (1 - decode_ratio)


def _print_whole_cover(figures: list[dict]) -> None:
    print("\n| architecture | output | cover s, reference VAE | cover s, fast VAE | x |")
    print("|---|---|---|---|---|")
    for row in (figure for figure in figures if figure["part"] == "total"):
        ratio = row["total_s"] / row["total_fast_vae_s"]
        print(
            f"| {row['arch']} | {row['seconds']:g} s | {row['total_s']:.0f} | {row['total_fast_vae_s']:.0f} "
            f"| {ratio:.2f} |",
            flush=True,
        )


def _print_row(row: dict) -> None:
    layers = f" (32 layers, from {row['xl_from_layers']})" if row["xl_from_layers"] else ""
    print(
        f"| {row['arch']}{layers} | {row['seconds']:g} s | {row['total_s']:.0f} "
        f"| {row['total_s'] / row['seconds']:.2f} | {row['step_s']:.1f} | {row['steps_s']:.0f} "
        f"| {row['conditions_s']:.1f} | {row['vae_in_s']:.0f} | {row['vae_out_s']:.0f} "
        f"| {row['weights_mib']:.0f} | {row['peak_mib']} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
