"""Stem separation: the tiny in-process separator, htdemucs fetched at its pinned commit from a hub on
127.0.0.1 (safetensors only), the model's device, and one-line refusals when it cannot run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from generation.audio.chroma import chroma
from generation.audio.stems import (
    StemSeparator,
    build_random_separator,
    check_stems,
    download_separator,
    load_separator,
    separator_for,
)
from generation.catalog import STEMS_REPO, STEMS_REVISION
from generation.errors import StemsUnavailableError
from tests.audio_factory import melody
from tests.fake_hub import serve


@pytest.fixture(scope="module")
def tiny_separator():
    return build_random_separator()


def test_the_melody_comes_from_vocals_and_other(tiny_separator):
    sources = tiny_separator.model.sources
    assert [sources[i] for i in tiny_separator.indices] == ["vocals", "other"]


def test_separation_keeps_length_and_rate(tiny_separator):
    tune = melody([440.0, 660.0], 1.0, 32_000)
    separated = tiny_separator.melody(tune, 32_000)
    assert separated.shape == tune.shape and separated.dtype == np.float32
    assert np.isfinite(separated).all()
    assert not np.array_equal(separated, tune)


def test_the_debug_stand_in_keeps_the_melody_and_drops_the_low_band(tiny_separator):
    # The untrained net alone gave chroma bin 11 in every frame of any seed.
    tunes = [melody([261.6, 329.6, 392.0], 1.0, 32_000), melody([880.0, 587.3, 493.9], 1.0, 32_000)]
    kept = [tiny_separator.melody(tune, 32_000) for tune in tunes]
    for tune, separated in zip(tunes, kept, strict=True):
        assert (chroma(separated).argmax(-1) == chroma(tune).argmax(-1)).float().mean() > 0.9
    assert not torch.equal(chroma(kept[0]), chroma(kept[1]))
    hum = 0.4 * np.sin(2 * np.pi * 55.0 * np.arange(64_000) / 32_000).astype(np.float32)
    assert np.abs(tiny_separator.melody(hum, 32_000)).max() < 0.05  # the "bass" is gone


def test_the_same_seed_gives_the_same_melody(tiny_separator):
    # demucs' default random time shift made the chroma, and so the output, differ run to run.
    tune = melody([440.0, 660.0, 550.0], 1.0, 32_000)
    assert np.array_equal(tiny_separator.melody(tune, 32_000), tiny_separator.melody(tune, 32_000))
    again = build_random_separator()
    assert np.array_equal(again.melody(tune, 32_000), tiny_separator.melody(tune, 32_000))


def test_the_separator_runs_on_the_models_device():
    device = torch.device("cpu", 0)  # a device other than the default "cpu", as cuda:1 would be
    separator = separator_for(True, device)
    assert separator.device == device  # what apply_model is told to compute on
    assert {p.device.type for p in separator.model.parameters()} == {"cpu"}


def test_missing_weights_offline_say_how_to_fetch_them_or_skip_them(tmp_path):
    with pytest.raises(StemsUnavailableError) as caught:
        load_separator(offline=True, cache_dir=str(tmp_path))
    message = str(caught.value)
    assert "restyle download" in message and "--no-stems" in message and "offline" in message
    check_stems(random=True, offline=True, cache_dir=str(tmp_path))  # the tiny one needs nothing


def test_missing_demucs_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "demucs", None)  # what an environment without it looks like
    monkeypatch.setitem(sys.modules, "demucs.apply", None)
    with pytest.raises(StemsUnavailableError, match="pip install demucs"):
        load_separator()


def _htdemucs_repo(separator) -> dict[str, bytes]:
    """htdemucs' repository layout (demucs' export_hf): a bag file and one safetensors per model."""
    from safetensors.torch import save

    args, kwargs = separator.model._init_args_kwargs
    metadata = {
        "klass": "demucs.htdemucs.HTDemucs",
        "args": json.dumps(list(args)),
        "kwargs": json.dumps(kwargs),
    }
    weights = save({k: v.contiguous() for k, v in separator.model.state_dict().items()}, metadata=metadata)
    return {
        "htdemucs.yaml": b"models: ['955717e8']\n",
        "955717e8.safetensors": weights,
        "955717e8.th": b"pickle",
    }


def test_htdemucs_is_fetched_at_its_pin_and_then_loads_offline(tmp_path, tiny_separator, monkeypatch):
    from huggingface_hub import constants

    repos = {STEMS_REPO: {STEMS_REVISION: _htdemucs_repo(tiny_separator), "e" * 40: {"htdemucs.yaml": b"x"}}}
    with serve(repos, {STEMS_REPO: {"main": "e" * 40}}) as hub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        folder = download_separator(tmp_path)
        assert folder.name == STEMS_REVISION
        assert sorted(hub.requested_files()) == ["955717e8.safetensors", "htdemucs.yaml"]
    loaded = load_separator(offline=True, cache_dir=tmp_path)
    tune = melody([440.0, 660.0], 1.0, 32_000)
    net_alone = StemSeparator.melody(tiny_separator, tune, 32_000)  # the stand-in's net, no stand-in
    assert np.allclose(loaded.melody(tune, 32_000), net_alone, atol=1e-5)
