"""The int8 layers: the native kernel's arithmetic checked exactly against the same integer
product in torch, its fallbacks (no VNNI, no compiler, a failed build) to torch's kernel, and its
build cached by source."""

from __future__ import annotations

import pytest
import torch

from generation.musicgen import native
from generation.musicgen.kvcache import int8_cache_fits
from generation.musicgen.models import load_model
from generation.musicgen.quantize import Int8Linear, fuse, split

needs_native = pytest.mark.skipif(
    native.int8_gemm() is None, reason="no AVX-512 VNNI or no C compiler: the kernel cannot run here"
)


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """A kernel built from nothing into an empty cache; the process's own build is restored after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    native.native_library.cache_clear()
    yield tmp_path
    native.native_library.cache_clear()


def _linear(k: int, n: int, bias: bool) -> torch.nn.Linear:
    torch.manual_seed(n + k)
    return torch.nn.Linear(k, n, bias=bias)


def _integer_product(linear: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """What the kernel computes, in torch: both sides rounded to int8, multiplied exactly."""
    weight = linear.weight.detach()
    scale = weight.abs().amax(1).clamp(min=1e-12) / 127
    weights = torch.round(weight / scale[:, None]).clamp(-127, 127).double()
    row_scale = x.abs().amax(1).clamp(min=1e-12) / 127
    rows = torch.round(x * (1 / row_scale)[:, None]).double()
    out = (rows @ weights.T).float() * scale * row_scale[:, None]
    return out if linear.bias is None else out + linear.bias.detach()


# (rows, in, out): a decoding step's rows (1, 2 with guidance, 8 at batch 4), a prefill's hundreds,
# output widths that are and are not whole 64-channel tiles.
@needs_native
@pytest.mark.parametrize(("rows", "k", "n"), [(1, 64, 64), (2, 96, 192), (7, 32, 40), (300, 128, 100)])
@pytest.mark.parametrize("bias", [False, True])
def test_the_native_kernel_is_the_integer_product(rows, k, n, bias):
    linear = _linear(k, n, bias)
    x = torch.randn(rows, k) * 3
    layer = Int8Linear(linear, native=True)
    assert layer.native
    out = layer(x)
    expected = _integer_product(linear, x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@needs_native
def test_native_and_torch_kernels_agree_with_float32_in_any_input_dtype():
    linear = _linear(256, 512, bias=False)
    x = torch.randn(2, 3, 256)
    reference = linear(x).detach()
    for layer in (Int8Linear(linear, native=True), Int8Linear(linear, native=False)):
        for dtype in (torch.float32, torch.bfloat16):
            out = layer(x.to(dtype))
            assert out.shape == reference.shape and out.dtype == dtype
            assert float((out.float() - reference).norm() / reference.norm()) < 0.02


@needs_native
@pytest.mark.parametrize("n", [64, 40])
def test_the_kernel_reads_and_writes_bfloat16_as_torch_casts(n):
    """bfloat16 in and out of the kernel: the same bits as float32 through it, cast by torch."""
    layer = Int8Linear(_linear(128, n, bias=True), native=True)
    x = (torch.randn(3, 128) * 3).bfloat16()
    out = layer(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, layer(x.float()).bfloat16())


@pytest.mark.parametrize("native", [pytest.param(True, marks=needs_native), False])
@pytest.mark.parametrize("n", [64, 40])
def test_fused_layers_compute_their_parts_in_one_product_without_a_copy(native, n):
    parts = [Int8Linear(_linear(64, n + i, bias=False), native=native) for i in (0, 0, 0)]
    x = torch.randn(2, 5, 64).bfloat16()
    alone = [part(x) for part in parts]
    fused = fuse(parts)
    assert all(torch.equal(a, b) for a, b in zip(alone, split(fused, x), strict=True))
    assert all(torch.equal(a, part(x)) for a, part in zip(alone, parts, strict=True))
    storage = fused.weight.untyped_storage().data_ptr()
    assert all(part.weight.untyped_storage().data_ptr() == storage for part in parts)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda m: m.setattr(native, "compiler", lambda: None),
        lambda m: m.setattr(native, "cpu_has_vnni", lambda: False),
        lambda m: m.setattr(native, "FLAGS", ("-mno-such-flag", "-shared")),
    ],
    ids=["no compiler", "no vnni", "build fails"],
)
def test_without_the_kernel_int8_layers_use_torchs(monkeypatch, fresh_build, break_it):
    break_it(monkeypatch)
    assert native.int8_gemm() is None and not int8_cache_fits(64)
    layer = Int8Linear(_linear(64, 64, bias=False))
    assert not layer.native and layer.weight.shape == (64, 64)
    assert layer(torch.randn(2, 64)).shape == (2, 64)
    with pytest.raises(RuntimeError, match="cannot run"):
        Int8Linear(_linear(64, 64, bias=False), native=True)
    assert not list(fresh_build.rglob("*.so"))


@needs_native
def test_the_kernel_is_built_once_into_the_cache(monkeypatch, fresh_build):
    assert native.int8_gemm() is not None
    built = list(fresh_build.rglob("int8_gemm-*.so"))
    assert len(built) == 1
    native.native_library.cache_clear()
    monkeypatch.setattr(native, "build", lambda *_: pytest.fail("rebuilt a cached kernel"))
    assert native.int8_gemm() is not None


def test_int8_layers_keep_float32_scales_when_the_decoder_is_cast():
    lm = load_model("debug", device="cpu", dtype="int8")
    layers = [m for m in lm.model.decoder.model.decoder.modules() if isinstance(m, Int8Linear)]
    assert layers and all(m.weight.dtype == torch.int8 for m in layers)
    expected = torch.float32 if layers[0].native else torch.bfloat16
    assert all(m.scale.dtype == expected for m in layers)
    assert lm.model.decoder.model.decoder.layer_norm.weight.dtype == torch.bfloat16
