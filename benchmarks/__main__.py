"""python -m benchmarks [--quick] [--only PARTS] [--json PATH]

PARTS: cpu,attention,decode,pipeline,batching,worker,bot,threads,workers,acestep (comma separated;
all by default). On a lent GPU run benchmarks/gpu_check.sh, which picks the parts that fit its time.

Prints Markdown tables (ready for benchmarks/RESULTS.md) and writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import machine

PARTS = (
    "cpu",
    "attention",
    "decode",
    "pipeline",
    "batching",
    "worker",
    "bot",
    "threads",
    "workers",
    "acestep",
)
# Groups taking turns in one process each; float32 beside the CPU default (int8), as the target asks.
CPU_PRECISIONS = ("float32,int8", "bfloat16")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="shorter windows on the CPU (10 s instead of 30 s)"
    )
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--batches", default="1,4,8", help="candidates per batch (each with guidance)")
    parser.add_argument(
        "--reference-batches", default=None, help="batches for transformers' generate (default: --batches)"
    )
    parser.add_argument("--configs", default="", help="decode: only these configs (e.g. melody)")
    parser.add_argument("--window-s", type=float, default=None, help="decode: every window this long")
    parser.add_argument(
        "--deadline-s", type=float, default=None, help="start no decode row that would end past this"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/last-run.json"), help="where to write figures"
    )
    args = parser.parse_args(argv)
    args.batch_list = [int(b) for b in args.batches.split(",") if b]
    args.reference_list = [int(b) for b in (args.reference_batches or args.batches).split(",") if b]
    return args


def _decode_configs(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """(name, model spec, window seconds): what runs here, and the real architectures on a GPU;
    `--configs` keeps the named ones, `--window-s` sets every window."""
    configs = [("debug", "debug", 30.0), ("mid", "random:mid", 10.0 if args.quick else 30.0)]
    if torch.cuda.is_available():
        configs += [("melody", "random:melody", 30.0), ("melody-large", "random:melody-large", 30.0)]
    if args.configs:
        wanted = args.configs.split(",")
        configs = [c for c in configs if c[0] in wanted]
    return [(name, spec, args.window_s or seconds) for name, spec, seconds in configs]


class Results:
    """Every figure so far, written to the JSON file after each row and part, and the time left."""

    def __init__(self, path: Path, deadline_s: float | None) -> None:
        self.path = path
        self.data: dict[str, object] = {}
        self.started = time.perf_counter()
        self.deadline_s = deadline_s
        self.longest_row_s = 0.0

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".part")
        temporary.write_text(json.dumps(self.data, indent=2) + "\n")
        temporary.replace(self.path)  # a kill mid-write leaves the last whole file

    def row_took(self, seconds: float) -> None:
        self.longest_row_s = max(self.longest_row_s, seconds)

    def time_for(self, row: str) -> bool:
        """Whether `row` may start: with a deadline, only if the longest row so far still fits."""
        if self.deadline_s is None:
            return True
        left = self.deadline_s - (time.perf_counter() - self.started)
        if left > self.longest_row_s:
            return True
        self.data.setdefault("skipped", []).append(row)
        self.write()
        print(
            f"| {row}: skipped, {max(left, 0):.0f} s left of the {self.deadline_s:g} s budget |", flush=True
        )
        return False


def run_decode(args: argparse.Namespace, results: Results) -> None:
    """Fast rows first (the figures a GPU run is for), then reference rows; each row is written to
    the JSON as soon as it is measured, so a run cut short by its time limit keeps what it did."""
    from benchmarks.decode import SPEC_BANDWIDTH, bandwidth, floor_ms, measure, measure_isolated
    from generation.musicgen.models import load_model

    gpu_bandwidth = bandwidth(torch.device("cuda")) if torch.cuda.is_available() else None
    print("\n### Decode loop: fast (Restyle's loop) and reference (transformers generate)\n")
    print(
        "| config | backend | batch | window | ms/step | s per 30 s | RTF | first run s | capture s "
        "| peak MiB | floor ms/step | x floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    figures: list[dict] = results.data.setdefault("decode", [])
    for name, spec, seconds in _decode_configs(args):
        # On the GPU the allocator reports each run's peak; on the CPU each run gets its own process.
        lm = load_model(spec) if gpu_bandwidth else None
        for backend, batches in (("fast", args.batch_list), ("reference", args.reference_list)):
            for batch in batches:
                if not results.time_for(f"{name} {backend} batch {batch}"):
                    continue
                clock = time.perf_counter()
                if lm is None:
                    figure = measure_isolated(spec, backend, batch, seconds, name)
                else:
                    figure = measure(lm, backend, batch, seconds, name)
                    figure.floor_ms = floor_ms(lm, batch, seconds, gpu_bandwidth)
                results.row_took(time.perf_counter() - clock)
                figures.append(asdict(figure))
                results.write()  # before the row is printed: whoever sees the row finds it saved
                _print_decode_row(figure)
        del lm
    _print_speedups(figures)
    if gpu_bandwidth:
        name = torch.cuda.get_device_name()
        spec_bw = next((bw for key, bw in SPEC_BANDWIDTH.items() if key in name), None)
        results.data["gpu_bandwidth_tbs"] = gpu_bandwidth / 1e12
        print(
            f"\nMeasured copy bandwidth {gpu_bandwidth / 1e12:.2f} TB/s"
            + (f" (spec {spec_bw / 1e12:.2f})" if spec_bw else "")
        )


def _print_decode_row(f) -> None:
    floor = f"{f.floor_ms:.2f}" if f.floor_ms else "n/a (CPU)"
    ratio = f"{f.floor_ratio:.2f}" if f.floor_ratio else "n/a"
    print(
        f"| {f.config} | {f.backend} | {f.batch} | {f.seconds:g} s | {f.ms_per_step:.2f} | {f.s_per_30s:.1f} "
        f"| {f.rtf:.3f} | {f.first_run_s:.1f} | {f.capture_s:.1f} | {f.peak_mib:.0f} | {floor} | {ratio} |",
        flush=True,
    )


def _print_speedups(figures: list[dict]) -> None:
    by_key = {(f["config"], f["backend"], f["batch"]): f for f in figures}
    for (config, backend, batch), fast in by_key.items():
        reference = by_key.get((config, "reference", batch))
        if backend == "fast" and reference:
            ratio = reference["ms_per_step"] / fast["ms_per_step"]
            print(f"\n{config}, batch {batch}: fast {ratio:.2f}x reference (ms per step, same run)")


def run_cpu(quick: bool) -> dict:
    """The real melody architecture on the CPU (the mid-size one with --quick): float32 and int8 in
    one process taking turns step by step (the ratio the target is about), bfloat16 in another."""
    from benchmarks import cpu

    if torch.cuda.is_available():
        return {}
    config, spec = ("mid", "random:mid") if quick else ("melody", "random:melody")
    print(f"\n### CPU decode step: {config} architecture (random weights), fast loop, guidance on\n")
    print(
        "| precision | batch | ms/step at 0 s / 10 s | ms/step, 30 s window mean | floor ms | x floor "
        "| speed-up over float32, 0 s / mean | s per 30 s candidate | model GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [row for group in CPU_PRECISIONS for row in cpu.measure_isolated(spec, config, group, [1, 4])]
    base = {row.batch: row for row in rows if row.precision == "float32"}
    for row in rows:
        fp32 = base[row.batch]
        print(
            f"| {row.precision} | {row.batch} | {row.ms_start:.0f} / {row.ms_10s:.0f} | {row.ms_mean:.0f} "
            f"| {row.floor_ms_mean:.0f} | {row.ms_mean / row.floor_ms_mean:.2f} "
            f"| {fp32.ms_start / row.ms_start:.2f}x / {fp32.ms_mean / row.ms_mean:.2f}x "
            f"| {row.s_per_30s_candidate:.0f} | {row.model_gib:.2f} |",
            flush=True,
        )
    print(
        f"\ntorch threads {rows[0].threads}; native int8 kernel: {any(r.native_int8 for r in rows)}; "
        "read bandwidth measured in each process: "
        + ", ".join(dict.fromkeys(f"{r.bandwidth_gbs:.1f}" for r in rows))
        + " GB/s; peak resident of the process after each batch: "
        + ", ".join(f"{r.precision} b{r.batch} {r.peak_gib:.1f}" for r in rows)
        + " GiB (float32 and int8 share one process)"
    )
    figures: dict = {"steps": [asdict(row) for row in rows], "codec": cpu.run_isolated(["codec", spec])}
    codec = figures["codec"]
    print(
        "\nEnCodec decoding (chunked, 30 s chunks) over the resident model: "
        f"30 s +{codec['decode_30s_gib']:.2f} GiB, "
        f"300 s +{codec['decode_300s_gib']:.2f} GiB ({codec['decode_300s_s']:.0f} s)"
    )
    figures["distance"] = _distances(cpu, quick)
    return figures


def _distances(cpu, quick: bool) -> dict:
    print("\n| architecture | precision | steps | mean KL | max KL | top-1 agreement | top-250 overlap |")
    print("|---|---|---|---|---|---|---|")
    found = {"mid": cpu.run_isolated(["distance", "random:mid", "float16,bfloat16,int8", "1.0"])}
    if not quick:  # two melody models at a time at most: one process per precision
        found["melody"] = {}
        for name in ("bfloat16", "int8"):
            found["melody"].update(cpu.run_isolated(["distance", "random:melody", name, "0.5"]))
    for config, by_name in found.items():
        for name, d in by_name.items():
            print(
                f"| {config} | {name} | {d['steps']} | {d['mean_kl']:.2e} | {d['max_kl']:.2e} "
                f"| {d['top1_agreement']:.3f} | {d['topk_overlap']:.3f} |"
            )
    return found


def run_pipeline() -> dict:
    from benchmarks.pipeline import finishing, seed_reading

    figures = {**seed_reading(), **finishing()}
    print("\n### Around the model\n")
    print("| step | seconds |\n|---|---|")
    print(
        "| decode + resample + chroma, 2-minute 44.1 kHz stereo mp3 "
        f"| {figures['decode_chroma_2min_mp3_s']:.3f} |"
    )
    print(
        "| loudness + fade + mp3 and flac encoding, four 30 s candidates "
        f"| {figures['master_encode_4x30s_s']:.3f} |"
    )
    return figures


def run_batching(quick: bool) -> list[dict]:
    from benchmarks.pipeline import batching
    from generation.musicgen.engine import MusicGenEngine
    from generation.musicgen.models import load_model

    print("\n### Batching jobs together (four one-candidate jobs, different prompts, fast backend)\n")
    print("| config | window | alone cand./min | batched cand./min | speed-up |\n|---|---|---|---|---|")
    figures = []
    for name, spec, seconds in (("debug", "debug", 30.0), ("mid", "random:mid", 5.0 if quick else 10.0)):
        figure = {
            "config": name,
            **batching(MusicGenEngine(load_model(spec), "fast"), jobs=4, seconds=seconds),
        }
        print(
            f"| {name} | {seconds:g} s | {figure['alone_candidates_per_min']:.1f} "
            f"| {figure['batched_candidates_per_min']:.1f} | {figure['speedup']:.2f}x |",
            flush=True,
        )
        figures.append(figure)
    return figures


def run_worker(quick: bool) -> dict:
    from benchmarks.worker import worker_throughput

    gpu_seconds = 2.0 if quick else 5.0
    figures = worker_throughput(gpu_seconds=gpu_seconds)
    print(
        f"\n### The GPU worker (simulated GPU: {gpu_seconds:g} s per job; {figures['jobs']} jobs of four "
        "30 s candidates, real finishing)\n"
    )
    print("| finishing | jobs per hour | GPU busy |\n|---|---|---|")
    for name, key in (("on the GPU thread", "inline"), ("on its own thread", "overlapped")):
        print(f"| {name} | {figures[key + '_jobs_per_hour']:.0f} | {figures[key + '_gpu_busy']:.0%} |")
    print(f"\nSpeed-up: {figures['speedup']:.2f}x")
    return figures


def run_bot() -> dict:
    from benchmarks.bot_overhead import bot_overhead

    figures = bot_overhead()
    print("\n### Bot overhead per job (instant engine: no model work; 30 s stereo mp3 seed, 2 candidates)\n")
    print("| figure | seconds |\n|---|---|")
    print(
        "| command to acknowledgement, median / max "
        f"| {figures['ack_median_s']:.3f} / {figures['ack_max_s']:.3f} |"
    )
    print(f"| command to posted results, median | {figures['overhead_per_job_median_s']:.3f} |")
    return figures


def run_workers(quick: bool) -> dict:
    from benchmarks.ceilings import ceilings
    from benchmarks.workers import workers_throughput

    gpu_seconds, jobs = (2.0, 8) if quick else (5.0, 12)
    figures = workers_throughput(jobs=jobs, gpu_seconds=gpu_seconds)
    print(
        f"\n### Worker pools (simulated GPU: {gpu_seconds:g} s per job; {jobs} jobs of four "
        f"{figures['seconds']:g} s candidates, real finishing; Ray workers on a local Ray instance "
        "on this machine)\n"
    )
    local = figures["local_jobs_per_hour"]
    print("| pool | jobs per hour | against one Ray worker | against the local worker |\n|---|---|---|---|")
    print(f"| local worker | {local:.0f} | | 1.00x |")
    for count, rate in figures["ray_jobs_per_hour"].items():
        ratio = figures["speedup_over_one_ray_worker"][count]
        name = f"{count} Ray worker{'s' if count > 1 else ''}"
        print(f"| {name} | {rate:.0f} | {ratio:.2f}x | {rate / local:.2f}x |")
    print(
        f"\nTransport overhead, one job of four {figures['transport_seconds']:g} s candidates alone, "
        f"instant GPU: {figures['transport_ms_per_job']:.0f} ms "
        f"({figures['ray_s_per_job']:.3f} s through a Ray worker, {figures['local_s_per_job']:.3f} s locally)"
    )
    limits = ceilings()
    figures["ceilings"] = limits
    print("\n### Where the one bot process becomes the limit (instant GPU)\n")
    print("| part | per job | jobs per hour |\n|---|---|---|")
    sqlite = f"{limits['sqlite_ms_per_job']:.1f} ms | {limits['sqlite_jobs_per_hour']:.0f}"
    print(f"| SQLite: one job's writes | {sqlite} |")
    print(
        f"| object store: one job's results ({limits['result_mb_per_job']:.1f} MB) to the bot "
        f"| {limits['object_store_ms_per_job']:.1f} ms | {limits['object_store_jobs_per_hour']:.0f} |"
    )
    print(
        f"| the bot's own CPU (admission, files, posting, offline Discord) "
        f"| {limits['bot_cpu_s_per_job']:.3f} s | {limits['bot_jobs_per_hour']:.0f} |"
    )
    return figures


def run_threads(quick: bool) -> dict:
    from benchmarks.threads import threads_benchmark

    figures = threads_benchmark(seconds=2.0 if quick else 4.0, repeats=2 if quick else 3)
    print(
        f"\n### Thread settings ({figures['spec']}, one {figures['seconds']:g} s candidate generated and "
        f"encoded; median of runs in processes of their own, alternating; {figures['cores']} cores)\n"
    )
    print("| machine | torch default s | Restyle's setting s | speed-up |\n|---|---|---|---|")
    for label, what in (("idle", "idle"), ("loaded", f"{figures['busy_processes']} busy processes beside")):
        print(
            f"| {what} | {figures[label + ' torch default s']:.2f} | {figures[label + ' restyle s']:.2f} "
            f"| {figures[label + ' speed-up']:.2f}x |"
        )
    print(
        f"\ntorch threads: default {figures['torch default threads']}, Restyle {figures['restyle threads']}"
    )
    return figures


def run_acestep(quick: bool) -> dict:
    """ACE-Step 1.5 cover with the real shapes (random weights), beside MusicGen's figures above:
    seconds per 30 s (and 120 s) of output. See `benchmarks.acestep` for how each part is timed."""
    from benchmarks import acestep

    return acestep.run([30.0] if quick else [30.0, 120.0], "bfloat16")  # ACE-Step's own dtype


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"benchmarks: unknown part {unknown[0]!r}; parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    about = machine.describe()
    print(
        f"## {about['date']} · {about['gpu'] or about['cpu']} · {about['cores']} cores "
        f"· torch {about['torch']}"
    )
    results = Results(args.json, args.deadline_s)
    results.data["machine"] = about
    results.write()
    runs = {
        "cpu": lambda: run_cpu(args.quick),
        "attention": lambda: run_attention(args.batch_list),
        "pipeline": run_pipeline,
        "batching": lambda: run_batching(args.quick),
        "worker": lambda: run_worker(args.quick),
        "bot": run_bot,
        "threads": lambda: run_threads(args.quick),
        "workers": lambda: run_workers(args.quick),
        "acestep": lambda: run_acestep(args.quick),
    }
    for part in PARTS:
        if part not in parts:
            continue
        if part == "decode":
            run_decode(args, results)
        else:
            results.data[part] = runs[part]()
        results.write()
    print(f"\nFigures written to {args.json}")
    return 0


def run_attention(batches: list[int]) -> list[dict]:
    """SDPA's kernels under each mask at the decode step's shape (a GPU only)."""
    if not torch.cuda.is_available():
        return []
    from benchmarks import attention

    return attention.run(batches)


if __name__ == "__main__":
    sys.exit(main())
