"""Every number `restyle` takes, on its command line and in batch files: one parser, one rule each.

A number is finite, of its kind (whole or not) and in its stated range, checked before any work:
`nan`, `inf` (TOML has both) and `1e9` are refused in one line that says the range, not met later as
an OverflowError, a MemoryError or, worse, a run that quietly generates from nonsense.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from generation import catalog
from generation.audio.tempo import BEATS_PER_BAR_RANGE, GIVEN_BPM_RANGE
from generation.cli.loop_requests import MAX_INTRO_BARS
from generation.errors import InvalidRequestError
from generation.interface import MAX_SEED
from generation.pipeline import MAX_CANDIDATES

# The longest output and the longest seed a desk run takes: an hour (the seed's limit too).
MAX_OUTPUT_S = 3600.0
MAX_THREADS = 1024


@dataclass(frozen=True)
class Rule:
    """What one number may be: `whole` or not, from `low` to `high` (both included)."""

    low: float
    high: float
    whole: bool = False
    unit: str = ""  # said after the range: " s", " BPM", " LUFS"

    def describe(self) -> str:
        if self.whole:
            return f"a whole number from {int(self.low)} to {int(self.high)}{self.unit}"
        return f"a number from {self.low:g} to {self.high:g}{self.unit}"

    def check(self, value: object) -> int | float | None:
        """`value` as this rule's number, or None if it is not one (a bool is not a number)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.whole and isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                return None
            value = int(value)
        if not (math.isfinite(value) and self.low <= value <= self.high):
            return None
        return value

    def parse(self, text: str) -> int | float | None:
        try:
            value: int | float = int(text) if self.whole else float(text)
        except (TypeError, ValueError):
            return None
        return self.check(value)


RULES = {
    "candidates": Rule(1, MAX_CANDIDATES, whole=True),
    "duration": Rule(1, MAX_OUTPUT_S, unit=" s"),
    "max_duration": Rule(1, MAX_OUTPUT_S, unit=" s"),
    "seed": Rule(0, MAX_SEED, whole=True),
    "threads": Rule(1, MAX_THREADS, whole=True),
    "lufs": Rule(catalog.MIN_LUFS, catalog.MAX_LUFS, unit=" LUFS"),
    "strength": Rule(0, 1),
    "top_k": Rule(0, 2048, whole=True),  # MusicGen's codebook size
    "top_p": Rule(0, 1),
    "temperature": Rule(0, 10),
    "guidance": Rule(0, 20),
    "bpm": Rule(*GIVEN_BPM_RANGE, unit=" BPM"),
    "beats_per_bar": Rule(*BEATS_PER_BAR_RANGE, whole=True),
    "intro": Rule(0, MAX_INTRO_BARS, whole=True, unit=" bars"),  # and intro + loop within the maximum length
}


def option(name: str) -> Callable[[str], int | float]:
    """An argparse `type` for the option whose rule is `RULES[name]`: argparse names the option."""
    rule = RULES[name]

    def parse(text: str) -> int | float:
        value = rule.parse(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, not {text}")
        return value

    parse.__name__ = "whole number" if rule.whole else "number"
    return parse


def in_file(table: dict, key: str, where: str, rule_name: str | None = None) -> int | float | None:
    """`table[key]` (None if absent) checked by its rule; a refusal names `where` and the key as
    the file spells it, e.g. "Track boss: duration = nan: it must be a number from 1 to 3600 s"."""
    value = table.get(key)
    if value is None:
        return None
    rule = RULES[rule_name or key]
    checked = rule.check(value)
    if checked is None:
        raise InvalidRequestError(f"{where}: {key} = {_toml(value)}: it must be {rule.describe()}.")
    return checked


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
