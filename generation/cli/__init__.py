"""`restyle`: the engine at a desk. One theme, several styles, several tracks, with a progress bar.

Bad input or options end with one line on stderr and exit code 2; Ctrl-C cancels at the next step.
Parsing imports nothing heavy (no torch, no transformers): `--help` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from generation import catalog
from generation.cli.numbers import option
from generation.errors import RestyleError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
FORMAT_NAMES = ("wav", "flac", "mp3", "ogg")
DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DESCRIPTION = (
    "Restyle a seed track: keep its melody and render it in the style you describe, at the seed's "
    "length, with MusicGen-melody (the default; CC-BY-NC 4.0 weights, non-commercial use only) or "
    "ACE-Step 1.5 cover (--model ace-step; MIT weights, commercial use allowed; keeps rhythm and "
    "structure too). No weights yet? --model debug or debug-ace runs a tiny random model offline "
    "(noise, not music) to try it out."
)
# ACE-Step's `audio_cover_strength`: upstream's default (generation.acestep.params.CoverParams).
DEFAULT_STRENGTH = 1.0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _device(text: str) -> str:
    if not DEVICE_NAME.match(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def _name(text: str) -> str:
    try:
        return catalog.check_output_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="restyle", description=DESCRIPTION)
    _add_verbose(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (_add_generate, _add_batch, _add_download):
        _add_verbose(add(commands), default=argparse.SUPPRESS)  # -v before or after the command
    return parser


def _add_verbose(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log each step (threads, model, files), and show tracebacks",
    )


def _add_generate(commands) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "generate",
        help="restyle one seed track with one prompt",
        description="Render SEED's melody in the style PROMPT describes, as one or more candidate tracks.",
    )
    command.add_argument(
        "seed_track", metavar="SEED", type=Path, help="the seed: mp3, wav, flac, ogg, opus, m4a..."
    )
    command.add_argument(
        "prompt", metavar="PROMPT", help='the style, e.g. "serene ambient piano, gentle chimes"'
    )
    command.add_argument(
        "-n",
        "--candidates",
        type=option("candidates"),
        default=1,
        help="how many candidates (default 1, up to 8)",
    )
    command.add_argument(
        "--duration", type=option("duration"), help="length in seconds (default: the seed's length)"
    )
    command.add_argument(
        "--seed", type=option("seed"), help="random seed; candidate i uses SEED+i-1 (default: random)"
    )
    command.add_argument(
        "--name",
        type=_name,
        help="file name for the outputs, without folder or extension (default: from the seed and prompt); "
        "several candidates add -1, -2...",
    )
    _add_shared(command)
    return command


def _add_batch(commands) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "batch",
        help="one seed, several named prompts, from a TOML file",
        description="Generate one track per name in TRACKS.toml, all from the same seed. "
        "See docs/cli.md for the file's format; options given here override the file's. "
        "Tracks already written by an earlier run (same prompt) are skipped; --force makes them again.",
    )
    command.add_argument("tracks_file", metavar="TRACKS.toml", type=Path, help="the batch file")
    _add_shared(command, in_batch=True)
    return command


def _add_download(commands) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "download",
        help="fetch model weights (and htdemucs, for stems) into the Hugging Face cache",
        description="Fetch weights ahead of time, for Docker images and offline hosts: the model at its "
        "pinned commit (safetensors only) and htdemucs, the stem separator.",
    )
    command.add_argument(
        "model",
        nargs="?",
        default=catalog.DEFAULT_MODEL,
        help=f"model to fetch (ace-step for ACE-Step 1.5): {catalog.models_help()}",
    )
    command.add_argument("--revision", help="a commit, branch or tag instead of the pinned commit")
    command.add_argument(
        "--no-stems",
        action="store_true",
        help="skip the htdemucs stem-separation weights (ACE-Step never needs them)",
    )
    command.add_argument("--cache-dir", type=Path, help="Hugging Face cache folder (default: HF_HOME's)")
    return command


def _add_shared(command, *, in_batch: bool = False) -> None:
    # In batch, None means "as the file says": the file's settings fill what the command line leaves.
    model = command.add_argument_group("model")
    model.add_argument(
        "--model", default=None if in_batch else catalog.DEFAULT_MODEL, help=catalog.models_help()
    )
    model.add_argument("--revision", help="load the model at this commit, branch or tag (default: its pin)")
    model.add_argument(
        "--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)"
    )
    model.add_argument(
        "--dtype", default="auto", help="auto, float32, bfloat16, float16, int8 (default auto)"
    )
    model.add_argument("--backend", default="auto", choices=("auto", "fast", "reference"), help="decode loop")
    model.add_argument(
        "--threads",
        type=option("threads"),
        help="CPU threads for the model (default: the cores less one, which mastering and encoding use)",
    )
    model.add_argument("--offline", action="store_true", help="use only the Hugging Face cache")
    model.add_argument("--cache-dir", type=Path, help="Hugging Face cache folder")
    model.add_argument(
        "--no-stems",
        action="store_true",
        help="read the melody from the whole mix instead of vocals + other (htdemucs; on by default, "
        "as MusicGen-melody was trained)",
    )
    out = command.add_argument_group("output")
    out.add_argument("-o", "--output", type=Path, default=None if in_batch else Path("."), help="folder")
    out.add_argument(
        "--format", choices=FORMAT_NAMES, default=None if in_batch else "wav", help="default wav"
    )
    out.add_argument("--no-normalize", action="store_true", help="keep the model's level (no -14 LUFS)")
    out.add_argument(
        "--lufs", type=option("lufs"), default=-14.0, help="loudness target, -70 to 0 (default -14)"
    )
    out.add_argument(
        "--max-duration",
        type=option("max_duration"),
        default=300.0,
        help="cap on the length, 1 to 3600 s (default 300 s)",
    )
    out.add_argument("--force", action="store_true", help="overwrite existing output files")
    _add_loop(command, in_batch=in_batch)
    cover = command.add_argument_group("ACE-Step cover (ace-step, debug-ace)")
    cover.add_argument(
        "--strength",
        type=option("strength"),
        help="how closely the cover follows the seed, 0 to 1: the share of the denoising steps that "
        f"hear it (default {DEFAULT_STRENGTH:g}, ACE-Step's own: every step hears it and the prompt sets "
        "the style; 0.75 leaves the last 2 of 8 steps to the prompt alone; 0 ignores the seed)",
    )
    # None: not given. A family that has no such setting refuses it (MusicGen has no --strength).
    sampling = command.add_argument_group("MusicGen sampling (audiocraft's defaults)")
    sampling.add_argument("--top-k", type=option("top_k"), help=f"default {catalog.TOP_K}")
    sampling.add_argument("--top-p", type=option("top_p"), help="default 0 (off)")
    sampling.add_argument(
        "--temperature", type=option("temperature"), help=f"0 is greedy (default {catalog.TEMPERATURE:g})"
    )
    sampling.add_argument("--guidance", type=option("guidance"), help=f"default {catalog.GUIDANCE:g}")


def _add_loop(command, *, in_batch: bool) -> None:
    loop = command.add_argument_group("loops (game music that repeats without a seam)")
    loop.add_argument(
        "--loop",
        action="store_true",
        help=("make every track a loop" if in_batch else "make a seamless loop")
        + ": whole bars, nearest the duration (default: the seed's whole bars), loop points in the "
        "file (wav smpl chunk; ogg and flac LOOPSTART/LOOPLENGTH) and the sidecar; wav, flac or ogg only",
    )
    loop.add_argument("--bpm", type=option("bpm"), help="the seed's tempo, for loops (default: detected)")
    loop.add_argument(
        "--beats-per-bar", type=option("beats_per_bar"), help="beats in a bar, for loops (default 4)"
    )
    loop.add_argument(
        "--intro",
        type=option("intro"),
        metavar="BARS",
        help="for loops: BARS bars played once before the loop, in the same file (its loop points start"
        " after the intro)",
    )
    loop.add_argument(
        "--layers",
        action="store_true",
        help="for loops: also each candidate as synchronised layers (NAME-drums, -bass, -other, -vocals;"
        " htdemucs), the same length and loop points, summing to the candidate",
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        return _run(args)
    except RestyleError as exc:
        print(f"restyle: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("restyle: cancelled.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:  # past the plan's estimate (`generation.pipeline.check_memory`)
        print(
            "restyle: out of memory: ask for fewer candidates (-n) or a shorter --duration.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"restyle: internal error ({type(exc).__name__}: {exc}); run with -v for details.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    from generation.cli import commands

    runner = {"generate": commands.generate, "batch": commands.batch, "download": commands.download}
    return runner[args.command](args)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(  # the command line owns the process's logging: whatever was set, this wins
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if not verbose:
        # Their loggers print their own copy besides the root's, and warn about retries the command
        # line reports in one line of its own.
        for library in ("huggingface_hub", "transformers"):
            logging.getLogger(library).setLevel(logging.ERROR)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers loads
    from generation.hub import prepare_environment

    prepare_environment()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
