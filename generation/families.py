"""Which family serves a model spec, and its engine loaded through that family.

`family_for` asks each family in turn whether it serves a spec; MusicGen-melody comes last and takes
whatever no other family claims (its loader refuses, in one line, what it cannot load either). The
fronts reach a family only through this module and `generation.interface`: never its internals.
"""

from __future__ import annotations

from generation.acestep.family import ACESTEP
from generation.errors import ModelUnavailableError
from generation.interface import Engine, Family, LoadOptions
from generation.musicgen.family import MUSICGEN

FAMILIES: tuple[Family, ...] = (ACESTEP, MUSICGEN)
# What `restyle` and the bot offer (a family whose options a front cannot set yet stays out).
OFFERED = (MUSICGEN.name, ACESTEP.name)


def family_for(spec: str) -> Family:
    """The family whose model `spec` names (nothing is loaded or downloaded)."""
    return next(family for family in FAMILIES if family.serves(spec))


def offered_family(spec: str) -> Family:
    """`family_for`, refused in one line for a family the fronts do not offer yet."""
    family = family_for(spec)
    if family.name not in OFFERED:
        raise ModelUnavailableError(
            f"{spec} ({family.title}) is not offered by the command line or the bot yet."
        )
    return family


def by_name(name: str) -> Family:
    return next(family for family in FAMILIES if family.name == name)


def load_engine(spec: str, options: LoadOptions | None = None) -> Engine:
    """Load `spec` with its family's loader: once, kept by whoever owns the model's thread."""
    return family_for(spec).load(spec, options or LoadOptions())
