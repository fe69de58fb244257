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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from generation.audio.decode import SeedAudio
from generation.audio.encode import get_format
from generation.audio.mastering import MasteringOptions
from generation.catalog import DEFAULT_MODEL
from generation.cli.batch_file import BatchFile, load_batch_file
from generation.cli.console import Console
from generation.cli.guards import (
    check_names,
    check_output,
    check_set_file,
    refuse_revision,
    track_named,
)
from generation.cli.loop_requests import (
    loop_options,
    planned,
    refuse_stray_game_options,
    refuse_stray_tempo,
    seamless,
)
from generation.cli.plans import CLI_SEED_LIMITS, Planned, seed_sha256, unlike
from generation.cli.settings import params_from, restyle_options, track_loop, track_options
from generation.errors import InvalidRequestError, ModelNotCachedError
from generation.families import offered_family
from generation.finishing import FinishingThread
from generation.humanize import format_duration
from generation.interface import Engine, Family, LoadOptions
from generation.layers import layers_line
from generation.loops import LoopInfo, restyle_loop
from generation.outputs import TrackFiles, probe_folder, refuse_to_clobber, write_pairs
from generation.pipeline import (
    Separate,
    check_length,
    check_memory,
    check_prompt,
    decode_seed,
    output_duration,
    restyle,
)
from generation.results import Restyled

log = logging.getLogger(__name__)

TRY_DEBUG = " To try Restyle without downloading anything: --model debug (or debug-ace)."


@dataclass(frozen=True)
class Session:
    """What every track of one run shares once the model is loaded."""

    args: argparse.Namespace
    engine: Engine
    seed: SeedAudio
    separate: Separate | None
    format_name: str
    layer_separator: Any = None  # a StemSeparator, when a track asks for layers

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
        if plan.layers:
            from generation.layers import with_layers

            with console.phase("separating the layers"):
                looped = with_layers(looped, self.layer_separator)
        return looped.result, looped.info


def generate(args: argparse.Namespace) -> int:
    fmt = get_format(args.format)
    prompt = check_prompt(args.prompt)
    name = args.name or default_name(args.seed_track, prompt)
    family = offered_family(args.model)
    params = params_from(args, family, args.model, args.strength)
    options = restyle_options(
        args, family, args.candidates, args.duration, args.seed, params=params, stems=not args.no_stems
    )
    refuse_stray_tempo(args.bpm, args.beats_per_bar, looping=args.loop)
    refuse_stray_game_options(args.intro, args.layers, looping=args.loop)
    loop = loop_options(
        args.loop, args.bpm, args.beats_per_bar, family=family, format_name=args.format, intro=args.intro
    )
    layers = bool(loop) and args.layers
    files = TrackFiles(args.output, name, options.candidates, fmt.extension, layers=layers)
    plan = [Planned(name, prompt, options, files, loop, layers=layers)]
    check_output(files, args.seed_track)
    _check_outputs(args.output, plan, args.force)
    console = Console(name)
    loader = _preflight(args, family, args.model, options.stems, layers=args.layers)
    with console.phase("decoding the seed"):
        seed = decode_seed(args.seed_track, CLI_SEED_LIMITS, family)
        plan = _plan_all(seed, family, args.model, plan)
    _say_cap(console, seed, plan[0])
    with console.phase("loading the model"):
        engine, separate, layer_separator = loader()
    session = Session(args, engine, seed, separate, args.format, layer_separator)
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
        with track_named(track.name):
            options = track_options(args, family, model, spec, track)
            loop = track_loop(args, family, format_name, spec, track)
            layers = bool(loop) and (args.layers or spec.wants_layers(track))
            files = TrackFiles(out_dir, track.name, options.candidates, extension, layers=layers)
            prompt = check_prompt(track.prompt)
            plans.append(Planned(track.name, prompt, options, files, loop, layers=layers))
    refuse_stray_tempo(args.bpm, args.beats_per_bar, looping=any(plan.loop for plan in plans))
    refuse_stray_game_options(args.intro, args.layers, looping=any(plan.loop for plan in plans))
    if spec.set and args.no_normalize:
        raise InvalidRequestError("A set's tracks are loudness-matched to one another: drop --no-normalize.")
    check_names([(plan.name, plan.files) for plan in plans], spec.seed, args.tracks_file)
    if spec.set:
        from generation.sets import SET_FILE

        check_set_file(out_dir / SET_FILE, spec.seed, args.tracks_file)
    digest = seed_sha256(spec.seed) if any(plan.files.existing() for plan in plans) else None
    why_again = {plan.name: unlike(plan, model, digest) for plan in plans}
    todo = [plan for plan in plans if args.force or why_again[plan.name] is not None]
    kept = [plan.name for plan in plans if plan not in todo]
    _check_outputs(out_dir, todo, args.force, [why_again[plan.name] for plan in todo], kept)
    for name in kept:  # said once the run goes ahead: a refusal stays one line
        Console(name).say("already written, skipped (--force makes it again)")
    if not todo:
        _write_set(spec, out_dir, plans)
        return 0
    stems = any(plan.options.stems for plan in todo)
    loader = _preflight(args, family, model, stems, layers=any(plan.layers for plan in todo))
    console = Console(args.tracks_file.name)
    with console.phase("decoding the seed"):
        seed = decode_seed(spec.seed, CLI_SEED_LIMITS, family)
        todo = _plan_all(seed, family, model, todo, in_batch=True)
    if spec.set and any(plan.loop_plan != todo[0].loop_plan for plan in todo):
        raise InvalidRequestError("The tracks of a set must share one tempo, metre and length.")
    for plan in todo:
        _say_cap(Console(plan.name), seed, plan)
    with console.phase("loading the model"):
        engine, separate, layer_separator = loader()
    session = Session(args, engine, seed, separate, format_name, layer_separator)
    if spec.set:
        _generate_set(session, todo, [plan for plan in plans if plan not in todo])
    else:
        _generate_all(session, todo)
    _write_set(spec, out_dir, plans)
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


def _generate_set(session: Session, todo: list[Planned], kept: list[Planned]) -> None:
    """Every track first, then all written at one loudness that each can reach (generation.sets),
    the `kept` tracks of a resumed set included: the new ones go no louder than those are."""
    from generation.sets import common_loudness, written_loudness

    made = [(plan, *session.restyle(plan, Console(plan.name))) for plan in todo]
    audios = [candidate.audio for _, result, _ in made for candidate in result.candidates]
    lufs = common_loudness(audios, made[0][1].sample_rate, session.args.lufs, MasteringOptions().true_peak_db)
    levels = written_loudness([path for plan in kept for path in plan.files.audio()])
    lufs = round(min([lufs, *levels]), 2)
    louder = [level for level in levels if level > lufs + 0.05]
    Console("set").say(
        f"every track at {lufs:g} LUFS"
        if not louder
        else f"the new tracks at {lufs:g} LUFS; the kept ones are louder"
        f" (up to {max(louder):g} LUFS): --force makes the whole set again at one loudness"
    )
    for plan, result, loop in made:
        _write(session, result, loop, plan, Console(plan.name), lufs=lufs)


def _write_set(spec: BatchFile, folder: Path, plans: list[Planned]) -> None:
    if not spec.set:
        return
    from generation.sets import set_manifest, write_set

    path = write_set(folder, set_manifest([(plan.name, plan.files.audio()) for plan in plans]))
    Console("set").say(f"{path}: the tracks' tempo, bar lines, loop points, files and loudness")


def download(args: argparse.Namespace) -> int:
    family = offered_family(args.model)
    refuse_revision(family, args.model, args.revision)
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


def _plan_all(
    seed: SeedAudio, family: Family, model: str, plans: list[Planned], *, in_batch: bool = False
) -> list[Planned]:
    """Every plan finished from the decoded seed, before the model loads: its loop planned (a seed
    with no beat, or too short, or a loop longer than the cap is refused here), its length within
    the model's and its audio within memory. In a batch, a refusal names its track."""
    done = []
    for asked in plans:
        with track_named(asked.name if in_batch else None):
            plan = asked.with_loop_planned(seed, family)
            duration = output_duration(seed, plan.options)
            check_length(family.lengths(model), duration)
            generated = duration if plan.loop_plan is None else plan.loop_plan.generated_s
            check_memory(generated, plan.options.candidates, family.sample_rate)
        done.append(plan)
    return done


def _check_outputs(
    out_dir: Path,
    plans: list[Planned],
    force: bool,
    unlike: list[str | None] | None = None,
    kept: list[str] | None = None,
) -> None:
    """Refuse, before any work, a folder that cannot be written and (unless told) earlier results
    (`unlike`: why a batch makes each again). Beside `kept` tracks, --force is no mere overwrite:
    it would make them again too, so the refusal says so and what makes only this track again."""
    probe_folder(out_dir)
    if force:
        return
    if not kept:
        refuse_to_clobber([plan.files for plan in plans], unlike)
        return
    names = ", ".join(kept[:3]) + (" and the rest" if len(kept) > 3 else "")
    instead = (
        f"delete its files to make it again (--force makes every track again, {names} too),"
        " or -o another folder"
    )
    refuse_to_clobber([plan.files for plan in plans], unlike, instead)


def _preflight(
    args: argparse.Namespace, family: Family, model: str, stems: bool, *, layers: bool = False
) -> Callable[[], tuple[Engine, Separate | None, Any]]:
    """Check the threads, device, model and separator; returns what loads them, once the seed is read."""
    from generation.devices import pick_device
    from generation.threads import apply_threads, plan_threads

    refuse_revision(family, model, args.revision)
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
    if stems or layers:
        from generation.audio.stems import check_stems

        check_stems(random=family.is_random(model), offline=args.offline, cache_dir=args.cache_dir)
    return partial(_load, family, model, options, stems, layers)


def _load(
    family: Family, model: str, options: LoadOptions, stems: bool, layers: bool = False
) -> tuple[Engine, Separate | None, Any]:
    """The engine, the melody's separator (with stems) and the layers' (the same one, with layers)."""
    engine = family.load(model, options)
    separator = None
    if stems or layers:
        from generation.audio.stems import separator_for
        from generation.devices import pick_device

        device = pick_device(options.device)
        random = family.is_random(model)
        separator = separator_for(random, device, offline=options.offline, cache_dir=options.cache_dir)
    separate = separator.melody if stems and separator is not None else None
    return engine, separate, separator if layers else None


def _say_cap(console: Console, seed: SeedAudio, plan: Planned) -> None:
    """A cut seed is said, and a loop's plan."""
    options = plan.options
    if options.duration_s is None and seed.duration_s > options.max_duration_s:
        console.say(
            f"the seed is {format_duration(seed.duration_s)}; the output is capped at "
            f"{format_duration(options.max_duration_s)} (--max-duration)"
        )
    if plan.loop_plan is not None:
        console.say(planned(plan.loop_plan))


def _write(
    session: Session,
    result: Restyled,
    loop: LoopInfo | None,
    plan: Planned,
    console: Console,
    *,
    lufs: float | None = None,  # a set's common loudness, in place of --lufs
) -> None:
    from generation.render import render_candidates

    args = session.args
    target = args.lufs if lufs is None else lufs
    mastering = MasteringOptions(target_lufs=None if args.no_normalize else target)
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
        layers = [(layer.filename, layer.data, layer.sidecar) for item in rendered for layer in item.layers]
        candidates = [(item.filename, item.data, item.sidecar) for item in rendered]
        # One call: all written before any is renamed (a full disk keeps none), the layers renamed
        # before the candidates (a written candidate is a finished one).
        paths = write_pairs(plan.files.folder, layers + candidates)[len(layers) :]
    for path, candidate in zip(paths, result.candidates, strict=True):
        line = f"{path}  seed {candidate.seed}  melody adherence {candidate.adherence:.2f}"
        console.result(line + (f"  {seamless(loop, candidate.index)}" if loop is not None else ""))
    for item in rendered:
        if item.layers:
            console.say(layers_line(item))
