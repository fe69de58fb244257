"""The ACE-Step engine on the debug pipeline: the source and prompt really condition, seeds reproduce,
strength means what the model's authors say it means, progress and cancel behave within a step."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from generation.acestep.params import CoverParams, cover_job
from generation.errors import GenerationCancelled, InvalidRequestError
from generation.interface import CancelToken
from tests.generation.acestep.conftest import RATE, SECONDS


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@contextlib.contextmanager
def counted_steps(engine):
    """How many times the DiT runs: once per denoising step and row group."""
    calls = []
    handle = engine.pipe.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def test_the_engine_says_what_it_makes_and_under_which_licence(ace_engine):
    assert (ace_engine.family, ace_engine.sample_rate, ace_engine.channels) == ("acestep", 48_000, 2)
    assert (ace_engine.input_rate, ace_engine.input_channels) == (48_000, 2)
    assert ace_engine.licence.name == "MIT"
    assert ace_engine.licence.commercial_use
    described = ace_engine.describe()
    assert described["licence"] == "MIT"
    assert {"name", "source", "revision", "dtype", "device"} <= described.keys()
    assert ace_engine.total_steps(SECONDS) == 8
    assert ace_engine.total_steps(600.0, CoverParams(steps=4)) == 4


def test_output_is_stereo_48k_and_exactly_the_asked_length(ace_engine, rising):
    # 2.15 s is not a whole number of audio codes (0.2 s each): the model makes 2.2 s (55 latent
    # frames, a length whose `55 / 25 * 25` rounds past 55), the engine cuts. The source is looped.
    audio = ace_engine.generate(cover_job("chiptune", rising[:, : RATE // 2], (1, 2), 2.15))
    assert audio.shape == (2, 2, round(2.15 * RATE))
    assert audio.dtype == np.float32
    assert np.isfinite(audio).all()
    assert 0 < np.abs(audio).max() <= 1.0


def test_same_inputs_give_identical_audio(ace_engine, rising):
    job = cover_job("serene ambient piano", rising, (7,), SECONDS)
    assert np.array_equal(ace_engine.generate(job), ace_engine.generate(job))


def test_a_different_source_gives_different_audio(ace_engine, rising, falling):
    up = ace_engine.generate(cover_job("serene ambient piano", rising, (7,), SECONDS))
    down = ace_engine.generate(cover_job("serene ambient piano", falling, (7,), SECONDS))
    assert not np.allclose(up, down, atol=1e-4)


def test_a_different_prompt_gives_different_audio(ace_engine, rising):
    calm = ace_engine.generate(cover_job("serene ambient piano", rising, (7,), SECONDS))
    loud = ace_engine.generate(cover_job("aggressive metal, double bass drums", rising, (7,), SECONDS))
    assert not np.allclose(calm, loud, atol=1e-5)


def test_each_candidate_is_reproducible_from_its_own_seed(ace_engine, rising):
    batch = ace_engine.generate(cover_job("chiptune", rising, (5, 6, 7), SECONDS))
    alone = ace_engine.generate(cover_job("chiptune", rising, (6,), SECONDS))
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-5)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)


def test_strength_zero_ignores_the_source(ace_engine, rising, falling):
    loose = CoverParams(strength=0.0)
    with counted_steps(ace_engine) as steps:
        up = ace_engine.generate(cover_job("chiptune", rising, (3,), SECONDS, loose))
    down = ace_engine.generate(cover_job("chiptune", falling, (3,), SECONDS, loose))
    assert np.array_equal(up, down)
    assert len(steps) == 8  # plain text-to-music: one DiT pass a step, nothing blended in


def test_the_source_matters_more_the_higher_the_strength(ace_engine, rising, falling):
    def source_effect(strength: float) -> float:
        params = CoverParams(strength=strength)
        up = ace_engine.generate(cover_job("chiptune", rising, (3,), SECONDS, params))
        down = ace_engine.generate(cover_job("chiptune", falling, (3,), SECONDS, params))
        return rms(up - down)

    full, half = source_effect(1.0), source_effect(0.5)
    assert full > 1.5 * half > 0


def test_strength_counts_whole_steps_rounding_down(ace_engine, rising):
    def cover(strength: float) -> np.ndarray:
        return ace_engine.generate(
            cover_job("chiptune", rising, (3,), SECONDS, CoverParams(strength=strength))
        )

    five_of_eight = cover(0.625)
    assert np.array_equal(cover(0.7), five_of_eight)  # int(8 * 0.7) = 5, not round(5.6) = 6
    assert not np.array_equal(cover(0.75), five_of_eight)


def test_progress_counts_every_step_across_both_phases(ace_engine, rising):
    seen = []
    ace_engine.generate(
        cover_job("chiptune", rising, (1,), SECONDS), lambda done, total: seen.append((done, total))
    )
    assert seen == [(step, 8) for step in range(1, 9)]


@pytest.mark.parametrize("cancel_at", [3, 7])  # in the cover phase, and after the switch
def test_cancel_stops_at_the_end_of_the_step_it_arrives_in(ace_engine, rising, cancel_at):
    token, seen = CancelToken(), []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == cancel_at - 1:
            token.cancel()  # after step `cancel_at - 1` was checked: as if it came during the next

    with counted_steps(ace_engine) as steps, pytest.raises(GenerationCancelled):
        ace_engine.generate(cover_job("chiptune", rising, (1,), SECONDS), progress, token)
    assert len(steps) == cancel_at  # the step it arrived in ends, no other starts
    assert seen == list(range(1, cancel_at))


def test_a_job_cancelled_before_it_starts_costs_no_step(ace_engine, rising):
    token = CancelToken()
    token.cancel()
    with counted_steps(ace_engine) as steps, pytest.raises(GenerationCancelled):
        ace_engine.generate(cover_job("chiptune", rising, (1,), SECONDS), None, token)
    assert steps == []


def test_cancelling_one_job_of_a_batch_finishes_the_others(ace_engine, rising, falling):
    first, second = (
        cover_job("chiptune", rising, (1,), SECONDS),
        cover_job("chiptune", falling, (2, 3), SECONDS),
    )
    token, late = CancelToken(), []

    def cancel_first(done: int, total: int) -> None:
        if done == 2:
            token.cancel()

    outcomes = ace_engine.generate_many(
        [first, second], [cancel_first, lambda done, total: late.append(done)], [token, None]
    )
    assert isinstance(outcomes[0], GenerationCancelled)
    assert late == list(range(1, 9))
    np.testing.assert_allclose(outcomes[1], ace_engine.generate(second), atol=1e-5)


def test_jobs_with_prompts_of_one_length_batch_and_match_their_solo_runs(ace_engine, rising, falling):
    jazz = cover_job("smooth jazz", rising, (4,), SECONDS)
    rock = cover_job("heavy rock!", falling, (5,), 0.95)  # 0.95 s and 1 s are both 25 latent frames
    assert ace_engine.can_batch(jazz, rock)
    batched = ace_engine.generate_many([jazz, rock], [None, None], [None, None])
    np.testing.assert_allclose(batched[0], ace_engine.generate(jazz), atol=1e-5)
    np.testing.assert_allclose(batched[1], ace_engine.generate(rock), atol=1e-5)
    assert batched[1].shape[-1] == round(0.95 * RATE)


def test_jobs_that_would_change_each_other_do_not_share_a_batch(ace_engine, rising):
    job = cover_job("smooth jazz", rising, (4,), SECONDS)
    longer = cover_job("smooth jazz", rising, (4,), 1.5)
    looser = cover_job("smooth jazz", rising, (4,), SECONDS, CoverParams(strength=0.5))
    wordier = cover_job("smooth jazz with brushed drums", rising, (4,), SECONDS)
    for other in (longer, looser, wordier):
        assert not ace_engine.can_batch(job, other)
    with pytest.raises(InvalidRequestError):
        ace_engine.generate_many([job, wordier], [None, None], [None, None])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda src: cover_job("x", src, (1,), 0.2), "minutes"),
        (lambda src: cover_job("x", src, (1,), 601.0), "minutes"),
        (lambda src: cover_job("x", src[:1], (1,), SECONDS), "2 channels"),
        (lambda src: cover_job("x", src[:, :0], (1,), SECONDS), "2 channels"),
        (lambda src: cover_job("x", src * np.nan, (1,), SECONDS), "finite"),
        (lambda src: cover_job("x", src, (), SECONDS), "seed"),
        (lambda src: cover_job("x", src, (1,), SECONDS, CoverParams(strength=1.5)), "strength"),
        (lambda src: cover_job("x", src, (1,), SECONDS, CoverParams(steps=0)), "steps"),
        (lambda src: cover_job("x", src, (1,), SECONDS, CoverParams(shift=0.0)), "shift"),
    ],
)
def test_bad_requests_are_refused_in_one_line_before_any_step(ace_engine, rising, make, words):
    with counted_steps(ace_engine) as steps, pytest.raises(InvalidRequestError) as refused:
        ace_engine.generate(make(rising))
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert steps == []
