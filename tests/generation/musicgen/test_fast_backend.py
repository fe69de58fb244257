"""The fast decode loop against transformers' own `generate`, the oracle: the same tokens.

Greedy choice checks the arithmetic; sampled choice checks that both feed the same per-candidate
sampler the same logits at the same positions. Both run on the CPU here; the GPU test runs where a
CUDA device is present.
"""

from __future__ import annotations

import pytest
import torch

from generation.interface import Job
from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.models import load_model
from generation.musicgen.params import SamplingParams

GREEDY = SamplingParams(temperature=0.0)
SAMPLED = SamplingParams()


def _both(lm, job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    return MusicGenEngine(lm, "reference").generate_codes(job), MusicGenEngine(lm, "fast").generate_codes(job)


@pytest.mark.parametrize(
    "sampling",
    [GREEDY, SAMPLED, SamplingParams(guidance_scale=1.0)],
    ids=["greedy", "sampled", "no-guidance"],
)
def test_debug_model_tokens_match_generate(debug_lm, rising_melody, sampling):
    reference, fast = _both(
        debug_lm, melody_job("serene ambient piano", rising_melody, (11, 12, 13), 3.0, sampling)
    )
    assert torch.equal(reference, fast)


def test_tokens_match_across_windows(debug_lm, rising_melody):
    reference, fast = _both(debug_lm, melody_job("lofi hip hop", rising_melody, (21, 22), 40.0, SAMPLED))
    assert reference.shape == (2, 4, 2000)
    assert torch.equal(reference, fast)


@pytest.fixture(scope="module")
def mid_lm():
    return load_model("random:mid", device="cpu", dtype="float32")


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_mid_size_model_tokens_match_generate(mid_lm, rising_melody, sampling):
    reference, fast = _both(mid_lm, melody_job("cinematic strings", rising_melody, (31, 32), 1.5, sampling))
    assert torch.equal(reference, fast)


def test_stereo_model_tokens_match_generate(rising_melody):
    lm = load_model("debug-stereo", device="cpu")
    reference, fast = _both(lm, melody_job("wide pads", rising_melody, (41,), 2.0, SAMPLED))
    assert reference.shape == (1, 8, 100)
    assert torch.equal(reference, fast)


def test_fixed_span_steps_match_eager_steps(debug_lm, rising_melody):
    """The graph-ready step (fixed shapes, masked attention) against the eager one, on the CPU."""
    job = melody_job("music box", rising_melody, (51, 52), 12.0, SAMPLED)  # 600 frames: three spans of slots
    eager = MusicGenEngine(debug_lm, "fast")
    fixed = MusicGenEngine(debug_lm, "fast")
    fixed.backend = FastBackend(debug_lm, fixed_spans=True)
    assert torch.equal(eager.generate_codes(job), fixed.generate_codes(job))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_match_eager_on_gpu(rising_melody):
    lm = load_model("debug", device="cuda", dtype="float32")
    job = melody_job("music box", rising_melody, (61, 62), 12.0, SAMPLED)
    eager = MusicGenEngine(lm, "fast")
    eager.backend = FastBackend(lm, fixed_spans=False)
    graphs = MusicGenEngine(lm, "fast")  # fixed spans, captured as CUDA graphs
    assert torch.equal(eager.generate_codes(job), graphs.generate_codes(job))
    assert torch.equal(MusicGenEngine(lm, "reference").generate_codes(job), eager.generate_codes(job))
