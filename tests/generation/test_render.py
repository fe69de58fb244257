"""Rendering candidates to files: sizes that fit, lossless copies, sidecars that say what was done."""

from __future__ import annotations

import json

import pytest

from generation.audio.decode import decode_audio
from generation.pipeline import RestyleOptions, restyle
from generation.render import render_candidates
from tests.audio_factory import encode_format, melody


@pytest.fixture(scope="module")
def result_and_seed(fast_engine):
    seed = decode_audio(encode_format("mp3", melody([392.0, 440.0, 493.9, 523.3], 2.5, 44_100)))
    return restyle(fast_engine, seed, "sea shanty", RestyleOptions(candidates=2, seed=3)), seed


def test_files_step_down_their_bitrate_to_fit(fast_engine, result_and_seed):
    result, seed = result_and_seed
    roomy = render_candidates(result, fast_engine, seed, name="job", format_name="mp3", max_bytes=10 * 2**20)
    tight = render_candidates(result, fast_engine, seed, name="job", format_name="mp3", max_bytes=200_000)
    assert [r.bitrate for r in roomy] == [192_000, 192_000]
    assert all(r.bitrate < 192_000 and len(r.data) <= 200_000 for r in tight)
    assert json.loads(tight[0].sidecar)["output"]["bitrate"] == tight[0].bitrate
    assert [r.filename for r in tight] == ["job-1.mp3", "job-2.mp3"]


def test_a_lossless_copy_of_the_same_master(fast_engine, result_and_seed):
    result, seed = result_and_seed
    (first, _) = render_candidates(result, fast_engine, seed, name="x", format_name="mp3", lossless=True)
    lossless, lossy = decode_audio(first.lossless), decode_audio(first.data)
    assert lossless.source.startswith("flac")
    assert lossless.duration_s == pytest.approx(lossy.duration_s, abs=0.03)
    assert lossless.duration_s == pytest.approx(10.0, abs=0.03)
