"""Upstream ACE-Step 1.5's conventions, as the real pipeline is called: an instrumental request, the
duration in the prompt's metadata, steps and shift within the turbo model's trained schedules, the
default strength, the licence of the repositories loaded."""

from __future__ import annotations

import math

import pytest

from generation.acestep.checkpoints import CHECKPOINTS
from generation.acestep.engine import told_duration
from generation.acestep.params import MAX_STEPS, TURBO_TIMESTEPS, CoverParams, cover_job, latent_frames
from generation.errors import InvalidRequestError

# The native turbo model's table (ACE-Step 1.5 turbo `generate_audio`: SHIFT_TIMESTEPS, fix_nfe=8).
UPSTREAM_SHIFT_3 = (1.0, 0.9545454545454546, 0.9, 0.8333333333333334, 0.75, 0.6428571428571429, 0.5, 0.3)


@pytest.fixture
def calls(ace_engine, monkeypatch):
    """What the engine hands the real pipeline: each `encode_prompt` and `__call__`'s keywords, and
    the text the text encoder reads (the calls still run)."""
    pipe, seen = ace_engine.pipe, {"encode": [], "text": [], "call": []}
    encode, format_prompt, call = pipe.encode_prompt, pipe._format_prompt, type(pipe).__call__

    def encode_spy(**kwargs):
        seen["encode"].append(kwargs)
        return encode(**kwargs)

    def format_spy(**kwargs):
        text = format_prompt(**kwargs)
        seen["text"].append(text[0])
        return text

    def call_spy(self, **kwargs):
        seen["call"].append(kwargs)
        return call(self, **kwargs)

    monkeypatch.setattr(pipe, "encode_prompt", encode_spy)
    monkeypatch.setattr(pipe, "_format_prompt", format_spy)
    monkeypatch.setattr(type(pipe), "__call__", call_spy)
    return seen


def test_an_instrumental_request_as_upstream_sends_it(ace_engine, rising, calls):
    ace_engine.generate(cover_job("lo-fi hip hop", rising, (1,), 1.0, CoverParams(strength=0.5)))
    assert len(calls["encode"]) >= 2  # the cover call, then the text-to-music one
    for kwargs in calls["encode"]:
        assert kwargs["lyrics"] == ["[Instrumental]"]
        assert kwargs["vocal_language"] == "unknown"


def test_the_prompt_says_the_duration_in_whole_seconds_exactly(ace_engine, rising, calls):
    ace_engine.generate(cover_job("lo-fi hip hop", rising, (1,), 3.0))
    assert calls["text"] and all("- duration: 3 seconds" in text for text in calls["text"])  # not "2"


def test_the_told_duration_gives_back_the_frames_and_their_whole_seconds():
    for frames in range(5, 15_001, 5):
        told = told_duration(frames)
        assert math.ceil(told * 25) == frames  # the pipeline's own latent length
        assert int(told) == frames // 25
    assert told_duration(latent_frames(30.0)) == 30.0


def test_eight_steps_at_shift_3_are_the_trained_table(calls, ace_engine, rising):
    assert CoverParams().schedule == pytest.approx(UPSTREAM_SHIFT_3, abs=1e-12)
    ace_engine.generate(cover_job("lo-fi hip hop", rising, (1,), 1.0))
    (call,) = calls["call"]
    assert call["timesteps"] == pytest.approx(UPSTREAM_SHIFT_3, abs=1e-12)


@pytest.mark.parametrize(("steps", "shift"), [(1, 3.0), (4, 1.0), (12, 2.0), (20, 3.0), (20, 1.0)])
def test_any_schedule_is_snapped_to_trained_timesteps_without_repeats(steps, shift):
    params = CoverParams(steps=steps, shift=shift)
    schedule = params.schedule
    assert all(t in TURBO_TIMESTEPS for t in schedule)
    assert list(schedule) == sorted(set(schedule), reverse=True) and schedule[0] == 1.0
    assert params.total_steps == len(schedule) <= steps
    assert params.cover_steps == int(len(schedule) * params.strength)


def test_the_engine_counts_the_steps_it_runs(ace_engine, rising, calls):
    params = CoverParams(steps=20, shift=3.0)
    seen = []
    job = cover_job("x", rising, (1,), 1.0, params)
    ace_engine.generate(job, on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (params.total_steps, params.total_steps) == (17, 17)
    assert ace_engine.total_steps(1.0, params) == 17


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"steps": MAX_STEPS + 1}, "from 1 to 20"),
        ({"shift": 2.5}, "1, 2 or 3"),
        ({"shift": 4.0}, "1, 2 or 3"),
    ],
)
def test_steps_and_shifts_the_turbo_model_never_saw_are_refused(values, words):
    with pytest.raises(InvalidRequestError, match=words):
        CoverParams(**values)


def test_the_default_strength_is_upstreams():
    assert CoverParams().strength == 1.0  # ACE-Step 1.5 api_server: audio_cover_strength = 1.0
    assert CoverParams().cover_steps == 8


def test_the_licence_urls_are_the_repositories_loaded(ace_engine):
    urls = {part.url for part in CHECKPOINTS["ace-step"]}
    assert urls == {
        "https://huggingface.co/ACE-Step/acestep-v15-xl-turbo-diffusers",
        "https://huggingface.co/ACE-Step/acestep-v15-xl-sft-diffusers",
    }
    assert ace_engine.licence.url in urls and ace_engine.licence.commercial_use
