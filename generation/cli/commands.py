"""What each `restyle` command does, once its arguments are parsed (see `generation.cli`).

Everything that can be checked is checked before the seed is decoded and the model loaded: the
prompt, the options, the output files, the device, the model and the stem separator.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from generation.audio.decode import AudioLimits, SeedAudio
from generation.audio.encode import get_format
from generation.audio.mastering import MasteringOptions
from generation.catalog import DEFAULT_MODEL
from generation.cli.batch_file import BatchFile, Track, load_batch_file
from generation.cli.console import Console
from generation.cli.loop_requests import loop_options, planned, refuse_stray_tempo, seamless
from generation.errors import InvalidRequestError, ModelNotCachedError
from generation.families import offered_family
from generation.finishing import FinishingThread
from generation.humanize import format_duration
from generation.interface import Engine, Family, LoadOptions, Params
from generation.loops import LoopInfo, LoopOptions, LoopPlan, plan_loop, restyle_loop
from generation.outputs import TrackFiles, probe_folder, refuse_to_clobber, write_pairs
from generation.pipeline import (
    Separate,
    candidate_seeds,
    check_duration,
    check_length,
    check_prompt,
    decode_seed,
    output_duration,
    restyle,
)
from generation.results import Restyled, RestyleOptions

log = logging.getLogger(__name__)

# A desk user may hand over a whole album side; the output length is capped separately.
CLI_SEED_LIMITS = AudioLimits(max_bytes=1024**3, max_seconds=3600.0)
TRY_DEBUG = " To try Restyle without downloading anything: --model debug (or debug-ace)."
# Generation settings on the command line: argument -> (the families' parameter, what people type).
PARAM_OPTIONS = {
    "top_k": ("top_k", "--top-k"),
    "top_p": ("top_p", "--top-p"),
    "temperature": ("temperature", "--temperature"),
    "guidance": ("guidance_scale", "--guidance"),
    "strength": ("strength", "--strength"),
}
# Why a family lacks a setting, said with the refusal.
WHOSE = {"strength": "it is ACE-Step's cover strength (--model ace-step)"}
SAMPLING = "it is MusicGen-melody's sampling; ACE-Step takes --strength"


@dataclass(frozen=True)
class Session:
    """What every track of one run shares once the model is loaded."""

    args: argparse.Namespace
    engine: Engine
    seed: SeedAudio
    separate: Separate | None
    format_name: str

    def restyle(self, plan: Planned, console: Console) -> tuple[Restyled, LoopInfo | None]:
        if plan.loop is None:
            result = restyle(
                self.engine, self.seed, plan.prompt, plan.options, phases=console, separate=self.separate
            )
            return result, None
        looped = restyle_loop(
            self.engine,
            self.seed,
            plan.prompt,
            plan.options,
            plan.loop,
            plan=plan.loop_plan,
            phases=console,
            separate=self.separate,
        )
        return looped.result, looped.info


@dataclass(frozen=True)
class Planned:
    """One name to generate: its prompt, options and files (and its loop, for loops)."""

    name: str
    prompt: str
    options: RestyleOptions
    files: TrackFiles
    loop: LoopOptions | None = None
    loop_plan: LoopPlan | None = None  # made once the seed is read, before the model loads

    def with_loop_planned(self, seed: SeedAudio, family: Family) -> Planned:
        if self.loop is None:
            return self
        return replace(self, loop_plan=plan_loop(seed, self.options, self.loop, frame_rate=family.frame_rate))


def generate(args: argparse.Namespace) -> int:
    fmt = get_format(args.format)
    prompt = check_prompt(args.prompt)
    name = args.name or default_name(args.seed_track, prompt)
    family = offered_family(args.model)
    params = _params(args, family, args.model, args.strength)
    options = _options(
        args, family, args.candidates, args.duration, args.seed, params=params, stems=not args.no_stems
    )
    refuse_stray_tempo(args.bpm, args.beats_per_bar, looping=args.loop)
    loop = loop_options(args.loop, args.bpm, args.beats_per_bar, family=family, format_name=args.format)
    files = TrackFiles(args.output, name, options.candidates, fmt.extension)
    plan = [Planned(name, prompt, options, files, loop)]
    _check_outputs(args.output, plan, args.force)
    console = Console(name)
    loader = _preflight(args, family, args.model, options.stems)
    with console.phase("decoding the seed"):
        seed = decode_seed(args.seed_track, CLI_SEED_LIMITS, family)
        plan = _plan_loops(seed, family, plan)
    _say_cap(console, seed, plan[0], family.lengths(args.model))
    with console.phase("loading the model"):
        engine, separate = loader()
    session = Session(args, engine, seed, separate, args.format)
    _write(session, *session.restyle(plan[0], console), plan[0], console)
    console.say(engine.licence.notice(family.title))
    return 0


def batch(args: argparse.Namespace) -> int:
    spec = load_batch_file(args.tracks_file)
    format_name = args.format or spec.format or "wav"
    extension = get_format(format_name).extension
    out_dir = args.output or spec.output or args.tracks_file.parent
    model = args.model or spec.model or DEFAULT_MODEL
    family = offered_family(model)
    plans = []
    for track in spec.tracks:
        options = _track_options(args, family, model, spec, track)
        files = TrackFiles(out_dir, track.name, options.candidates, extension)
        loop = _track_loop(args, family, format_name, spec, track)
        plans.append(Planned(track.name, check_prompt(track.prompt), options, files, loop))
    refuse_stray_tempo(args.bpm, args.beats_per_bar, looping=any(plan.loop for plan in plans))
    todo = [plan for plan in plans if args.force or not _finished(plan, model)]
    for plan in plans:
        if plan not in todo:
            Console(plan.name).say("already written, skipped (--force makes it again)")
    _check_outputs(out_dir, todo, args.force)
    if not todo:
        return 0
    stems = any(plan.options.stems for plan in todo)
    loader = _preflight(args, family, model, stems)
    console = Console(args.tracks_file.name)
    with console.phase("decoding the seed"):
        seed = decode_seed(spec.seed, CLI_SEED_LIMITS, family)
        todo = _plan_loops(seed, family, todo)
    for plan in todo:
        _say_cap(Console(plan.name), seed, plan, family.lengths(model))
    with console.phase("loading the model"):
        engine, separate = loader()
    _generate_all(Session(args, engine, seed, separate, format_name), todo)
    console.say(engine.licence.notice(family.title))
    return 0


def _generate_all(session: Session, todo: list[Planned]) -> None:
    """Each track is written while the next one generates; a failed write stops the batch there."""
    with FinishingThread(max_pending=1, name="restyle-write") as writing:
        written: Future | None = None
        for plan in todo:
            console = Console(plan.name)
            result, loop = session.restyle(plan, console)
            if written is not None:
                written.result()
            written = writing.submit(partial(_write, session, result, loop, plan, console))
        if written is not None:
            written.result()


def download(args: argparse.Namespace) -> int:
    family = offered_family(args.model)
    path = family.download(args.model, cache_dir=args.cache_dir, revision=args.revision)
    print(f"{args.model}: cached at {path}")
    if family.reads_melody and not args.no_stems:
        from generation.audio.stems import download_separator

        print(f"htdemucs (stems): cached at {download_separator(args.cache_dir)}")
    return 0


def default_name(seed_path: Path, prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:40].rstrip("-") or "restyled"
    return f"{seed_path.stem}-{slug}"


def _params(args: argparse.Namespace, family: Family, model: str, strength: float | None) -> Params:
    """The family's parameters with the settings given in place; one the family lacks is refused,
    named as it is typed. `strength` is the command line's or, in a batch, the file's."""
    _refuse_melody_options(args, family, model)
    given = {arg: getattr(args, arg) for arg in PARAM_OPTIONS} | {"strength": strength}
    values = {}
    for arg, value in given.items():
        name, typed = PARAM_OPTIONS[arg]
        if value is None:
            continue
        if not hasattr(family.default_params, name):
            why = WHOSE.get(arg, SAMPLING)
            raise InvalidRequestError(f"{typed} is not a setting of {family.title} ({model}): {why}.")
        values[name] = value
    return family.make_params(**values)


def _refuse_melody_options(args: argparse.Namespace, family: Family, model: str) -> None:
    """--backend and --no-stems only change how MusicGen-melody runs: refused, not ignored, elsewhere."""
    if family.reads_melody:
        return
    where = f"is not a setting of {family.title} ({model})"
    if getattr(args, "backend", "auto") not in (None, "auto"):
        raise InvalidRequestError(f"--backend {where}: it picks MusicGen-melody's decoding loop.")
    if getattr(args, "no_stems", False):
        raise InvalidRequestError(f"--no-stems {where}: it hears the whole mix, never stems.")


def _options(
    args: argparse.Namespace,
    family: Family,
    candidates: int,
    duration: float | None,
    seed: int | None,
    *,
    params: Params,
    stems: bool,
) -> RestyleOptions:
    options = RestyleOptions(
        candidates, duration, args.max_duration, seed, params, stems and family.reads_melody
    )
    candidate_seeds(options)  # checks the count and the seed's range now, before any work
    check_duration(options)
    return options


def _track_options(
    args: argparse.Namespace, family: Family, model: str, spec: BatchFile, track: Track
) -> RestyleOptions:
    candidates = track.candidates or spec.candidates or 1
    duration = track.duration if track.duration is not None else spec.duration
    seed = track.random_seed if track.random_seed is not None else spec.random_seed
    # The command line's --strength wins over the file's, as its other options do.
    strength = next((s for s in (args.strength, track.strength, spec.strength) if s is not None), None)
    params = _params(args, family, model, strength)
    return _options(
        args, family, candidates, duration, seed, params=params, stems=spec.stems and not args.no_stems
    )


def _track_loop(
    args: argparse.Namespace, family: Family, format_name: str, spec: BatchFile, track: Track
) -> LoopOptions | None:
    """A track's loop: the command line's settings over the track's over the file's."""

    def first(*values):
        return next((value for value in values if value is not None), None)

    bpm = first(args.bpm, track.bpm, spec.bpm)
    beats = first(args.beats_per_bar, track.beats_per_bar, spec.beats_per_bar)
    looping = args.loop or spec.loops(track)
    return loop_options(looping, bpm, beats, family=family, format_name=format_name)


def _finished(plan: Planned, model: str) -> bool:
    return plan.files.finished(plan.prompt, loop=plan.loop is not None, model=model, made_as=_made_as(plan))


def _made_as(plan: Planned) -> dict[str, dict[str, Any]]:
    """What a track's sidecars must record to be kept on resume: its family's settings, stems, an
    asked length (a loop's is its bars) and an asked tempo or metre."""
    options = plan.options
    parameters: dict[str, Any] = {**asdict(options.params), "stems": options.stems}
    if options.duration_s is not None and plan.loop is None:
        parameters["duration_s"] = options.duration_s
    asked = {"bpm": plan.loop.bpm, "beats_per_bar": plan.loop.beats_per_bar} if plan.loop else {}
    return {
        "parameters": parameters,
        "loop": {key: value for key, value in asked.items() if value is not None},
    }


def _plan_loops(seed: SeedAudio, family: Family, plans: list[Planned]) -> list[Planned]:
    """Every loop planned from the decoded seed: a seed with no beat, or too short, or a loop
    longer than the cap is refused here, before the model loads."""
    return [plan.with_loop_planned(seed, family) for plan in plans]


def _check_outputs(out_dir: Path, plans: list[Planned], force: bool) -> None:
    """Refuse, before any work, a folder that cannot be written and (unless told) earlier results."""
    probe_folder(out_dir)
    if not force:
        refuse_to_clobber([plan.files for plan in plans])


def _preflight(
    args: argparse.Namespace, family: Family, model: str, stems: bool
) -> Callable[[], tuple[Engine, Separate | None]]:
    """Check the threads, device, model and separator; returns what loads them, once the seed is read."""
    from generation.devices import pick_device
    from generation.threads import apply_threads, plan_threads

    apply_threads(plan_threads(args.threads, finishing=True))
    device = pick_device(args.device)
    family.dtype_name(model, args.dtype, device)  # a precision the family does not run in is refused now
    options = LoadOptions(
        device=str(device),
        dtype=args.dtype,
        cache_dir=args.cache_dir,
        offline=args.offline,
        revision=args.revision,
        backend=args.backend,
    )
    try:
        family.locate(model, options)
    except ModelNotCachedError as exc:
        raise ModelNotCachedError(str(exc).rstrip(".") + "." + TRY_DEBUG) from None
    if stems:
        from generation.audio.stems import check_stems

        check_stems(random=family.is_random(model), offline=args.offline, cache_dir=args.cache_dir)
    return partial(_load, family, model, options, stems)


def _load(family: Family, model: str, options: LoadOptions, stems: bool) -> tuple[Engine, Separate | None]:
    engine = family.load(model, options)
    separate = None
    if stems:
        from generation.audio.stems import separator_for
        from generation.devices import pick_device

        device = pick_device(options.device)
        random = family.is_random(model)
        separate = separator_for(random, device, offline=options.offline, cache_dir=options.cache_dir).melody
    return engine, separate


def _say_cap(console: Console, seed: SeedAudio, plan: Planned, lengths: tuple[float, float]) -> None:
    """The output's length fits the cap and the model (before it loads); a cut seed is said."""
    options = plan.options
    check_length(lengths, output_duration(seed, options))
    if options.duration_s is None and seed.duration_s > options.max_duration_s:
        console.say(
            f"the seed is {format_duration(seed.duration_s)}; the output is capped at "
            f"{format_duration(options.max_duration_s)} (--max-duration)"
        )
    if plan.loop_plan is not None:
        console.say(planned(plan.loop_plan))


def _write(
    session: Session, result: Restyled, loop: LoopInfo | None, plan: Planned, console: Console
) -> None:
    from generation.render import render_candidates

    args = session.args
    mastering = MasteringOptions(target_lufs=None if args.no_normalize else args.lufs)
    with console.phase("writing"):
        rendered = render_candidates(
            result,
            session.engine,
            session.seed,
            name=plan.name,
            format_name=session.format_name,
            mastering=mastering,
            loop=loop,
        )
        paths = write_pairs(
            plan.files.folder, [(item.filename, item.data, item.sidecar) for item in rendered]
        )
    for path, candidate in zip(paths, result.candidates, strict=True):
        line = f"{path}  seed {candidate.seed}  melody adherence {candidate.adherence:.2f}"
        console.result(line + (f"  {seamless(loop, candidate.index)}" if loop is not None else ""))
