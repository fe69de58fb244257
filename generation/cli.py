"""`restyle`: the engine at a desk. One theme, several styles, several tracks, with a progress bar.

Bad input or options end with one line on stderr and exit code 2; Ctrl-C cancels at the next step.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from generation.errors import RestyleError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
FORMAT_NAMES = ("wav", "flac", "mp3", "ogg")
DESCRIPTION = (
    "Restyle a seed track with MusicGen-melody: keep its melody, render it in the style you describe, "
    "at the seed's length. MusicGen weights are CC-BY-NC 4.0 (non-commercial use only)."
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="restyle", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens, and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_generate(commands)
    _add_batch(commands)
    _add_download(commands)
    return parser


def _add_generate(commands) -> None:
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
        "-n", "--candidates", type=int, default=1, help="how many candidates (default 1, up to 8)"
    )
    command.add_argument("--duration", type=float, help="length in seconds (default: the seed's length)")
    command.add_argument("--seed", type=int, help="random seed; candidate i uses SEED+i-1 (default: random)")
    command.add_argument("--name", help="file name stem for the outputs (default: from the seed and prompt)")
    _add_shared(command)


def _add_batch(commands) -> None:
    command = commands.add_parser(
        "batch",
        help="one seed, several named prompts, from a TOML file",
        description="Generate one track per name in TRACKS.toml, all from the same seed. "
        "See the README for the file's format; options given here override the file's.",
    )
    command.add_argument("tracks_file", metavar="TRACKS.toml", type=Path, help="the batch file")
    _add_shared(command, in_batch=True)


def _add_download(commands) -> None:
    from generation.models import DEFAULT_MODEL

    command = commands.add_parser(
        "download",
        help="fetch model weights into the Hugging Face cache",
        description="Fetch weights ahead of time, for Docker images and offline hosts.",
    )
    command.add_argument(
        "model", nargs="?", default=DEFAULT_MODEL, help=f"model to fetch (default {DEFAULT_MODEL})"
    )
    command.add_argument(
        "--stems", action="store_true", help="also fetch the htdemucs stem-separation weights"
    )
    command.add_argument("--cache-dir", type=Path, help="Hugging Face cache folder (default: HF_HOME's)")


def _add_shared(command, *, in_batch: bool = False) -> None:
    from generation.models import DEFAULT_MODEL
    from generation.sampling import SamplingParams

    defaults = SamplingParams()
    # In batch, None means "as the file says": the file's settings fill what the command line leaves.
    model = command.add_argument_group("model")
    model.add_argument(
        "--model", default=None if in_batch else DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}"
    )
    model.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    model.add_argument(
        "--dtype", default="auto", help="auto, float32, bfloat16, float16, int8 (default auto)"
    )
    model.add_argument("--backend", default="auto", choices=("auto", "fast", "reference"), help="decode loop")
    model.add_argument("--offline", action="store_true", help="use only the Hugging Face cache")
    model.add_argument("--cache-dir", type=Path, help="Hugging Face cache folder")
    model.add_argument(
        "--stems", action="store_true", help="read the melody from vocals+other (needs demucs)"
    )
    out = command.add_argument_group("output")
    out.add_argument("-o", "--output", type=Path, default=None if in_batch else Path("."), help="folder")
    out.add_argument(
        "--format", choices=FORMAT_NAMES, default=None if in_batch else "wav", help="default wav"
    )
    out.add_argument("--no-normalize", action="store_true", help="keep the model's level (no -14 LUFS)")
    out.add_argument("--lufs", type=float, default=-14.0, help="loudness target (default -14)")
    out.add_argument("--max-duration", type=float, default=300.0, help="cap on the length (default 300 s)")
    out.add_argument("--force", action="store_true", help="overwrite existing output files")
    sampling = command.add_argument_group("sampling (audiocraft's defaults)")
    sampling.add_argument("--top-k", type=int, default=defaults.top_k, help=f"default {defaults.top_k}")
    sampling.add_argument("--top-p", type=float, default=defaults.top_p, help="default 0 (off)")
    sampling.add_argument("--temperature", type=float, default=defaults.temperature, help="0 is greedy")
    sampling.add_argument("--guidance", type=float, default=defaults.guidance_scale, help="default 3")


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
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"restyle: internal error ({type(exc).__name__}: {exc}); run with -v for details.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    from generation import commands

    runner = {"generate": commands.generate, "batch": commands.batch, "download": commands.download}
    return runner[args.command](args)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
