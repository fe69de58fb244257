"""The int8 key/value cache: its attention is exactly torch's over the rounded query, keys and
values (masks and head sizes included), and the int8 decoder uses it on eager steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.kvcache import Int8Cache, int8_cache_fits
from generation.musicgen.models import load_model

pytestmark = pytest.mark.skipif(not int8_cache_fits(64), reason="the native kernel cannot run here")


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """What the cache keeps of each head's vector: int8 with one scale."""
    scale = x.float().abs().amax(-1, keepdim=True).clamp(min=1e-12) / 127
    return torch.round(x.float() / scale) * scale


# (head_dim, heads, slots filled): the real models' 64, the debug model's 8, a size that is not a
# whole number of 16-value chunks, fills that do and do not end on a 16-slot block.
@pytest.mark.parametrize(("head_dim", "heads", "filled"), [(64, 3, 37), (8, 4, 16), (20, 2, 9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_is_torchs_over_the_rounded_cache(head_dim, heads, filled, dtype, masked):
    torch.manual_seed(filled)
    rows, width = 2, heads * head_dim
    projected = (torch.randn(rows, filled, 3 * width) * 2).to(dtype)  # as the fused q, k, v product
    query, key, value = projected.split(width, dim=-1)
    cache = Int8Cache.allocate(rows, heads, filled + 3, head_dim)
    cache.store(key[:, :-1], value[:, :-1], 0)  # a prefill, then one step
    cache.store(key[:, -1:], value[:, -1:], filled - 1)
    valid = torch.ones(rows, filled + 3, dtype=torch.bool)
    valid[1, :5] = not masked
    out = cache.attend(query[:, -1:], filled, valid if masked else None, 0.125)

    def heads_of(x: torch.Tensor) -> torch.Tensor:
        return _rounded(x.reshape(rows, -1, heads, head_dim).transpose(1, 2))

    mask = valid[:, None, None, :filled]
    expected = (
        F.scaled_dot_product_attention(
            heads_of(query[:, -1:]), heads_of(key), heads_of(value), attn_mask=mask, scale=0.125
        )
        .transpose(1, 2)
        .reshape(rows, 1, width)
    )
    assert out.dtype == dtype and out.shape == expected.shape
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2  # bfloat16: the output's own rounding
    torch.testing.assert_close(
        out.float(), expected, rtol=tolerance, atol=tolerance * float(expected.abs().max())
    )


def test_the_int8_decoder_keeps_an_int8_cache_on_eager_steps_only():
    lm = load_model("debug", device="cpu", dtype="int8")
    assert FastBackend(lm, fixed_spans=False)._int8_cache()
    assert not FastBackend(lm, fixed_spans=True)._int8_cache()  # fixed spans mask a float cache
    assert not FastBackend(
        load_model("debug", device="cpu", dtype="bfloat16"), fixed_spans=False
    )._int8_cache()
