"""What each `restyle` command does, once its arguments are parsed (see `generation.cli`)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path

import numpy as np

from generation.audio_in import AudioLimits, SeedAudio, decode_audio
from generation.audio_out import get_format
from generation.batch_file import BatchFile, Track, load_batch_file
from generation.engine import Engine
from generation.errors import InvalidRequestError
from generation.finishing import FinishingThread
from generation.mastering import MasteringOptions
from generation.models import DEFAULT_MODEL
from generation.pipeline import (
    Restyled,
    RestyleOptions,
    candidate_path,
    candidate_seeds,
    check_prompt,
    output_duration,
    restyle,
    write_candidates,
)
from generation.sampling import SamplingParams

# A desk user may hand over a whole album side; the output length is capped separately.
CLI_SEED_LIMITS = AudioLimits(max_bytes=1024**3, max_seconds=3600.0)


def generate(args: argparse.Namespace) -> int:
    options = _options(args, args.candidates, args.duration, args.seed)
    prompt = check_prompt(args.prompt)
    name = args.name or default_name(args.seed_track, prompt)
    _check_outputs(args.output, [(name, options.candidates)], args.format, args.force)
    seed = decode_audio(args.seed_track, CLI_SEED_LIMITS)
    output_duration(seed, options)
    engine, separate = _load(args, args.model, options.stems)
    result = _run_with_bar(engine, seed, prompt, options, separate=separate, label=name)
    _write(result, engine, seed, args, out_dir=args.output, name=name, fmt=args.format)
    return 0


def batch(args: argparse.Namespace) -> int:
    spec = load_batch_file(args.tracks_file)
    format_name = args.format or spec.format or "wav"
    get_format(format_name)
    out_dir = args.output or spec.output or args.tracks_file.parent
    plans = [(track, _track_options(args, spec, track)) for track in spec.tracks]
    prompts = {track.name: check_prompt(track.prompt) for track, _ in plans}
    _check_outputs(
        out_dir, [(track.name, options.candidates) for track, options in plans], format_name, args.force
    )
    seed = decode_audio(spec.seed, CLI_SEED_LIMITS)
    for _, options in plans:
        output_duration(seed, options)
    engine, separate = _load(args, args.model or spec.model or DEFAULT_MODEL, spec.stems or args.stems)
    # Each track is written while the next one generates; a failed write stops the batch there.
    with FinishingThread(max_pending=1, name="restyle-write") as writing:
        written: Future | None = None
        for track, options in plans:
            result = _run_with_bar(
                engine, seed, prompts[track.name], options, separate=separate, label=track.name
            )
            if written is not None:
                written.result()
            written = writing.submit(
                partial(_write, result, engine, seed, args, out_dir=out_dir, name=track.name, fmt=format_name)
            )
        if written is not None:
            written.result()
    return 0


def download(args: argparse.Namespace) -> int:
    from generation.models import download_model

    path = download_model(args.model, cache_dir=args.cache_dir)
    print(f"{args.model}: cached at {path}")
    if args.stems:
        from generation.stems import download_separator

        download_separator()
        print("htdemucs: cached")
    return 0


def default_name(seed_path: Path, prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:40].rstrip("-") or "restyled"
    return f"{seed_path.stem}-{slug}"


def _options(
    args: argparse.Namespace, candidates: int, duration: float | None, seed: int | None
) -> RestyleOptions:
    sampling = SamplingParams(args.top_k, args.top_p, args.temperature, args.guidance)
    sampling.validate()
    options = RestyleOptions(candidates, duration, args.max_duration, seed, sampling, args.stems)
    candidate_seeds(options)  # checks the count and the seed's range now, before any work
    return options


def _track_options(args: argparse.Namespace, spec: BatchFile, track: Track) -> RestyleOptions:
    candidates = track.candidates or spec.candidates or 1
    duration = track.duration if track.duration is not None else spec.duration
    seed = track.random_seed if track.random_seed is not None else spec.random_seed
    options = _options(args, candidates, duration, seed)
    return RestyleOptions(
        options.candidates,
        options.duration_s,
        options.max_duration_s,
        options.seed,
        options.sampling,
        spec.stems or args.stems,
    )


def _check_outputs(out_dir: Path, names: list[tuple[str, int]], format_name: str, force: bool) -> None:
    """Refuse, before any work, to overwrite earlier results unless told to."""
    extension = get_format(format_name).extension
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidRequestError(f"{out_dir} is a file, not a folder.")
    for name, count in names:
        for index in range(1, count + 1):
            path = candidate_path(out_dir, name, index, count, extension)
            if path.exists() and not force:
                raise InvalidRequestError(
                    f"{path} already exists: use --force to overwrite, or -o another folder."
                )


def _load(args: argparse.Namespace, model: str, stems: bool):
    from generation.models import load_model

    lm = load_model(
        model, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir, offline=args.offline
    )
    separate = None
    if stems:
        from generation.stems import load_separator

        separate = load_separator(lm.device, offline=args.offline).melody
    return Engine(lm, args.backend), separate


def _run_with_bar(
    engine: Engine,
    seed: SeedAudio,
    prompt: str,
    options: RestyleOptions,
    *,
    separate: Callable[[np.ndarray, int], np.ndarray] | None,
    label: str,
) -> Restyled:
    from tqdm import tqdm

    with tqdm(total=1, desc=label, unit="step", dynamic_ncols=True, leave=True) as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return restyle(engine, seed, prompt, options, on_progress=advance, separate=separate)


def _write(
    result: Restyled, engine: Engine, seed: SeedAudio, args, *, out_dir: Path, name: str, fmt: str
) -> None:
    from tqdm import tqdm

    mastering = MasteringOptions(target_lufs=None if args.no_normalize else args.lufs)
    paths = write_candidates(result, engine, seed, out_dir, name, format_name=fmt, mastering=mastering)
    for path, candidate in zip(paths, result.candidates, strict=True):
        # tqdm.write keeps the line clear of a progress bar that another track may be drawing
        tqdm.write(f"{path}  seed {candidate.seed}  melody adherence {candidate.adherence:.2f}")
