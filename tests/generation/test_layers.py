"""Layers: whatever the separator gives, the four layers sum to the candidate to the 16-bit sample,
last as long and carry its loop points; silent layers are kept and said."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generation.audio.stems import build_random_separator
from generation.layers import (
    FULL_SCALE,
    REMAINDER_LAYER,
    layer_entry,
    layers_sidecar,
    mix_layers,
    separate_layers,
)
from generation.outputs import LAYER_NAMES, layer_filename
from tests.generation.audio.loop_audio import smpl_loops, tags_and_length

RATE = 32_000


def music(channels: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sign(np.sin(2 * np.pi * 2 * t))
    return np.stack([tone * (1 - 0.2 * c) for c in range(channels)]).astype(np.float32)


def as_ints(audio: np.ndarray) -> np.ndarray:
    ints = audio.astype(np.float64) * FULL_SCALE
    np.testing.assert_array_equal(ints, np.round(ints))  # exactly on the 16-bit grid
    return ints.astype(np.int64)


STEMS = {
    "random": lambda audio: (
        np.random.default_rng(4).standard_normal((4, *audio.shape)).astype(np.float32) * 0.2
    ),
    "silent": lambda audio: np.zeros((4, *audio.shape), dtype=np.float32),
    "all-the-mix": lambda audio: np.stack([audio] * 4),
}


@pytest.mark.parametrize("stems", STEMS.values(), ids=STEMS.keys())
def test_layers_sum_to_the_candidate_to_the_sample_whatever_the_separator_gives(stems):
    mastered = music(2) * 1.7
    mix = mix_layers(mastered, stems(music(2)), gain_db=20 * np.log10(1.7))
    total = sum(as_ints(mix.layers[name]) for name in LAYER_NAMES)
    np.testing.assert_array_equal(total, as_ints(mix.candidate))
    np.testing.assert_allclose(mix.candidate, mastered, atol=1 / FULL_SCALE)  # the candidate, quantised
    assert all(layer.shape == mastered.shape for layer in mix.layers.values())


def test_three_layers_are_the_separators_own_at_the_candidates_gain():
    stems = STEMS["random"](music(1)) * 0.05
    mix = mix_layers(music(1) * 2, stems, gain_db=20 * np.log10(2))
    assert mix.trimmed == 0
    for index, name in enumerate(LAYER_NAMES):
        if name != REMAINDER_LAYER:
            np.testing.assert_allclose(
                mix.layers[name], np.clip(stems[index] * 2, -1, 1), atol=1 / FULL_SCALE
            )


def test_layers_too_loud_for_the_remainder_are_pulled_in_until_the_sum_is_exact_and_it_is_said():
    stems = np.full((4, 1, 4000), 0.9, dtype=np.float32)  # three loud layers: the remainder would be -2.7
    stems[:, :, :1000] = 0.1  # here it fits
    candidate = np.full((1, 4000), -0.5, dtype=np.float32)
    mix = mix_layers(candidate, stems, gain_db=0.0)
    assert mix.trimmed == 3000
    total = sum(as_ints(mix.layers[name]) for name in LAYER_NAMES)
    np.testing.assert_array_equal(total, as_ints(mix.candidate))
    np.testing.assert_allclose(mix.layers["drums"][:, :1000], 0.1, atol=1 / FULL_SCALE)  # untouched here
    assert np.abs(mix.layers[REMAINDER_LAYER]).max() <= 1
    assert layers_sidecar([], trimmed=3000, lossless=True)["trimmed_samples"] == 3000
    assert layers_sidecar([], trimmed=0, lossless=False)["sum"].startswith("approximate: ogg is lossy")


@pytest.mark.parametrize(
    ("channels", "loop_start"), [(1, 0), (2, RATE // 2)], ids=["mono-loop", "stereo-intro"]
)
def test_a_separator_gives_four_layers_as_long_as_the_candidate(channels, loop_start):
    for seed in (0, 7):  # two different random separators
        stems = separate_layers(build_random_separator(seed), music(channels), RATE, loop_start)
        assert stems.shape == (4, channels, 2 * RATE) and stems.dtype == np.float32
        assert np.isfinite(stems).all() and np.abs(stems).max() > 0


def test_a_silent_layer_is_kept_and_said():
    silent = layer_entry("vocals", "theme-vocals.wav", np.zeros((1, RATE)), RATE)
    heard = layer_entry("drums", "theme-drums.wav", music(1), RATE)
    assert silent["silent"] and silent["integrated_lufs"] is None
    assert not heard["silent"] and heard["integrated_lufs"] is not None
    entry = layers_sidecar([heard, silent], trimmed=0, lossless=True)
    assert entry["silent_layers"] == ["vocals"] and len(entry["files"]) == 2
    assert entry["remainder_layer"] == "other"


def test_layer_files_are_named_after_their_candidate():
    assert layer_filename("theme-1.wav", "drums") == "theme-1-drums.wav"
    assert layer_filename("theme.ogg", "bass") == "theme-bass.ogg"


@pytest.fixture(scope="module")
def looped_with_layers(fast_engine):
    from generation.audio.decode import SeedAudio
    from generation.layers import with_layers
    from generation.loops import LoopOptions, restyle_loop
    from generation.results import RestyleOptions
    from tests.generation.audio.loop_audio import click_track

    seed = SeedAudio(click_track(8.0, RATE), RATE, "0" * 64, "test")
    options = RestyleOptions(duration_s=2.0, seed=1)
    looped = restyle_loop(fast_engine, seed, "chiptune", options, LoopOptions(intro_bars=1))
    return seed, with_layers(looped, build_random_separator(3))


@pytest.mark.parametrize("format_name", ["wav", "flac", "ogg"])
def test_rendered_layers_carry_the_candidates_loop_points(fast_engine, looped_with_layers, format_name):
    from generation.render import render_candidates

    seed, looped = looped_with_layers
    (rendered,) = render_candidates(
        looped.result, fast_engine, seed, name="t", format_name=format_name, loop=looped.info
    )
    candidate_tags, candidate_length, _ = tags_and_length(rendered.data)
    assert [layer.name for layer in rendered.layers] == list(LAYER_NAMES)
    for layer in rendered.layers:
        tags, length, _ = tags_and_length(layer.data)
        assert length == candidate_length
        if format_name == "wav":
            assert smpl_loops(layer.data) == smpl_loops(rendered.data) == [(0, 2 * RATE, 4 * RATE - 1, 0)]
        else:
            loop_tags = {key: tags[key] for key in ("LOOPSTART", "LOOPLENGTH")}
            assert loop_tags == {key: candidate_tags[key] for key in ("LOOPSTART", "LOOPLENGTH")}
    entry = json.loads(rendered.sidecar)["loop"]["layers"]
    assert entry["sum"].startswith("exact" if format_name != "ogg" else "approximate")
