"""What the fronts say about a game-music result: whether a loop loops seamlessly, in words a
member understands, and which files a candidate delivers (with their sizes, for upload budgets).

The verdict's thresholds come from `python -m benchmarks.loop_seams` on real music (13 public-domain
reels rendered with a General MIDI soundfont, docs/game-music.md): folded loops and a generated
intro -> loop boundary measure 1.00-1.04x at bar lines with a jump of 0.24-0.57x; a loop cut half a
beat off its bars measures 1.30x and a 2.6x jump, a spliced intro 1.31x and a 2.2x jump. A wrap is
called seamless when it changes the sound at most 1.2x as much as the loop's other bar lines do and
its sample step is at most 2x the track's typical one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from generation.audio.seam import SeamFigures

SEAMLESS_FLUX = 1.2  # the wrap's spectral change over the loop's other bar lines'
SEAMLESS_JUMP = 2.0  # the wrap's sample step over the track's 95th-percentile step


@dataclass(frozen=True)
class SeamVerdict:
    seamless: bool
    words: str  # one sentence for a member, no jargon


def seam_verdict(seam: SeamFigures, *, where: str = "where it starts again") -> SeamVerdict:
    """Whether a wrap (or an intro's boundary: `where="where the intro meets the loop"`) is seamless."""
    flux = seam.flux_ratio_bar_lines if math.isfinite(seam.flux_ratio_bar_lines) else seam.flux_ratio
    jump = seam.jump_ratio
    if flux <= SEAMLESS_FLUX and jump <= SEAMLESS_JUMP:
        return SeamVerdict(True, f"seamless {where}: no bigger a change than at any other bar line")
    # A ratio that is not finite (NaN, or a sidecar's null) was not measured, say on a silent
    # track: a member reads that in words, never "inf times".
    if not (math.isfinite(flux) and math.isfinite(jump)):
        return SeamVerdict(False, f"not quite seamless {where}: its seam could not be measured")
    problems = []
    if flux > SEAMLESS_FLUX:
        problems.append(f"the sound changes {flux:.1f} times as much as at its other bar lines")
    if jump > SEAMLESS_JUMP:
        problems.append(f"there may be a click (a step {jump:.1f} times the track's usual)")
    return SeamVerdict(False, f"not quite seamless {where}: " + " and ".join(problems))


def loop_verdict(loop_entry: dict[str, Any]) -> SeamVerdict:
    """The verdict of a candidate's sidecar `loop` entry: its wrap and, with an intro, its boundary."""
    wrap = seam_verdict(_figures(loop_entry["seam"]))
    if "intro_seam" not in loop_entry:
        return wrap
    boundary = seam_verdict(_figures(loop_entry["intro_seam"]), where="where the intro meets the loop")
    if wrap.seamless and boundary.seamless:
        return SeamVerdict(True, "seamless where it starts again and where the intro meets the loop")
    return SeamVerdict(False, "; ".join(v.words for v in (wrap, boundary) if not v.seamless))


def _figures(entry: dict[str, float | None]) -> SeamFigures:
    """A sidecar's seam entry back to figures (JSON's null was a NaN or an infinity: unmeasured)."""
    value = lambda key: math.inf if entry.get(key) is None else float(entry[key])  # noqa: E731
    return SeamFigures(
        value("flux_ratio"),
        value("flux_ratio_bar_lines"),
        value("flux_percentile"),
        value("jump"),
        value("jump_ratio"),
    )


@dataclass(frozen=True)
class Deliverable:
    filename: str
    kind: str  # "loop" (with its loop points), "layer" or "lossless"
    layer: str | None  # drums, bass, other or vocals, for layers
    size: int  # bytes


def deliverables(rendered: Any) -> list[Deliverable]:
    """A `generation.render.Rendered` candidate's files, the loop first, then its layers (and its
    lossless copy where one was made), each with its size."""
    files = [Deliverable(rendered.filename, "loop", None, len(rendered.data))]
    files += [Deliverable(item.filename, "layer", item.name, len(item.data)) for item in rendered.layers]
    if rendered.lossless is not None:
        stem = rendered.filename.rpartition(".")[0] or rendered.filename
        files.append(Deliverable(f"{stem}.flac", "lossless", None, len(rendered.lossless)))
    return files
