"""The VAE made cheaper at load: weight norm folded and snakes fused give the same audio and latents,
bit for bit; what it saves still loads in diffusers; a bfloat16 decode stays close."""

from __future__ import annotations

import torch

from generation.acestep.architectures import ARCHITECTURES, build_vae, quiet_weight_norm
from generation.acestep.fastvae import FusedSnake1d, decoding, speed_up


def pair():
    with quiet_weight_norm():
        reference = build_vae(ARCHITECTURES["debug-ace"]).eval()
        fast = build_vae(ARCHITECTURES["debug-ace"]).eval()
    fast.load_state_dict(reference.state_dict())
    speed_up(fast)
    return reference, fast


def test_the_fast_vae_gives_the_same_latents_and_audio_with_nothing_recomputed_per_call():
    torch.manual_seed(1)
    reference, fast = pair()
    latents, audio = torch.randn(1, 8, 20), 0.3 * torch.randn(1, 2, 20 * 1920)
    with torch.inference_mode():
        assert torch.equal(reference.decode(latents).sample, fast.decode(latents).sample)
        assert torch.equal(reference.encode(audio).latent_dist.mode(), fast.encode(audio).latent_dist.mode())
    assert not [module for module in fast.modules() if module._forward_pre_hooks]
    snakes = [module for module in fast.modules() if "Snake" in type(module).__name__]
    assert snakes and all(type(module) is FusedSnake1d for module in snakes)


def test_a_fast_vae_saves_what_diffusers_reads_back(tmp_path):
    from diffusers import AutoencoderOobleck

    reference, fast = pair()
    fast.save_pretrained(tmp_path)
    with quiet_weight_norm():
        again = AutoencoderOobleck.from_pretrained(tmp_path).eval()
    latents = torch.randn(1, 8, 10)
    with torch.inference_mode():
        assert torch.equal(again.decode(latents).sample, reference.decode(latents).sample)


def test_a_bfloat16_decode_stays_close():
    reference, fast = pair()
    latents = torch.randn(1, 8, 20)
    with torch.inference_mode():
        truth = reference.decode(latents).sample
        with decoding(torch.device("cpu"), torch.bfloat16):
            reduced = fast.decode(latents).sample.float()
    snr_db = 10 * torch.log10(truth.pow(2).mean() / (truth - reduced).pow(2).mean())
    assert snr_db > 30  # the real shapes measure ~45 dB (benchmarks/RESULTS.md)
    assert not torch.equal(truth, reduced)  # it did run in bfloat16


def test_a_30_s_piece_decodes_in_one_tile():
    reference, fast = pair()
    calls = {"reference": 0, "fast": 0}
    for name, vae in (("reference", reference), ("fast", fast)):
        vae.enable_tiling()
        vae.decoder.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
        with torch.inference_mode():
            audio = vae.decode(torch.randn(1, 8, 750)).sample
        assert audio.shape[-1] == 750 * 1920
    assert calls == {"reference": 2, "fast": 1}
