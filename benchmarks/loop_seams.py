"""python -m benchmarks.loop_seams [--candidates N] [--bars N]

Seam figures (see `generation.audio.seam`) of loops made by `generation.loops`, against cuts of the very
same generated audio without the fold: at N bars ("hand cut") and half a beat later ("off-beat").
Each row is the median over candidates. The debug models' audio is close to stationary noise, so
their rows say little about music; the synthetic rows (a piece that never returns to its start,
with a click on every beat) show what the fold does where cuts matter.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import numpy as np

from generation.audio.decode import SeedAudio
from generation.audio.seam import SeamFigures, seam_figures
from generation.loops import LoopOptions, LoopPlan, fold, loop_melody, loop_prompt, plan_loop
from generation.musicgen.engine import MusicGenEngine
from generation.musicgen.models import load_model
from generation.pipeline import make_job
from generation.results import RestyleOptions
from tests.generation.audio.loop_audio import click_track, evolving_piece

RATE = 32_000
FIGURES = ("flux_ratio", "flux_ratio_bar_lines", "flux_percentile", "jump_ratio")


def cuts(generated: np.ndarray, plan: LoopPlan) -> dict[str, np.ndarray]:
    half_beat = round(plan.tempo.beat_s * RATE / 2)
    return {
        "folded": fold(generated, plan),
        "hand cut at N bars": generated[:, : plan.loop_samples],
        "off-beat cut": generated[:, : plan.loop_samples + half_beat],
    }


def model_rows(spec: str, candidates: int, bars: int) -> dict[str, list[SeamFigures]]:
    engine = MusicGenEngine(load_model(spec, device="cpu"))
    seed = SeedAudio(click_track(4 + 2 * bars, RATE), RATE, "0" * 64, "benchmark")
    options = RestyleOptions(duration_s=2.0 * bars, seed=11, candidates=candidates)
    plan = plan_loop(seed, options, LoopOptions(), frame_rate=engine.frame_rate)
    job_options = replace(options, duration_s=plan.generated_s, max_duration_s=plan.generated_s)
    job = make_job(
        engine,
        seed,
        loop_prompt("lofi piano", plan, LoopOptions()),
        job_options,
        loop_melody(seed.samples, plan, engine.window_s),
    )
    rows: dict[str, list[SeamFigures]] = {}
    for audio in engine.generate(job.job):
        for name, loop in cuts(audio, plan).items():
            rows.setdefault(name, []).append(seam_figures(loop, plan.bars))
    return rows


def synthetic_rows(bars: int) -> dict[str, list[SeamFigures]]:
    from generation.audio.tempo import Tempo

    loop = bars * 2 * RATE
    plan = LoopPlan(
        Tempo(120.0, 4, 0.0, 1.0, False),
        RATE,
        bars,
        loop,
        0,
        loop,
        2 * RATE,
        RATE // 2,
        loop + 2 * RATE + 8000,
    )
    generated = evolving_piece(plan.generated_samples / RATE, RATE)
    return {name: [seam_figures(audio, bars)] for name, audio in cuts(generated, plan).items()}


def print_table(title: str, rows: dict[str, list[SeamFigures]]) -> None:
    print(f"\n### {title}\n")
    print("| cut | " + " | ".join(FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    for name, figures in rows.items():
        medians = [statistics.median(getattr(f, figure) for f in figures) for figure in FIGURES]
        print(f"| {name} | " + " | ".join(f"{value:.3f}" for value in medians) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loop_seams", description=__doc__)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--bars", type=int, default=4)
    args = parser.parse_args()
    for spec in ("debug", "debug-stereo"):
        print_table(
            f"{spec}, {args.bars} bars at 120 BPM, {args.candidates} candidates",
            model_rows(spec, args.candidates, args.bars),
        )
    print_table(f"synthetic evolving piece, {args.bars} bars at 120 BPM", synthetic_rows(args.bars))


if __name__ == "__main__":
    main()
