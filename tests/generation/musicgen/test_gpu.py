"""On a CUDA device only (`pytest -m gpu`, run by benchmarks/gpu_check.sh): the real melody
architecture with random weights, captured graphs against eager steps and against generate."""

from __future__ import annotations

import pytest
import torch

from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.params import SamplingParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module", params=["float16", "bfloat16"])
def melody_lm(request):
    from generation.musicgen.models import load_model

    lm = load_model("random:melody", device="cuda", dtype=request.param)
    yield lm
    del lm
    torch.cuda.empty_cache()


def _agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first == second).float().mean())


def test_graphs_match_eager_steps_and_generate_on_the_real_architecture(melody_lm, rising_melody):
    job = melody_job("cinematic strings", rising_melody, (1, 2), 2.0, GREEDY)
    graphs = MusicGenEngine(melody_lm, "fast")
    assert graphs.backend.fixed_spans
    eager = MusicGenEngine(melody_lm, "fast")
    eager.backend = FastBackend(melody_lm, fixed_spans=False)
    captured = graphs.generate_codes(job)
    assert (captured >= 0).all() and captured.shape == (2, 4, 100)
    # Half precision: the masked fixed span and the exact span round differently now and then.
    assert _agreement(captured, eager.generate_codes(job)) > 0.9
    assert _agreement(captured, MusicGenEngine(melody_lm, "reference").generate_codes(job)) > 0.9
    assert torch.equal(captured, graphs.generate_codes(job))  # replays are deterministic


def test_a_long_piece_captures_per_shape_and_decodes(melody_lm, rising_melody):
    engine = MusicGenEngine(melody_lm, "fast")
    audio = engine.generate(melody_job("ambient", rising_melody, (3,), 40.0))
    assert audio.shape == (1, 1, 40 * 32_000)
    shapes = engine.backend.shapes
    assert shapes.allocations == 2 and shapes.captures <= 2 * 8
