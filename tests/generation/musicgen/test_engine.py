"""The engine on the debug model: conditioning really conditions, seeds reproduce, progress and
cancel behave, and long pieces are built from audiocraft's windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.errors import GenerationCancelled
from generation.interface import CancelToken
from generation.musicgen.codec import decode_codes
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.params import SamplingParams
from tests.audio_factory import melody

SECONDS = 3.0


class RecordingBackend:
    """Wraps a real backend and keeps what each window was given and gave back."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.batches, self.outputs = [], []

    def generate_window(self, batch, on_step):
        codes = self.inner.generate_window(batch, on_step)
        self.batches.append(batch)
        self.outputs.append(codes)
        return codes


@pytest.fixture(params=["fast", "reference"])
def engine(request, fast_engine, reference_engine) -> MusicGenEngine:
    return fast_engine if request.param == "fast" else reference_engine


def test_same_melody_prompt_and_seed_give_identical_audio(fast_engine, rising_melody):
    job = melody_job("serene ambient piano", rising_melody, (7,), SECONDS)
    assert np.array_equal(fast_engine.generate(job), fast_engine.generate(job))


def test_a_different_melody_gives_different_audio(engine, rising_melody, falling_melody):
    # transformers 4.57-5.17 dropped the conditioning: both melodies then gave identical audio.
    rising = engine.generate(melody_job("serene ambient piano", rising_melody, (7,), SECONDS))
    falling = engine.generate(melody_job("serene ambient piano", falling_melody, (7,), SECONDS))
    assert not np.array_equal(rising, falling)


def test_a_different_prompt_gives_different_audio(fast_engine, rising_melody):
    calm = fast_engine.generate_codes(melody_job("serene ambient piano", rising_melody, (7,), SECONDS))
    loud = fast_engine.generate_codes(
        melody_job("aggressive metal, double bass drums", rising_melody, (7,), SECONDS)
    )
    assert not torch.equal(calm, loud)


def test_each_candidate_is_reproducible_from_its_own_seed(engine, rising_melody):
    batch = engine.generate_codes(melody_job("chiptune", rising_melody, (5, 6, 7), SECONDS))
    alone = engine.generate_codes(melody_job("chiptune", rising_melody, (6,), SECONDS))
    assert torch.equal(batch[1], alone[0])
    assert not torch.equal(batch[0], batch[1])


def test_audio_has_the_asked_shape_and_is_finite(fast_engine, rising_melody):
    audio = fast_engine.generate(melody_job("lofi", rising_melody, (1, 2), SECONDS))
    assert audio.shape == (2, 1, int(SECONDS * 32_000))
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_progress_reaches_total_and_only_grows(engine, rising_melody):
    reports: list[tuple[int, int]] = []
    engine.generate(
        melody_job("lofi", rising_melody, (1,), SECONDS), on_progress=lambda d, t: reports.append((d, t))
    )
    done = [d for d, _ in reports]
    total = engine.total_steps(SECONDS)
    assert total == int(SECONDS * 50) + 3
    assert done == list(range(1, total + 1))
    assert {t for _, t in reports} == {total}


@pytest.mark.parametrize("stop_after", [1, 40])
def test_cancel_stops_within_one_step(engine, rising_melody, stop_after):
    token = CancelToken()
    reports: list[int] = []

    def on_progress(done: int, total: int) -> None:
        reports.append(done)
        if done == stop_after:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        engine.generate(melody_job("lofi", rising_melody, (1, 2), SECONDS), on_progress, token)
    assert reports[-1] == stop_after  # no step ran to completion after the cancel


def test_a_75_second_seed_gives_75_seconds_from_audiocraft_windows(debug_lm):
    engine = MusicGenEngine(debug_lm, backend="fast")
    recorder = engine.backend = RecordingBackend(engine.backend)
    tune = melody([261.6, 329.6, 392.0, 329.6], 2.5, 32_000)  # 10 s: the melody loops under 75 s
    codes = engine.generate_codes(melody_job("orchestral", tune, (3,), 75.0))
    assert codes.shape == (1, 4, 75 * 50)
    windows = [batch.window for batch in recorder.batches]
    assert [(w.offset_s, w.prompt_frames, w.total_frames) for w in windows] == [
        (0.0, 0, 1500),
        (18.0, 600, 1500),
        (36.0, 600, 1500),
        (54.0, 600, 1050),
    ]
    for previous, batch in zip(recorder.outputs, recorder.batches[1:], strict=False):
        assert torch.equal(batch.prompt_codes, previous[:, :, -600:])  # the previous window's last 12 s
    seams = torch.cat([recorder.outputs[0], *(out[:, :, 600:] for out in recorder.outputs[1:])], dim=-1)
    assert torch.equal(codes, seams)
    assert decode_codes(debug_lm, codes).shape == (1, 1, 75 * 32_000)  # decoded once, in one piece


def test_jobs_with_different_prompts_share_a_batch_and_match_solo_runs(
    fast_engine, rising_melody, falling_melody
):
    first = melody_job("serene ambient piano", rising_melody, (1, 2), SECONDS)
    second = melody_job(
        "a much longer prompt: heroic orchestral brass with timpani", falling_melody, (3,), SECONDS
    )
    assert fast_engine.can_batch(first, second)
    together = fast_engine.generate_latents([first, second], [None, None], [None, None])
    assert torch.equal(together[0], fast_engine.generate_codes(first))
    assert torch.equal(together[1], fast_engine.generate_codes(second))


def test_cancelling_one_job_of_a_batch_lets_the_other_finish(fast_engine, rising_melody, falling_melody):
    first = melody_job("serene ambient piano", rising_melody, (1,), SECONDS)
    second = melody_job("heroic brass", falling_melody, (2,), SECONDS)
    token = CancelToken()
    seen: list[int] = []

    def cancel_first(done: int, total: int) -> None:
        seen.append(done)
        if done == 10:
            token.cancel()

    outcomes = fast_engine.generate_latents([first, second], [cancel_first, None], [token, None])
    assert isinstance(outcomes[0], GenerationCancelled)
    assert seen[-1] == 10
    assert torch.equal(outcomes[1], fast_engine.generate_codes(second))


def test_jobs_that_differ_in_length_or_sampling_do_not_share(fast_engine, reference_engine, rising_melody):
    base = melody_job("a", rising_melody, (1,), SECONDS)
    assert not fast_engine.can_batch(base, melody_job("a", rising_melody, (1,), SECONDS + 1))
    assert not fast_engine.can_batch(
        base, melody_job("a", rising_melody, (1,), SECONDS, SamplingParams(top_k=10))
    )
    assert not reference_engine.can_batch(base, base)


def test_the_stereo_model_gives_two_channels(rising_melody):
    from generation.musicgen.models import load_model

    engine = MusicGenEngine(load_model("debug-stereo", device="cpu"))
    audio = engine.generate(melody_job("wide stereo pads", rising_melody, (4,), 2.0))
    assert audio.shape == (1, 2, 64_000)
    assert not np.array_equal(audio[0, 0], audio[0, 1])


def test_a_broken_fast_path_falls_back_to_generate(debug_lm, rising_melody):
    class Broken:
        name = "fast"

        def generate_window(self, batch, on_step):
            on_step()
            raise RuntimeError("CUDA graph capture failed")

    engine = MusicGenEngine(debug_lm, backend="fast")
    engine.backend = Broken()
    reports: list[int] = []
    codes = engine.generate_codes(
        melody_job("harp", rising_melody, (8,), 2.0), on_progress=lambda d, t: reports.append(d)
    )
    assert engine.backend.name == "reference"
    assert torch.equal(
        codes,
        MusicGenEngine(debug_lm, "reference").generate_codes(melody_job("harp", rising_melody, (8,), 2.0)),
    )
    # the failed attempt's steps are run again but not reported twice: progress never goes back
    assert reports[-1] == engine.total_steps(2.0) and reports == sorted(set(reports))


def test_a_cancelled_generation_lets_go_of_its_cache(debug_lm, rising_melody):
    import gc
    import weakref

    from generation.musicgen.backends.fast import FastBackend

    engine = MusicGenEngine(debug_lm, backend="fast")
    states: list[weakref.ref] = []
    allocate = FastBackend._allocate

    def recording(self, batch, prefix, guided):
        state = allocate(self, batch, prefix, guided)
        states.append(weakref.ref(state.keys_cache[0]))
        return state

    token = CancelToken()
    engine.backend._allocate = recording.__get__(engine.backend)
    with pytest.raises(GenerationCancelled):
        engine.generate(
            melody_job("pad", rising_melody, (1, 2), 3.0), lambda d, t: d == 20 and token.cancel(), token
        )
    gc.collect()
    assert states and states[0]() is None, "the key/value cache outlived the cancelled job"
