"""The per-candidate sampler: the right distribution, audiocraft's filters, reproducible per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from generation.errors import InvalidRequestError
from generation.musicgen.params import SamplingParams
from generation.musicgen.sampling import choose_tokens, gumbel_noise, mix32, row_keys

DRAWS = 40_000


def _fits(counts: np.ndarray, probs: torch.Tensor) -> bool:
    """Chi-square goodness of fit (a fixed draw, so no flakiness: it either fits or it does not)."""
    expected = probs.double().numpy()
    expected = expected / expected.sum() * counts.sum()
    return chisquare(counts, expected).pvalue > 1e-3


def _draws(logits: torch.Tensor, params: SamplingParams, position: int = 7) -> np.ndarray:
    keys = row_keys(list(range(DRAWS)), 1, window=0, device="cpu")
    chosen = choose_tokens(logits.expand(DRAWS, -1), params, keys, position)
    return np.bincount(chosen.numpy(), minlength=logits.shape[-1])


LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0, -8.0]])


def test_draws_follow_the_softmax():
    counts = _draws(LOGITS, SamplingParams(top_k=0))
    probs = torch.softmax(LOGITS[0], -1)
    kept = (probs * DRAWS > 5).numpy()  # chi-square needs expected counts above a handful
    assert _fits(counts[kept], probs[kept])


def test_temperature_flattens_the_distribution():
    counts = _draws(LOGITS, SamplingParams(top_k=0, temperature=2.0))
    assert _fits(counts, torch.softmax(LOGITS[0] / 2.0, -1))


def test_top_k_keeps_the_k_best_and_renormalises():
    counts = _draws(LOGITS, SamplingParams(top_k=3))
    assert counts[3:].sum() == 0
    assert _fits(counts[:3], torch.softmax(LOGITS[0, :3], -1))


def test_top_p_keeps_the_nucleus_as_audiocraft_does():
    probs = torch.softmax(LOGITS[0], -1)
    # audiocraft keeps a token while the mass before it is <= p.
    before = torch.cumsum(probs, 0) - probs
    for p in (0.5, 0.8, 0.95):
        counts = _draws(LOGITS, SamplingParams(top_p=p, top_k=250))  # top_p wins over top_k
        kept = (before <= p).numpy()
        assert (counts[~kept] == 0).all() and (counts[kept] > 0).all()


def test_temperature_zero_is_greedy():
    chosen = choose_tokens(
        LOGITS.expand(5, -1), SamplingParams(temperature=0), row_keys([1] * 5, 1, 0, "cpu"), 3
    )
    assert chosen.tolist() == [0] * 5


def test_a_draw_depends_only_on_seed_window_position_codebook():
    keys = row_keys([11, 12], 4, window=0, device="cpu")
    alone = row_keys([12], 4, window=0, device="cpu")
    assert torch.equal(keys[4:], alone), "a candidate's stream must not depend on its batch mates"
    assert torch.equal(gumbel_noise(keys, 5, 16), gumbel_noise(keys, 5, 16))
    assert not torch.equal(gumbel_noise(keys, 5, 16), gumbel_noise(keys, 6, 16))
    assert not torch.equal(row_keys([11], 4, 0, "cpu"), row_keys([11], 4, 1, "cpu"))
    assert len(set(keys.tolist())) == 8


def test_uniforms_are_never_zero_or_one_and_look_uniform():
    noise = gumbel_noise(row_keys(list(range(64)), 4, 0, "cpu"), 0, 2048)
    assert torch.isfinite(noise).all()
    uniform = torch.exp(-torch.exp(-noise)).flatten().numpy()
    histogram = np.histogram(uniform, bins=16, range=(0, 1))[0]
    assert chisquare(histogram).pvalue > 1e-3


def test_mix32_stays_in_32_bits_and_spreads_bits():
    values = mix32(torch.arange(10_000, dtype=torch.int64))
    assert int(values.min()) >= 0 and int(values.max()) < 2**32
    assert len(set(values.tolist())) == 10_000
    ones = [(values >> bit & 1).float().mean().item() for bit in range(32)]
    assert all(0.45 < share < 0.55 for share in ones)


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(top_k=-1),
        SamplingParams(top_p=1.5),
        SamplingParams(temperature=-1),
        SamplingParams(guidance_scale=99),
    ],
)
def test_out_of_range_parameters_are_refused(params):
    with pytest.raises(InvalidRequestError):
        params.validate()
