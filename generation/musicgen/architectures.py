"""MusicGen-melody models built in-process from a config, with seeded random weights.

`debug` stands in for the real weights in tests and offline runs, the way audiocraft's `debug`
model does; the larger ones exist for speed measurements, which do not depend on weight values.
Every build keeps the real model's rates (32 kHz audio, 50 frames per second, 235 chroma frames per
30 s), so durations, windows and delays are those of the real thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Architecture:
    decoder_hidden: int
    decoder_layers: int
    decoder_heads: int
    text_d_model: int = 32
    text_layers: int = 2
    text_heads: int = 4
    codec_filters: int = 4
    codec_hidden: int = 16
    codec_lstm_layers: int = 1
    audio_channels: int = 1
    # The checkpoints' 0.02 makes a random model's logits so flat that sampling noise drowns the
    # conditioning; debug models use larger weights so melody and prompt visibly steer the codes.
    init_scale: float = 0.02


_TINY_TEXT = {"text_d_model": 32, "text_layers": 2, "text_heads": 4}
_T5_BASE = {"text_d_model": 768, "text_layers": 12, "text_heads": 12}
_ENCODEC_32K = {"codec_filters": 64, "codec_hidden": 128, "codec_lstm_layers": 2}

ARCHITECTURES: dict[str, Architecture] = {
    "debug": Architecture(32, 2, 4, init_scale=0.3),
    "debug-stereo": Architecture(32, 2, 4, audio_channels=2, init_scale=0.3),
    # Big enough that the decoder, not Python, dominates a step on a laptop CPU.
    "mid": Architecture(512, 8, 8, text_d_model=64, codec_filters=8, codec_hidden=32),
    # The released checkpoints' shapes (transformers' conversion script): 1.37 B and 2.3 B decoders.
    "melody": Architecture(1536, 48, 24, **_T5_BASE, **_ENCODEC_32K),
    "melody-large": Architecture(2048, 48, 32, **_T5_BASE, **_ENCODEC_32K),
}

DEBUG_MODELS = ("debug", "debug-stereo")
TEXT_VOCAB = 259  # the byte-level tokenizer below: 256 bytes and 3 specials


def build_config(arch: Architecture):
    from transformers import (
        EncodecConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        T5Config,
    )

    text = T5Config(
        vocab_size=TEXT_VOCAB if arch.text_d_model < 768 else 32128,
        d_model=arch.text_d_model,
        d_kv=arch.text_d_model // arch.text_heads,
        d_ff=4 * arch.text_d_model,
        num_layers=arch.text_layers,
        num_heads=arch.text_heads,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    codec = EncodecConfig(
        sampling_rate=32_000,
        audio_channels=1,
        upsampling_ratios=[8, 5, 4, 4],  # 640 samples a frame: 50 frames per second at 32 kHz
        codebook_size=2048,
        target_bandwidths=[2.2],  # 4 codebooks of 11 bits at 50 Hz
        num_filters=arch.codec_filters,
        hidden_size=arch.codec_hidden,
        num_lstm_layers=arch.codec_lstm_layers,
        use_causal_conv=False,
        normalize=False,
    )
    decoder = MusicgenMelodyDecoderConfig(
        vocab_size=2048,
        hidden_size=arch.decoder_hidden,
        num_hidden_layers=arch.decoder_layers,
        num_attention_heads=arch.decoder_heads,
        ffn_dim=4 * arch.decoder_hidden,
        num_codebooks=4 * arch.audio_channels,
        audio_channels=arch.audio_channels,
        initializer_factor=arch.init_scale,
    )
    return MusicgenMelodyConfig(
        text_encoder=text.to_dict(),
        audio_encoder=codec.to_dict(),
        decoder=decoder.to_dict(),
        initializer_factor=arch.init_scale,
    )


def build_tokenizer():
    """A byte-level tokenizer that needs no files: T5's pad 0 and eos 1, eos appended like T5."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet())):
        vocab[char] = index + 3
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_random_model(name: str, seed: int = 0, device: torch.device | str = "cpu"):
    """Build architecture `name` with weights drawn from `seed`, leaving the global RNG untouched.

    Building on the target device skips a multi-gigabyte trip through host memory for the big ones.
    """
    from transformers import MusicgenMelodyForConditionalGeneration

    config = build_config(ARCHITECTURES[name])
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = MusicgenMelodyForConditionalGeneration(config)
        _shape_random_codec(model.audio_encoder)
    return model.eval(), build_tokenizer()


# What the untouched random codec gives: most of the output is its biases' constant offset
# (97 % of the energy under 20 Hz), so every run correlates at 0.9997 with every other.
CODEC_OUTPUT_RMS = 0.1


@torch.no_grad()
def _shape_random_codec(codec) -> None:
    """Make a random EnCodec decode different codes to clearly different noise, at a sane level.

    Its codebooks start at zero (they are meant to be loaded): random ones make each code its own
    sound. Its decoder's biases add a constant offset that drowns what the codes change: zeroed,
    the output follows the codes. The last layer is scaled once so a random frame comes out at
    about -20 dBFS instead of -54, so even --no-normalize is audible.
    """
    for layer in codec.quantizer.layers:
        layer.codebook.embed.normal_()
    convolutions = [
        m for m in codec.decoder.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d)
    ]
    for conv in convolutions:
        if conv.bias is not None:
            conv.bias.zero_()
    codes = torch.randint(0, codec.config.codebook_size, (1, 1, codec.config.num_quantizers, 50))
    level = codec.decode(codes, [None]).audio_values.pow(2).mean().sqrt()
    last = convolutions[-1]
    last.parametrizations.weight.original0.mul_(CODEC_OUTPUT_RMS / level)
