"""Stem separation: the plumbing around demucs, and clear refusals when it cannot run."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from generation.errors import StemsUnavailableError
from generation.stems import StemSeparator, load_separator
from tests.audio_factory import melody

demucs = pytest.importorskip("demucs", reason="the demucs extra is not installed")


@pytest.fixture(scope="module")
def tiny_separator() -> StemSeparator:
    from demucs.pretrained import demucs_unittest

    torch.manual_seed(0)
    return StemSeparator(demucs_unittest(), torch.device("cpu"))  # an untrained HDemucs, 4 channels wide


def test_the_melody_comes_from_vocals_and_other(tiny_separator):
    sources = tiny_separator.model.sources
    assert [sources[i] for i in tiny_separator.indices] == ["vocals", "other"]


def test_separation_keeps_length_and_rate(tiny_separator):
    tune = melody([440.0, 660.0], 1.0, 32_000)
    separated = tiny_separator.melody(tune, 32_000)
    assert separated.shape == tune.shape and separated.dtype == np.float32
    assert np.isfinite(separated).all()
    assert not np.array_equal(separated, tune)


def test_missing_weights_offline_say_how_to_fetch_them(tmp_path):
    with pytest.raises(StemsUnavailableError, match="restyle download --stems"):
        load_separator(offline=True, cache_dir=str(tmp_path))


def test_missing_demucs_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "demucs", None)  # what an environment without the extra looks like
    with pytest.raises(StemsUnavailableError, match=r"restyle\[demucs\]"):
        load_separator()
