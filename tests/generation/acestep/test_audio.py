"""The source on its way in (fitted to length, encoded to 5 Hz codes) and the latents on their way out."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import torch

from generation.acestep.audio import decode_latents, fit_source, source_codes


def test_a_short_source_is_looped_and_a_long_one_cut():
    source = np.arange(10, dtype=np.float32).reshape(2, 5)
    looped = fit_source(source, 12)
    assert looped.shape == (2, 12)
    np.testing.assert_array_equal(looped[:, 5:10], source)
    np.testing.assert_array_equal(looped[:, 10:], source[:, :2])
    np.testing.assert_array_equal(fit_source(source, 3), source[:, :3])


def test_the_source_becomes_one_audio_code_per_five_latent_frames(debug_ace, rising, falling):
    up, down = (source_codes(debug_ace.pipe, source, 25) for source in (rising, falling))
    codes = re.findall(r"<\|audio_code_(\d+)\|>", up)
    assert len(codes) == 5
    assert up == "".join(f"<|audio_code_{code}|>" for code in codes)
    assert up != down  # the debug VAE keeps the tunes apart
    assert source_codes(debug_ace.pipe, rising, 25) == up  # the posterior mean: no randomness


@contextlib.contextmanager
def louder_decoder(pipe, gain: float):
    """The shared debug VAE with its output layer `gain` times louder, put back afterwards."""
    magnitude = pipe.vae.decoder.conv2.weight  # weight norm is folded at load (fastvae)
    kept = magnitude.detach().clone()
    with torch.no_grad():
        magnitude.mul_(gain)
    try:
        yield
    finally:
        with torch.no_grad():
            magnitude.copy_(kept)


def test_decoded_rows_are_cut_to_length_and_never_past_full_scale(debug_ace):
    latents = torch.randn(2, 25, debug_ace.pipe.vae.config.decoder_input_channels)
    with louder_decoder(debug_ace.pipe, 20.0):
        audio = decode_latents(debug_ace.pipe, latents, 40_000)
    assert audio.shape == (2, 2, 40_000)
    assert audio.dtype == np.float32
    assert np.abs(audio).max() == 1.0  # scaled to full scale, not clipped: the shape is kept
    assert (np.abs(audio) == 1.0).sum() <= 2
