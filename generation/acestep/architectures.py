"""ACE-Step 1.5 pipelines built in-process from configs, with seeded random weights.

`debug-ace` stands in for the real weights in tests and offline runs (like MusicGen's `debug`); the
real shapes exist for speed measurements, which do not depend on weight values. Every build keeps
the real rates and geometry: 48 kHz stereo, 1920 samples per latent frame (25 frames a second),
5 latent frames per audio code, 8 turbo steps, so durations and lengths are those of the real thing.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the command line reaches this module (through the family)
# in its option checks, and a refusal must answer at once, without the seconds torch takes to import.

SAMPLE_RATE = 48_000
CHANNELS = 2
VAE_RATIOS = (2, 4, 4, 6, 10)  # 1920 samples a latent frame
TEXT_VOCAB = 260  # the byte-level tokenizer below: 256 bytes and 4 specials
SILENCE_FRAMES = 15_000  # the condition encoder's silence latent: 10 minutes at 25 frames a second


@dataclass(frozen=True)
class Architecture:
    dit_hidden: int
    dit_ffn: int
    dit_layers: int
    dit_heads: int
    dit_kv_heads: int
    encoder_hidden: int  # condition encoder, audio tokenizer and detokenizer width
    encoder_ffn: int
    encoder_heads: int
    encoder_kv_heads: int
    lyric_layers: int
    timbre_layers: int
    pooler_layers: int
    text_hidden: int  # the Qwen3 text encoder
    text_ffn: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_vocab: int
    head_dim: int
    acoustic_dim: int  # VAE latent channels
    vae_hidden: int  # decoder width
    vae_multiples: tuple[int, ...]
    # A random narrow VAE encoder blurs a tune into a near-constant latent, so every source gives the
    # same audio codes; doubling its weight norms keeps the notes apart and the source steers the codes.
    vae_encoder_gain: float = 1.0


# ACE-Step 1.5's published shapes: the VAE config (vae/config.json: 128 wide, ratios 2-4-4-6-10,
# 64 latent channels), Qwen3-Embedding-0.6B as text encoder, a 2048-wide condition encoder and
# FSQ tokenizer; the XL turbo DiT is 2560 wide with 32 layers, the 2B turbo DiT 2048 wide with 24.
_REAL = {
    "encoder_hidden": 2048,
    "encoder_ffn": 6144,
    "encoder_heads": 16,
    "encoder_kv_heads": 8,
    "lyric_layers": 8,
    "timbre_layers": 4,
    "pooler_layers": 2,
    "text_hidden": 1024,
    "text_ffn": 3072,
    "text_layers": 28,
    "text_heads": 16,
    "text_kv_heads": 8,
    "text_vocab": 151_669,
    "head_dim": 128,
    "acoustic_dim": 64,
    "vae_hidden": 128,
    "vae_multiples": (1, 2, 4, 8, 16),
}

ARCHITECTURES: dict[str, Architecture] = {
    "debug-ace": Architecture(
        dit_hidden=32,
        dit_ffn=64,
        dit_layers=2,
        dit_heads=4,
        dit_kv_heads=2,
        encoder_hidden=32,
        encoder_ffn=64,
        encoder_heads=4,
        encoder_kv_heads=2,
        lyric_layers=1,
        timbre_layers=1,
        pooler_layers=1,
        text_hidden=32,
        text_ffn=64,
        text_layers=2,
        text_heads=4,
        text_kv_heads=2,
        text_vocab=TEXT_VOCAB,
        head_dim=8,
        acoustic_dim=8,
        vae_hidden=4,
        vae_multiples=(1, 1, 1, 1, 1),
        vae_encoder_gain=2.0,
    ),
    # What `ace-step` loads (ACE-Step/acestep-v15-xl-turbo-diffusers): about 4.1 B parameters in the DiT.
    "ace-step": Architecture(2560, 9728, 32, 32, 8, **_REAL),
    # The first turbo release (acestep-v15-turbo), about 1.5 B in the DiT: no diffusers repo of its own.
    "ace-step-2b": Architecture(2048, 6144, 24, 16, 8, **_REAL),
}

DEBUG_MODELS = ("debug-ace",)


def build_pipeline(
    arch: Architecture,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
):
    """An `AceStepPipeline` of `arch` with weights drawn from `seed`, leaving the global RNG untouched.

    The VAE stays in float32 whatever `dtype` (it only turns latents into audio and back); building
    in the target dtype and on the target device spares the big shapes a float32 trip through memory.
    """
    import torch
    from diffusers import AceStepPipeline, FlowMatchEulerDiscreteScheduler

    dtype = dtype or torch.float32  # (None: float32)
    with torch.random.fork_rng(devices=[]), torch.device(device), quiet_weight_norm():
        torch.manual_seed(seed)
        vae = build_vae(arch)
        with _default_dtype(dtype):
            text_encoder = _text_encoder(arch)
            parts = _ace_step_models(arch)
        # A learned buffer in the real checkpoint (VAE-encoded silence); zeros would be a constant.
        parts["condition_encoder"].silence_latent.normal_()
    pipe = AceStepPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=build_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
        **{name: model.eval() for name, model in parts.items()},
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextlib.contextmanager
def quiet_weight_norm():
    """diffusers' Oobleck VAE still uses torch's deprecated `weight_norm`: not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        yield


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_vae(arch: Architecture):
    from diffusers import AutoencoderOobleck

    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * arch.acoustic_dim,  # the posterior's means and scales
        downsampling_ratios=list(VAE_RATIOS),
        channel_multiples=list(arch.vae_multiples),
        decoder_channels=arch.vae_hidden,
        decoder_input_channels=arch.acoustic_dim,
        audio_channels=CHANNELS,
        sampling_rate=SAMPLE_RATE,
    )
    for name, weight in vae.encoder.named_parameters():
        if name.endswith("weight_g"):  # weight norm's magnitudes
            weight.data.mul_(arch.vae_encoder_gain)
    return vae


def _text_encoder(arch: Architecture):
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(
        vocab_size=arch.text_vocab,
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_ffn,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_kv_heads,
        head_dim=arch.head_dim,
        max_position_embeddings=32_768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        pad_token_id=0,
    )
    return Qwen3Model(config)


def _ace_step_models(arch: Architecture) -> dict:
    return {
        "transformer": build_transformer(arch),
        "condition_encoder": _condition_encoder(arch),
        "audio_tokenizer": build_audio_tokenizer(arch),
        "audio_token_detokenizer": _audio_detokenizer(arch),
    }


def build_transformer(arch: Architecture):
    from diffusers import AceStepTransformer1DModel

    return AceStepTransformer1DModel(
        hidden_size=arch.dit_hidden,
        intermediate_size=arch.dit_ffn,
        num_hidden_layers=arch.dit_layers,
        num_attention_heads=arch.dit_heads,
        num_key_value_heads=arch.dit_kv_heads,
        head_dim=arch.head_dim,
        in_channels=3 * arch.acoustic_dim,  # source latents, chunk mask, noisy latents
        audio_acoustic_hidden_dim=arch.acoustic_dim,
        encoder_hidden_size=arch.encoder_hidden,
        is_turbo=True,
        model_version="turbo",
    )


def _encoder_shape(arch: Architecture) -> dict:
    """The condition encoder's, audio tokenizer's and detokenizer's shared transformer shape."""
    return {
        "hidden_size": arch.encoder_hidden,
        "intermediate_size": arch.encoder_ffn,
        "num_attention_heads": arch.encoder_heads,
        "num_key_value_heads": arch.encoder_kv_heads,
        "head_dim": arch.head_dim,
    }


def _condition_encoder(arch: Architecture):
    from diffusers.pipelines.ace_step import AceStepConditionEncoder

    return AceStepConditionEncoder(
        **_encoder_shape(arch),
        text_hidden_dim=arch.text_hidden,
        timbre_hidden_dim=arch.acoustic_dim,
        num_lyric_encoder_hidden_layers=arch.lyric_layers,
        num_timbre_encoder_hidden_layers=arch.timbre_layers,
    )


def _pooler_shape(arch: Architecture) -> dict:
    return {
        **_encoder_shape(arch),
        "audio_acoustic_hidden_dim": arch.acoustic_dim,
        "num_attention_pooler_hidden_layers": arch.pooler_layers,
    }


def build_audio_tokenizer(arch: Architecture):
    from diffusers.pipelines.ace_step import AceStepAudioTokenizer

    return AceStepAudioTokenizer(**_pooler_shape(arch), fsq_dim=arch.encoder_hidden)


def _audio_detokenizer(arch: Architecture):
    from diffusers.pipelines.ace_step import AceStepAudioTokenDetokenizer

    return AceStepAudioTokenDetokenizer(**_pooler_shape(arch))


def build_tokenizer():
    """A byte-level tokenizer that needs no files, with Qwen's `<|endoftext|>` as one special token
    (the pipeline's prompt templates end with it) and as padding, as Qwen does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    vocab = {token: index for index, token in enumerate(specials)}
    for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet())):
        vocab[char] = index + len(specials)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=specials[1:3],
    )
