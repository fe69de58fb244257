"""Which precision each part of the model runs in, as audiocraft runs MusicGen.

audiocraft keeps the text encoder (T5) and the conditioning in float32 and runs the language model in
float16 autocast on GPUs; the codec and the chroma are float32. Here the same split holds, without
autocast: the decoder's transformer (embeddings, layers, norms, key/value cache) is stored and run
in its reduced dtype, while T5, both conditioning projections, the codebook heads, guidance, sampling
and EnCodec stay float32. Casting the whole model (`model.to(dtype)`) would also undo transformers'
float32 T5 `wo` layers, so nothing here does that.

On CPUs the decoder's step streams every weight once, so reduced precision is about bytes. `auto`
picks int8 weights (`generation.musicgen.quantize`) where Restyle's own int8 kernel runs (AVX-512
VNNI and a C compiler: `generation.musicgen.native`): a quarter of float32's bytes, read at memory
speed, with the key/value cache in int8 too on eager steps (`generation.musicgen.kvcache`).
Without it, bfloat16 where the CPU has bfloat16 instructions (AMX or AVX-512 BF16), else int8
weights through torch's slower kernel; without bfloat16 instructions torch emulates bfloat16
products, slower than float32. The benchmark (`python -m benchmarks --only cpu`) measures them
against float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generation.devices import FLOAT_DTYPES
from generation.errors import ModelUnavailableError

NAMES = ("auto", "float32", "bfloat16", "float16", "int8")


@dataclass(frozen=True)
class Precision:
    """The decoder's compute dtype, and how its linear layers store their weights."""

    compute: torch.dtype
    int8_weights: bool = False

    @property
    def name(self) -> str:
        return "int8" if self.int8_weights else str(self.compute).removeprefix("torch.")

    @property
    def reduced(self) -> bool:
        return self.compute != torch.float32


FLOAT32 = Precision(torch.float32)
INT8 = Precision(torch.bfloat16, int8_weights=True)  # int8 weights; the rest of the decoder in bfloat16


def cpu_has_fast_bf16() -> bool:
    """bfloat16 products run in hardware (AVX-512 BF16 or AMX); without, oneDNN emulates them and
    they run slower than float32 (measured: see benchmarks/RESULTS.md)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


TINY_DECODER_PARAMETERS = 100_000_000


def is_tiny(model) -> bool:
    """The debug and mid-size builds: far from the released models' 1.4 B and 2.3 B decoders."""
    core = model.decoder.model.decoder
    return sum(p.numel() for p in core.parameters()) < TINY_DECODER_PARAMETERS


def pick_precision(name: str, device: torch.device, *, tiny: bool = False) -> Precision:
    """`auto`: float16 on CUDA (audiocraft's autocast dtype), float16 on MPS, and on CPUs int8
    weights where the native kernel runs, else bfloat16 where the CPU has bfloat16 instructions,
    else int8 weights through torch's kernel (see the module's docstring). Tiny models (`is_tiny`: the
    debug and mid builds) stay float32 under `auto`: reduced precision buys them little, and tests
    use them as oracles."""
    if name == "int8":
        if device.type != "cpu":
            raise ModelUnavailableError("int8 weights run on the CPU only: use float16 or bfloat16 there.")
        return INT8
    if name != "auto":
        if name not in FLOAT_DTYPES:
            raise ModelUnavailableError(f"Unknown dtype {name!r}: use {', '.join(NAMES)}.")
        return Precision(FLOAT_DTYPES[name])
    if device.type in ("cuda", "mps"):
        return Precision(torch.float16)
    if tiny:
        return FLOAT32
    if native_int8_runs() or not cpu_has_fast_bf16():
        return INT8
    return Precision(torch.bfloat16)


def native_int8_runs() -> bool:
    """Restyle's int8 kernel can run here (built on first use; see `generation.musicgen.native`)."""
    from generation.musicgen.native import int8_gemm

    return int8_gemm() is not None


def apply_precision(model, precision: Precision):
    """Cast a float32 MusicGen-melody model's parts in place (see the module's docstring)."""
    from generation.musicgen.quantize import quantize_linears

    model.float()
    if not precision.reduced:
        return model
    core = model.decoder.model.decoder  # embeddings, positions, layers, final norm
    if precision.int8_weights:
        for layer in core.layers:
            quantize_linears(layer)
    _cast_all_but_int8(core, precision.compute)
    # transformers' own forward (the reference backend) meets float32 conditioning at the core's
    # input and a reduced-precision hidden state at the heads: cast at both edges.
    core.register_forward_pre_hook(_cast_encoder_states(precision.compute), with_kwargs=True)
    for head in model.decoder.lm_heads:
        head.register_forward_pre_hook(_to_float32)
    return model


def _cast_all_but_int8(core, dtype: torch.dtype) -> None:
    """`core.to(dtype)`, leaving int8 layers' float32 scales as they are (their kernel reads them)."""
    from generation.musicgen.quantize import Int8Linear

    for module in core.modules():
        if isinstance(module, Int8Linear):
            continue
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(dtype)


def _cast_encoder_states(dtype: torch.dtype):
    def hook(module, args, kwargs):
        states = kwargs.get("encoder_hidden_states")
        if states is not None:
            kwargs["encoder_hidden_states"] = states.to(dtype)
        return args, kwargs

    return hook


def _to_float32(module, args):
    return (args[0].float(), *args[1:])
