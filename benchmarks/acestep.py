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


VAE_PATHS = ("reference float32", "fast float32", "fast, bf16 decode")


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
    paths = {
        VAE_PATHS[0]: (reference, None),
        VAE_PATHS[1]: (fast, None),
        VAE_PATHS[2]: (fast, torch.bfloat16),
    }
    kinds = ("encode", "decode", "encode_cpu", "decode_cpu")
    times: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in paths}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(turns):
        for name, (vae, decode_dtype) in paths.items():
            with torch.inference_mode():
                latents, encode_s, encode_cpu = _timed(lambda vae=vae: vae.encode(audio).latent_dist.mode())
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
        else:
            figure = measure_dit(rest[0], int(rest[1]), float(rest[2]), dtype)
        print(json.dumps(figure), flush=True)
        return
    seconds = [float(value) for value in args.seconds.split(",")]
    args.json.write_text(json.dumps(run(seconds, args.dtype, args.vae_seconds), indent=2))


def run(lengths: list[float], dtype: str, vae_seconds: float | None = None) -> dict:
    """Every part in a process of its own, a table row per architecture and length; the figures
    (what `python -m benchmarks --only acestep` records, too). The VAE's paths come first."""
    on_gpu = torch.cuda.is_available()
    paths = _isolated("vaepaths", str(vae_seconds or (30.0 if on_gpu else 5.0)), dtype=dtype)
    print_vae_paths(paths)
    vae = _isolated("vae", dtype=dtype)
    figures = [paths, vae]
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
