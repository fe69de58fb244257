"""python -m benchmarks.loop_seams [--candidates N] [--bars N] [--abc TUNE.abc ...] [--soundfont SF2]

Seam figures (see `generation.audio.seam`) of loops made by `generation.loops`, against cuts of the very
same generated audio without the fold: at N bars ("hand cut") and half a beat later ("off-beat").
Each row is the median over candidates. The debug models' audio is close to stationary noise, so
their rows say little about music; the synthetic rows (a piece that never returns to its start,
with a click on every beat) show what the fold does where cuts matter.

Real music (`--abc`): public-domain fiddle tunes from Ryan's Mammoth Collection (1883), as ABC
files in music21's corpus (`pip download music21 --no-deps`, then unzip
`music21/corpus/ryansMammoth/*.abc`), rendered with Debian's abc2midi (package abcmidi) and
fluidsynth with the Fluid R3 General MIDI soundfont (package fluid-soundfont-gm, MIT licence). A reel
in 2/4 at a quarter = 120 has one-second bars; its 8-bar A part is played twice, so the music after
the loop's 8 bars is the same tune again, played on: what a MusicGen generation conditioned on a
looping melody gives. Rows: the 8-bar loop cut by hand, off the beat, and folded (the 2-bar overhang
laid over the head); then an intro + loop file (one bar of intro, the loop's last beat folded into
the intro's: `generation.loops`) with its wrap and its intro -> loop boundary measured the same way,
against the same boundary spliced (an intro bar from the tune's B part put before the loop).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np

from generation.audio.decode import SeedAudio
from generation.audio.seam import SeamFigures, seam_figures
from generation.audio.tempo import Tempo
from generation.loops import LoopOptions, LoopPlan, fold, intro_seam, loop_melody, loop_prompt, plan_loop
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


SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
REEL_BARS = 8  # a reel's A part
REEL_BAR = RATE  # 2/4 at a quarter = 120: one second


def render_abc(abc: Path, soundfont: Path) -> np.ndarray:
    """`(2, samples)` of an ABC tune at a quarter = 120, with its repeats, on a fiddle (GM 41)."""
    text = re.sub(r"^Q:.*\n", "", abc.read_text(errors="replace"), flags=re.M)
    text = re.sub(r"^(K:.*)$", "Q:1/4=120\n%%MIDI program 40\n\\1", text, count=1, flags=re.M)
    with tempfile.TemporaryDirectory() as folder:
        tune, midi, out = Path(folder) / "tune.abc", Path(folder) / "tune.mid", Path(folder) / "tune.wav"
        tune.write_text(text)
        subprocess.run(["abc2midi", str(tune), "-o", str(midi)], check=True, capture_output=True)
        fluid = ["fluidsynth", "-ni", "-g", "0.6", "-r", str(RATE), "-F", str(out), str(soundfont), str(midi)]
        subprocess.run(fluid, check=True, capture_output=True)
        with wave.open(str(out)) as file:
            frames = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
            channels = file.getnchannels()
    return (frames.reshape(-1, channels).T / 32768).astype(np.float32)


def first_note(audio: np.ndarray) -> int:
    """Where the music starts: the first sample above a hundredth of the peak."""
    loud = np.flatnonzero(np.abs(audio).max(axis=0) > 0.01 * np.abs(audio).max())
    return int(loud[0])


def real_rows(abc: Path, soundfont: Path) -> dict[str, list[SeamFigures]] | None:
    """The tune's cuts, or None for a tune that is not a 2/4 reel with a repeated 8-bar A part."""
    text = abc.read_text(errors="replace")
    if not re.search(r"^M: *2/4", text, re.M):
        return None
    audio = render_abc(abc, soundfont)
    pickup = _pickup_samples(text)
    start = first_note(audio) + pickup  # the first downbeat
    tempo = Tempo(120.0, 2, start / RATE, 1.0, False)
    loop = REEL_BARS * REEL_BAR
    if audio.shape[-1] < start + 2 * loop + 3 * REEL_BAR:
        return None
    plan = LoopPlan(
        tempo, RATE, REEL_BARS, loop, 0, loop, 2 * REEL_BAR, RATE // 2, loop + 2 * REEL_BAR + RATE // 4
    )
    piece = audio[:, start:]
    rows = {
        "hand cut at 8 bars": seam_figures(piece[:, :loop], REEL_BARS),
        "off-beat cut": seam_figures(piece[:, : loop + RATE // 4], REEL_BARS),
        "folded": seam_figures(fold(piece, plan), REEL_BARS),
    }
    rows |= _intro_rows(piece, plan)
    return {name: [figures] for name, figures in rows.items()}


def _intro_rows(piece: np.ndarray, plan: LoopPlan) -> dict[str, SeamFigures]:
    """One bar of intro (the tune's first), the loop its next 8 bars folded into it; and spliced."""
    intro_plan = replace(plan, intro_bars=1, intro_samples=REEL_BAR, overhang_samples=0)
    made = fold(piece, intro_plan)
    b_part = piece[:, 2 * plan.loop_samples + REEL_BAR : 2 * plan.loop_samples + 2 * REEL_BAR]
    spliced = np.concatenate([b_part, made[:, REEL_BAR:]], axis=-1)
    return {
        "intro + loop: the loop's wrap": seam_figures(made[:, REEL_BAR:], REEL_BARS),
        "intro + loop: intro -> loop boundary": intro_seam(made, intro_plan),
        "spliced intro -> loop boundary": intro_seam(spliced, intro_plan),
    }


def _pickup_samples(text: str) -> int:
    """The anacrusis before the first bar line, in samples (quarter = 120; L: unit, triplets)."""
    unit = re.search(r"^L: *1/(\d+)", text, re.M)
    unit_s = 4 / int(unit.group(1)) * 0.5 if unit else 0.25
    body = text[re.search(r"^K:.*$", text, re.M).end() :]
    head = re.sub(r'"[^"]*"|![^!]*!|\{[^}]*\}|[uv.~)]|\((?!\d)', "", body.split("|")[0].replace("\\", ""))
    length, triplet = 0.0, 0
    for match in re.finditer(r"\((\d)|[A-Ga-gz][,']*(\d*)(/?)(\d*)", head):
        if match.group(1):
            triplet = int(match.group(1))
            continue
        number, slash, denominator = match.group(2), match.group(3), match.group(4)
        value = float(number or 1) / (float(denominator or 2) if slash else 1)
        if triplet:
            value, triplet = value * 2 / 3, triplet - 1
        length += value
    return round(length * unit_s * RATE) % REEL_BAR  # a whole first bar is no pickup


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
    parser.add_argument("--abc", type=Path, nargs="*", default=[], help="ABC tunes (reels in 2/4) to render")
    parser.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    parser.add_argument("--only-real", action="store_true", help="skip the debug-model and synthetic rows")
    args = parser.parse_args()
    if args.abc:
        rows: dict[str, list[SeamFigures]] = {}
        used = []
        for abc in args.abc:
            tune = real_rows(abc, args.soundfont)
            if tune is not None:
                used.append(abc.stem)
                for name, figures in tune.items():
                    rows.setdefault(name, []).extend(figures)
        print_table(f"real music: {len(used)} reels from Ryan's Mammoth Collection (1883), Fluid R3 GM", rows)
        print("\ntunes: " + ", ".join(used))
    if args.only_real:
        return
    for spec in ("debug", "debug-stereo"):
        print_table(
            f"{spec}, {args.bars} bars at 120 BPM, {args.candidates} candidates",
            model_rows(spec, args.candidates, args.bars),
        )
    print_table(f"synthetic evolving piece, {args.bars} bars at 120 BPM", synthetic_rows(args.bars))


if __name__ == "__main__":
    main()
