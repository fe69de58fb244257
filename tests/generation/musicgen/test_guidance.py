"""Guidance as audiocraft applies it, for every scale, and nothing taken from a checkpoint's
generation_config.json; frame counts as audiocraft counts them."""

from __future__ import annotations

import json

import pytest
import torch

from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.models import load_model
from generation.musicgen.params import SamplingParams
from generation.musicgen.windows import frames_for, total_steps


def _codes(
    engine: MusicGenEngine, melody, guidance: float, prompt: str = "serene piano", temperature: float = 1.0
):
    sampling = SamplingParams(guidance_scale=guidance, temperature=temperature)
    return engine.generate_codes(melody_job(prompt, melody, (4, 5), 1.0, sampling))


@pytest.mark.parametrize("guidance", [0.5, 1.5])
def test_both_backends_agree_for_guidance_on_either_side_of_one(
    fast_engine, reference_engine, rising_melody, guidance
):
    fast = _codes(fast_engine, rising_melody, guidance)
    assert torch.equal(fast, _codes(reference_engine, rising_melody, guidance))


def test_guidance_below_one_interpolates_instead_of_being_ignored(fast_engine, rising_melody):
    # g = 1 is the conditional model alone; g = 0.5 mixes in the unconditional one (audiocraft).
    assert not torch.equal(_codes(fast_engine, rising_melody, 0.5), _codes(fast_engine, rising_melody, 1.0))


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_guidance_zero_is_the_unconditional_model(fast_engine, reference_engine, rising_melody, backend):
    """uncond + 0 * (cond - uncond): neither the prompt nor the melody can change the codes (the
    prompts have the same length: the null text keeps the prompt's length, as in audiocraft)."""
    engine = fast_engine if backend == "fast" else reference_engine
    calm = _codes(engine, rising_melody, 0.0, "serene piano")
    loud = _codes(engine, rising_melody[::-1].copy(), 0.0, "metal guitar")
    assert torch.equal(calm, loud)


@pytest.fixture(scope="module")
def opinionated_model(tmp_path_factory, debug_lm):
    """The debug model saved with a generation_config.json that disagrees with every job."""
    folder = tmp_path_factory.mktemp("opinionated") / "musicgen"
    debug_lm.model.save_pretrained(folder)
    debug_lm.tokenizer.save_pretrained(folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(
        guidance_scale=3.0,
        do_sample=True,
        top_k=50,
        top_p=0.5,
        temperature=0.3,
        max_length=60,
        min_new_tokens=5,
        repetition_penalty=1.7,
        num_return_sequences=2,
    )
    (folder / "generation_config.json").write_text(json.dumps(config))
    return load_model(str(folder), device="cpu")


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("sampling", [(1.0, 1.0), (3.0, 1.0), (1.0, 0.0)], ids=["g1", "g3", "greedy"])
def test_a_checkpoints_generation_config_changes_nothing(
    opinionated_model, debug_lm, rising_melody, backend, sampling
):
    guidance, temperature = sampling
    saved = _codes(
        MusicGenEngine(opinionated_model, backend), rising_melody, guidance, temperature=temperature
    )
    in_process = _codes(MusicGenEngine(debug_lm, "fast"), rising_melody, guidance, temperature=temperature)
    assert saved.shape == (2, 4, 50)
    assert torch.equal(saved, in_process)


@pytest.mark.parametrize(("seconds", "frames"), [(2.3, 114), (40.3, 2014), (0.7, 35), (4.35, 217)])
def test_frames_are_counted_as_audiocraft_counts_them(fast_engine, seconds, frames):
    # audiocraft: total_gen_len = int(duration * frame_rate); 2.3 * 50 is 114.99999999999999.
    assert frames_for(seconds) == frames
    assert sum(w.new_frames for w in fast_engine.plan(seconds)) == frames
    assert fast_engine.total_steps(seconds) == total_steps(seconds)
