"""Loading ACE-Step for real: a folder written by `save_pretrained`, the hub cache offline, checkpoints
without what cover needs, and the in-process builds."""

from __future__ import annotations

import fnmatch
import json
import shutil

import numpy as np
import pytest
import torch

from generation.acestep.architectures import ARCHITECTURES, build_pipeline
from generation.acestep.engine import AceStepEngine
from generation.acestep.loading import (
    HUB_REPO,
    PIN,
    download_acestep,
    is_acestep_spec,
    load_acestep,
)
from generation.acestep.params import cover_job
from generation.errors import ModelUnavailableError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """debug-ace's weights as diffusers writes them (built afresh: a loaded VAE has its weight norm
    folded, which diffusers' Oobleck class could not read back)."""
    folder = tmp_path_factory.mktemp("ace") / "debug-ace"
    build_pipeline(ARCHITECTURES["debug-ace"], seed=0).save_pretrained(folder)
    return folder


def copy_of(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "copy")


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def test_a_saved_folder_loads_and_gives_the_same_audio(ace_engine, saved, rising):
    loaded = load_acestep(str(saved), device="cpu")
    assert loaded.source == "local"
    assert is_acestep_spec(str(saved))
    job = cover_job("lo-fi hip hop", rising, (11,), 10.0)  # a folder is the real thing: 10 s or more
    from_folder, in_process = AceStepEngine(loaded).generate(job), ace_engine.generate(job)
    # The same weights, not the same bits: the kernels a CPU picks depend on the tensors' alignment,
    # which differs between a built and a loaded model (2.4e-7 apart on an AMD EPYC). A part lost or
    # loaded with another config moves the audio by orders of magnitude more than -100 dB.
    assert np.abs(in_process).max() > 0.01
    np.testing.assert_allclose(from_folder, in_process, rtol=0, atol=1e-5)


def test_a_saved_folder_holds_safetensors_only(saved):
    weights = {path.suffix for path in saved.rglob("*") if path.is_file() and path.suffix != ".json"}
    assert ".safetensors" in weights
    assert not weights & {".bin", ".pt", ".pth", ".pkl"}


def test_offline_without_weights_is_one_clear_line(tmp_path):
    with pytest.raises(ModelUnavailableError) as missing:
        load_acestep("ace-step", device="cpu", cache_dir=tmp_path, offline=True)
    message = one_line(missing)
    assert HUB_REPO in message
    assert "restyle download ace-step" in message


def test_a_folder_saved_without_the_audio_tokenizer_is_refused(tmp_path):
    from diffusers import AceStepPipeline

    pipe = build_pipeline(ARCHITECTURES["debug-ace"])
    parts = {**pipe.components, "audio_tokenizer": None, "audio_token_detokenizer": None}
    AceStepPipeline(**parts).save_pretrained(tmp_path / "text-only")
    for weights in (tmp_path / "text-only" / "transformer").glob("*.safetensors"):
        weights.unlink()  # refused from its index, before any weights are read
    with pytest.raises(ModelUnavailableError) as refused:
        load_acestep(str(tmp_path / "text-only"), device="cpu")
    message = one_line(refused)
    assert "audio_token_detokenizer" in message
    assert "audio_tokenizer" in message
    assert "cover" in message


def test_a_folder_missing_the_detokenizer_folder_is_refused(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    shutil.rmtree(folder / "audio_token_detokenizer")
    with pytest.raises(ModelUnavailableError) as refused:
        load_acestep(str(folder), device="cpu")
    assert "audio_token_detokenizer" in one_line(refused)


def test_a_folder_with_a_component_but_no_weights_is_refused(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    for weights in (folder / "transformer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelUnavailableError) as refused:
        load_acestep(str(folder), device="cpu")
    assert "complete ACE-Step pipeline" in one_line(refused)


def test_a_folder_that_is_not_ace_step_is_refused(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableAudioPipeline"}))
    assert not is_acestep_spec(str(folder))
    with pytest.raises(ModelUnavailableError) as refused:
        load_acestep(str(folder), device="cpu")
    assert "not hold an ACE-Step pipeline" in one_line(refused)
    with pytest.raises(ModelUnavailableError) as empty:
        load_acestep(str(tmp_path), device="cpu")
    assert "model_index.json" in one_line(empty)


def test_unknown_names_are_one_line(tmp_path):
    for spec in ("random:ace-step-9b", "ace-stepp", str(tmp_path / "nowhere")):
        with pytest.raises(ModelUnavailableError) as unknown:
            load_acestep(spec, device="cpu")
        one_line(unknown)
    assert is_acestep_spec("ace-step")
    assert is_acestep_spec("random:ace-step")
    assert not is_acestep_spec("melody")
    assert not is_acestep_spec("ace-step-2b")  # an architecture, spelt random:ace-step-2b


def test_download_is_for_the_hub_model_and_says_why_it_failed(tmp_path):
    with pytest.raises(ModelUnavailableError) as local:
        download_acestep("debug-ace", cache_dir=tmp_path)
    assert "nothing to download" in one_line(local)
    with pytest.raises(ModelUnavailableError) as offline:  # the tests run with HF_HUB_OFFLINE=1
        download_acestep("ace-step", cache_dir=tmp_path)
    assert "offline" in one_line(offline)


def test_download_fetches_each_parts_safetensors_and_configs_but_no_pickles():
    turbo, sft = PIN

    def fetched(part, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in part.patterns())

    assert fetched(turbo, "model_index.json") and fetched(sft, "model_index.json")
    assert fetched(turbo, "transformer/diffusion_pytorch_model-00001-of-00002.safetensors")
    assert fetched(turbo, "transformer/diffusion_pytorch_model.safetensors.index.json")
    assert fetched(turbo, "tokenizer/merges.txt") and fetched(turbo, "tokenizer/chat_template.jinja")
    assert fetched(sft, "audio_tokenizer/config.json")
    assert fetched(sft, "audio_token_detokenizer/diffusion_pytorch_model.safetensors")
    # Only the cover parts from the SFT sibling: not its 8 GB transformer, nor turbo's cover parts.
    assert not fetched(sft, "transformer/diffusion_pytorch_model-00001-of-00002.safetensors")
    assert not fetched(turbo, "audio_tokenizer/config.json")
    for unwanted in ("transformer/diffusion_pytorch_model.bin", "silence_latent.pt", "README.md"):
        assert not fetched(turbo, unwanted) and not fetched(sft, unwanted)


def test_the_debug_build_is_deterministic_for_a_seed():
    def weights(seed: int) -> dict[str, torch.Tensor]:
        pipe = build_pipeline(ARCHITECTURES["debug-ace"], seed=seed)
        return {
            f"{name}.{key}": value
            for name, part in pipe.components.items()
            if isinstance(part, torch.nn.Module)
            for key, value in part.state_dict().items()
        }

    first, again, other = weights(3), weights(3), weights(4)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_the_real_architectures_have_the_published_shapes():
    xl, two_b = ARCHITECTURES["ace-step"], ARCHITECTURES["ace-step-2b"]
    assert (xl.dit_hidden, xl.dit_layers, xl.dit_ffn, xl.encoder_hidden) == (2560, 32, 9728, 2048)
    assert (two_b.dit_hidden, two_b.dit_layers, two_b.dit_ffn) == (2048, 24, 6144)
    assert (xl.text_hidden, xl.text_layers, xl.acoustic_dim) == (1024, 28, 64)
