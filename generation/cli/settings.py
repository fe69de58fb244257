"""What one track asks for: the command line's settings over a batch file's track's over the file's,
as the family's parameters, restyle options and loop options, each refused in one line that names
the setting as it was typed."""

from __future__ import annotations

import argparse

from generation.cli.batch_file import BatchFile, Track
from generation.cli.loop_requests import loop_options
from generation.errors import InvalidRequestError
from generation.interface import Family, Params
from generation.loops import LoopOptions
from generation.pipeline import candidate_seeds, check_duration
from generation.results import RestyleOptions

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


def params_from(
    args: argparse.Namespace,
    family: Family,
    model: str,
    strength: float | None,
    strength_typed: str = "--strength",
) -> Params:
    """The family's parameters with the settings given in place; one the family lacks is refused,
    named as it is typed. `strength` is the command line's or, in a batch, the file's (said as
    `strength_typed` then: "strength = 0.5 in tracks.toml")."""
    refuse_melody_options(args, family, model)
    given = {arg: getattr(args, arg) for arg in PARAM_OPTIONS} | {"strength": strength}
    values = {}
    for arg, value in given.items():
        name, typed = PARAM_OPTIONS[arg]
        typed = strength_typed if arg == "strength" else typed
        if value is None:
            continue
        if not hasattr(family.default_params, name):
            why = WHOSE.get(arg, SAMPLING)
            raise InvalidRequestError(f"{typed} is not a setting of {family.title} ({model}): {why}.")
        values[name] = value
    return family.make_params(**values)


def refuse_melody_options(args: argparse.Namespace, family: Family, model: str) -> None:
    """--backend and --no-stems only change how MusicGen-melody runs: refused, not ignored, elsewhere."""
    if family.reads_melody:
        return
    where = f"is not a setting of {family.title} ({model})"
    if getattr(args, "backend", "auto") not in (None, "auto"):
        raise InvalidRequestError(f"--backend {where}: it picks MusicGen-melody's decoding loop.")
    if getattr(args, "no_stems", False):
        raise InvalidRequestError(f"--no-stems {where}: it hears the whole mix, never stems.")


def restyle_options(
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


def track_options(
    args: argparse.Namespace, family: Family, model: str, spec: BatchFile, track: Track
) -> RestyleOptions:
    candidates = track.candidates or spec.candidates or 1
    duration = track.duration if track.duration is not None else spec.duration
    seed = track.random_seed if track.random_seed is not None else spec.random_seed
    # The command line's --strength wins over the file's, as its other options do.
    strength, typed = next(
        (
            (value, typed)
            for value, typed in (
                (args.strength, "--strength"),
                (track.strength, f"strength = {track.strength}"),
                (spec.strength, f"strength = {spec.strength} in {args.tracks_file.name}"),
            )
            if value is not None
        ),
        (None, "--strength"),
    )
    params = params_from(args, family, model, strength, typed)
    return restyle_options(
        args, family, candidates, duration, seed, params=params, stems=spec.stems and not args.no_stems
    )


def track_loop(
    args: argparse.Namespace, family: Family, format_name: str, spec: BatchFile, track: Track
) -> LoopOptions | None:
    """A track's loop: the command line's settings over the track's over the file's."""

    def first(*values):
        return next((value for value in values if value is not None), None)

    bpm = first(args.bpm, track.bpm, spec.bpm)
    beats = first(args.beats_per_bar, track.beats_per_bar, spec.beats_per_bar)
    intro = first(args.intro, track.intro, spec.intro)
    looping = args.loop or spec.loops(track)
    return loop_options(looping, bpm, beats, family=family, format_name=format_name, intro=intro)
