"""The words a front says about a loop: "seamless" only where the figures say so; and a
candidate's files with their sizes."""

from __future__ import annotations

import pytest

from generation.audio.seam import seam_figures
from generation.game_music import deliverables, loop_verdict, seam_verdict
from generation.render import Rendered, RenderedLayer
from tests.generation.audio.loop_audio import click_track

RATE = 32_000
TRACK = click_track(16.0, RATE, first_beat_s=0.0, downbeat_index=0)  # four chords: a 4-bar cycle


def test_a_loop_cut_on_its_bars_is_called_seamless():
    verdict = seam_verdict(seam_figures(TRACK[None, : 8 * RATE], 4))
    assert verdict.seamless and verdict.words.startswith("seamless where it starts again")


@pytest.mark.parametrize("extra", [RATE // 4, RATE // 2], ids=["half-beat", "one-beat"])
def test_a_loop_cut_off_its_bars_is_not_and_the_words_say_what_is_heard(extra):
    verdict = seam_verdict(seam_figures(TRACK[None, : 8 * RATE + extra], 4))
    assert not verdict.seamless
    assert verdict.words.startswith("not quite seamless where it starts again: the sound changes")
    assert "times as much as at its other bar lines" in verdict.words and "click" in verdict.words


def test_an_intro_loop_is_seamless_only_if_its_boundary_is_too():
    good = seam_figures(TRACK[None, : 8 * RATE], 4).as_dict()
    bad = seam_figures(TRACK[None, : 8 * RATE + RATE // 4], 4).as_dict()
    assert loop_verdict({"seam": good, "intro_seam": good}).seamless
    verdict = loop_verdict({"seam": good, "intro_seam": bad})
    assert not verdict.seamless and "where the intro meets the loop" in verdict.words
    assert not loop_verdict({"seam": {**good, "jump_ratio": None}}).seamless  # unmeasured is not seamless


def test_a_candidates_deliverables_are_its_loop_then_its_layers_with_their_sizes():
    layers = tuple(
        RenderedLayer(name, f"t-{name}.wav", b"x" * n, "{}") for n, name in enumerate(("drums", "bass"), 1)
    )
    rendered = Rendered(None, "t.wav", b"abc", None, b"flac!", "{}", layers)
    files = [(item.filename, item.kind, item.layer, item.size) for item in deliverables(rendered)]
    assert files == [
        ("t.wav", "loop", None, 3),
        ("t-drums.wav", "layer", "drums", 1),
        ("t-bass.wav", "layer", "bass", 2),
        ("t.flac", "lossless", None, 5),
    ]


def test_an_unmeasured_seam_is_said_in_words_not_as_inf_or_nan():
    unmeasured = {"flux_ratio": None, "flux_ratio_bar_lines": None, "jump_ratio": None}
    for entry in (unmeasured, {"flux_ratio": float("nan"), "jump_ratio": float("nan")}):
        verdict = loop_verdict({"seam": entry, "intro_seam": entry})
        assert not verdict.seamless
        assert "could not be measured" in verdict.words
        assert not {"inf", "nan"} & set(verdict.words.replace(":", " ").replace(";", " ").split())
