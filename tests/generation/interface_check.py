"""What the tests of each family check of its engine and family against `generation.interface`."""

from __future__ import annotations

import inspect
import typing

from generation.interface import Engine, Family


def missing_members(obj: object, protocol: type) -> list[str]:
    """The protocol's attributes and methods `obj` lacks, or has with other parameters."""
    missing = []
    members = set(typing.get_type_hints(protocol)) | {
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    for name in sorted(members):
        if not hasattr(obj, name):
            missing.append(name)
            continue
        wanted = vars(protocol).get(name)
        if inspect.isfunction(wanted):
            theirs = list(inspect.signature(getattr(obj, name)).parameters)
            ours = list(inspect.signature(wanted).parameters)[1:]  # without self
            if theirs[: len(ours)] != ours:
                missing.append(f"{name}{tuple(theirs)}")
    return missing


def check_engine_against_family(engine: Engine, family: Family, durations: list[float]) -> None:
    """An engine of the family says what its family said before anything was loaded."""
    assert missing_members(engine, Engine) == []
    assert missing_members(family, Family) == []
    assert engine.family == family.name
    assert engine.licence == family.licence
    assert (engine.sample_rate, engine.input_rate) == (family.sample_rate, family.input_rate)
    assert engine.input_channels == family.input_channels
    assert engine.reads_melody == family.reads_melody
    assert engine.frame_rate == family.frame_rate
    assert engine.default_params == family.default_params
    spec = engine.describe()["name"]
    assert (engine.min_duration_s, engine.max_duration_s) == family.lengths(spec), spec
    for seconds in durations:
        assert engine.total_steps(seconds) == family.total_steps(seconds), seconds
