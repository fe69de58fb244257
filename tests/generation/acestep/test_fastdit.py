"""The DiT made cheaper at load (`generation.acestep.fastdit`): the same velocities as diffusers' DiT
step after step, conditions that change are noticed, what it saves loads in diffusers, and a whole
cover stays within its stated distance in float32 and in bfloat16."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers.models.normalization import RMSNorm
from diffusers.models.transformers.ace_step_transformer import AceStepAttnProcessor2_0

from generation.acestep import fastdit
from generation.acestep.architectures import ARCHITECTURES, DEBUG_MODELS, build_transformer
from generation.acestep.engine import AceStepEngine
from generation.acestep.loading import load_acestep
from generation.acestep.params import CoverParams, cover_job
from generation.acestep.precision import is_tiny, pick_acestep_dtype


def snr_db(truth: torch.Tensor | np.ndarray, other: torch.Tensor | np.ndarray) -> float:
    truth, other = torch.as_tensor(truth, dtype=torch.float64), torch.as_tensor(other, dtype=torch.float64)
    return float(10 * torch.log10(truth.pow(2).mean() / (truth - other).pow(2).mean()))


def pair():
    torch.manual_seed(3)
    reference = build_transformer(ARCHITECTURES["debug-ace"]).eval()
    fast = copy.deepcopy(reference)
    fastdit.speed_up(fast)
    return reference, fast


def inputs(frames: int = 24, tokens: int = 7):
    hidden = ARCHITECTURES["debug-ace"].encoder_hidden
    return torch.randn(1, frames, 8), torch.randn(1, frames, 16), torch.randn(1, tokens, hidden)


def step(dit, noisy, context, conditions, t: float = 0.5) -> torch.Tensor:
    timestep = torch.full((1,), t)
    with torch.no_grad():
        return dit(noisy, timestep, timestep, conditions, context).sample


def unfast(transformer) -> None:
    """Back to diffusers' own classes and processors: the reference, with the same weights."""
    for module in transformer.modules():
        if isinstance(module, fastdit.FusedRMSNorm):
            module.__class__ = RMSNorm
        if isinstance(module, fastdit.CachedLinear):
            module.__class__ = torch.nn.Linear
    for layer in transformer.layers:
        for attn in (layer.self_attn, layer.cross_attn):
            attn.set_processor(AceStepAttnProcessor2_0())


def test_the_fast_dit_gives_diffusers_velocities_step_after_step():
    reference, fast = pair()
    noisy, context, conditions = inputs()
    for t in (1.0, 0.7, 0.3):  # the later steps reuse the conditions' keys and values
        truth = step(reference, noisy, context, conditions, t)
        torch.testing.assert_close(step(fast, noisy, context, conditions, t), truth, rtol=1e-5, atol=1e-6)
    norms = [m for m in fast.modules() if isinstance(m, RMSNorm)]
    assert norms and all(type(m) is fastdit.FusedRMSNorm for m in norms)


def test_new_or_changed_conditions_are_not_answered_from_what_was_kept():
    reference, fast = pair()
    noisy, context, conditions = inputs()
    step(fast, noisy, context, conditions)
    conditions.mul_(-2.0)  # the same tensor, written in place
    close = {"rtol": 1e-5, "atol": 1e-6}
    truth = step(reference, noisy, context, conditions)
    torch.testing.assert_close(step(fast, noisy, context, conditions), truth, **close)
    other = torch.randn_like(conditions)
    torch.testing.assert_close(
        step(fast, noisy, context, other), step(reference, noisy, context, other), **close
    )
    fastdit.forget(fast)
    assert all(getattr(m, "_last", None) is None for m in fast.modules())
    assert all(getattr(getattr(m, "processor", None), "_kv", None) is None for m in fast.modules())


def test_a_fast_dit_saves_what_diffusers_reads_back(tmp_path):
    from diffusers import AceStepTransformer1DModel

    reference, fast = pair()
    assert fast.state_dict().keys() == reference.state_dict().keys()
    fast.save_pretrained(tmp_path)
    again = AceStepTransformer1DModel.from_pretrained(tmp_path).eval()
    saved = again.state_dict()
    assert all(torch.equal(saved[key], value) for key, value in reference.state_dict().items())
    noisy, context, conditions = inputs()
    torch.testing.assert_close(
        step(again, noisy, context, conditions), step(reference, noisy, context, conditions)
    )


@pytest.fixture(scope="module")
def covers(rising):
    """One cover (strength 0.5: both phases) by diffusers' DiT in float32, by the fast one in
    float32 (as loaded) and by the fast one in bfloat16 (`--dtype bfloat16`)."""
    job = cover_job("lofi piano", rising, (0,), 1.0, CoverParams(strength=0.5))

    def cover(engine) -> np.ndarray:
        return engine.generate_many([job], [None], [None])[0]

    reference = load_acestep("debug-ace", device="cpu")
    unfast(reference.pipe.transformer)
    return (
        cover(AceStepEngine(reference)),
        cover(AceStepEngine(load_acestep("debug-ace", device="cpu"))),
        cover(AceStepEngine(load_acestep("debug-ace", device="cpu", dtype="bfloat16"))),
    )


def test_a_float32_cover_with_the_fast_dit_is_diffusers_cover(covers):
    reference, fast, _ = covers
    assert snr_db(reference, fast) > 100  # float32 rounding alone (measured ~120 dB)


def test_a_bfloat16_cover_stays_within_its_stated_distance(covers):
    reference, _, reduced = covers
    assert 25 < snr_db(reference, reduced) < 100  # ran in bfloat16, ~36 dB here (docs/models-acestep.md)


def test_auto_is_bfloat16_for_released_models_on_cpus_with_bfloat16_instructions(monkeypatch, tmp_path):
    from generation.acestep import precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert pick_acestep_dtype("auto", cpu, tiny=False) is torch.bfloat16
    assert pick_acestep_dtype("float32", cpu, tiny=False) is torch.float32
    assert pick_acestep_dtype("auto", cpu, tiny=True) is torch.float32
    assert all(is_tiny("random", spec) for spec in DEBUG_MODELS)
    assert not is_tiny("random", "ace-step") and not is_tiny("hub", "ace-step")
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text('{"hidden_size": 2048}')
    assert not is_tiny("local", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)  # emulated: slower than float32
    assert pick_acestep_dtype("auto", cpu, tiny=False) is torch.float32


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_seed_is_encoded_in_the_pipelines_dtype(rising, dtype):
    from generation.acestep.audio import source_codes

    pipe = load_acestep("debug-ace", device="cpu", dtype=dtype).pipe
    seen = []
    pipe.vae.encoder.register_forward_hook(lambda _module, _inputs, out: seen.append(out.dtype))
    codes = source_codes(pipe, rising, 25)
    assert codes.startswith("<|audio_code_") and seen == [getattr(torch, dtype)]
