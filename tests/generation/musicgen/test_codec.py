"""Decoding long pieces in overlapping chunks: exact lengths, the whole-piece decode's samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.musicgen.codec import decode_codes
from generation.musicgen.models import load_model

WHOLE = 10**9  # a chunk longer than any piece: one decode


@pytest.mark.parametrize(("spec", "rows", "frames"), [("debug", 1, 1000), ("debug-stereo", 2, 700)])
def test_chunked_decoding_matches_one_decode_and_keeps_the_length(debug_lm, spec, rows, frames):
    lm = debug_lm if spec == "debug" else load_model(spec, device="cpu")
    seeded = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 2048, (rows, lm.num_codebooks, frames), generator=seeded)
    whole = decode_codes(lm, codes, chunk_frames=WHOLE)
    chunked = decode_codes(lm, codes, chunk_frames=300, context_frames=50)
    assert chunked.shape == whole.shape == (rows, lm.audio_channels, frames * 640)
    assert np.abs(whole).max() > 0.01
    assert np.abs(chunked - whole).max() < 1e-5  # at the seams too


def test_without_context_the_seams_would_show(debug_lm):
    """The comparison above can fail: chunks decoded with no context differ from one decode."""
    codes = torch.randint(0, 2048, (1, 4, 900), generator=torch.Generator().manual_seed(2))
    whole = decode_codes(debug_lm, codes, chunk_frames=WHOLE)
    bare = decode_codes(debug_lm, codes, chunk_frames=300, context_frames=0)
    assert np.abs(bare - whole).max() > 1e-3
