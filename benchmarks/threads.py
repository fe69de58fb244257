"""Thread settings under CPU contention: torch's default against Restyle's, for one fixed job.

Each run is a process of its own (torch's thread pools are set once per process): it loads the model,
warms up, then times one fixed job (generation and the candidate's mastering and encoding on the
finishing thread, as the command line's batch does). Runs of the two settings alternate, beside
`busy` processes that spin on a core each, and again on an idle machine; the ratio of medians is
what the machine's noise cannot move much.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import sys
import time

CHILD = """
import json, sys, time
import torch
threads = json.loads(sys.argv[1])
if threads is not None:
    from generation.threads import apply_threads, plan_threads
    apply_threads(plan_threads(threads))
from benchmarks.threads import one_job
print(json.dumps({"seconds": one_job(sys.argv[2], float(sys.argv[3])), "threads": torch.get_num_threads()}))
"""


def one_job(spec: str, seconds: float) -> float:
    """Seconds for one candidate of `seconds`, generated then finished on a thread of its own."""
    import numpy as np

    from generation.audio.decode import SeedAudio
    from generation.finishing import FinishingThread
    from generation.musicgen.engine import MusicGenEngine
    from generation.musicgen.models import load_model
    from generation.pipeline import RestyleOptions, restyle
    from generation.render import render_candidates

    engine = MusicGenEngine(load_model(spec, device="cpu"), "fast")
    rate = engine.lm.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    seed = SeedAudio(tone, rate, "0" * 64, "sine")
    options = RestyleOptions(candidates=1, seed=1)
    restyle(engine, seed, "warm-up", RestyleOptions(candidates=1, seed=0, duration_s=1.0))
    started = time.perf_counter()
    with FinishingThread(max_pending=1) as finishing:
        result = restyle(engine, seed, "lofi piano", options)
        finishing.submit(
            lambda: render_candidates(result, engine, seed, name="x", format_name="mp3")
        ).result()
    return time.perf_counter() - started


def _spin() -> None:
    while True:
        pass


def _run_child(threads: int | None, spec: str, seconds: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(threads), spec, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _alternate(settings: dict[str, int | None], spec: str, seconds: float, repeats: int) -> dict[str, list]:
    runs: dict[str, list] = {name: [] for name in settings}
    for _ in range(repeats):
        for name, threads in settings.items():
            runs[name].append(_run_child(threads, spec, seconds))
    return runs


def threads_benchmark(
    spec: str = "random:mid", seconds: float = 4.0, repeats: int = 3, busy: int = 2
) -> dict:
    from generation.threads import available_cores, plan_threads

    settings = {"torch default": None, "restyle": plan_threads().torch_threads}
    figures: dict = {"spec": spec, "seconds": seconds, "cores": available_cores(), "busy_processes": busy}
    idle = _alternate(settings, spec, seconds, repeats)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for process in spinners:
        process.start()
    try:
        loaded = _alternate(settings, spec, seconds, repeats)
    finally:
        for process in spinners:
            process.terminate()
            process.join()
    for label, runs in (("idle", idle), ("loaded", loaded)):
        for name, results in runs.items():
            figures[f"{label} {name} s"] = statistics.median(r["seconds"] for r in results)
            figures[f"{name} threads"] = results[0]["threads"]
        figures[f"{label} speed-up"] = figures[f"{label} torch default s"] / figures[f"{label} restyle s"]
    return figures
