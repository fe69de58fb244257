"""Loading real models the real way: a saved directory, the Hugging Face cache, clear refusals."""

from __future__ import annotations

import json

import pytest
import torch

from generation.errors import ModelUnavailableError
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.models import load_model, resolve


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, debug_lm):
    folder = tmp_path_factory.mktemp("saved") / "my-musicgen"
    debug_lm.model.save_pretrained(folder)
    debug_lm.tokenizer.save_pretrained(folder)
    return folder


def test_a_model_saved_with_save_pretrained_loads_and_generates_the_same(
    saved_model, debug_lm, rising_melody
):
    loaded = load_model(str(saved_model), device="cpu")
    assert loaded.source == "local"
    assert loaded.spec == str(saved_model)
    job = melody_job("tape loop", rising_melody, (3,), 1.0)
    assert torch.equal(
        MusicGenEngine(loaded).generate_codes(job), MusicGenEngine(debug_lm).generate_codes(job)
    )


def test_a_missing_model_offline_names_the_model_and_the_fetch_command(tmp_path):
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("facebook/musicgen-melody", device="cpu", cache_dir=tmp_path / "empty-cache", offline=True)
    message = str(caught.value)
    assert "facebook/musicgen-melody" in message
    assert "restyle download facebook/musicgen-melody" in message
    assert "offline" in message


def test_an_alias_is_named_as_typed_in_the_fetch_command(tmp_path):
    with pytest.raises(ModelUnavailableError, match="restyle download melody-large"):
        load_model("melody-large", device="cpu", cache_dir=tmp_path, offline=True)


def test_a_model_in_the_cache_loads_offline(tmp_path, debug_lm):
    # The cache's own layout, as huggingface_hub writes it: refs/main names a snapshot folder.
    repo = tmp_path / "models--restyle--tiny-melody"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    debug_lm.model.save_pretrained(snapshot)
    debug_lm.tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    loaded = load_model("restyle/tiny-melody", device="cpu", cache_dir=tmp_path, offline=True)
    assert loaded.source == "hub"
    assert loaded.revision == "0123456789abcdef0123456789abcdef01234567"


def test_another_kind_of_model_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelUnavailableError, match="not MusicGen-melody"):
        load_model(str(tmp_path), device="cpu")


def test_an_incomplete_directory_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "musicgen_melody"}))
    with pytest.raises(ModelUnavailableError):
        load_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("debug", ("random", "debug")),
        ("random:mid", ("random", "mid")),
        ("melody", ("hub", "facebook/musicgen-melody")),
        ("stereo-melody-large", ("hub", "facebook/musicgen-stereo-melody-large")),
        ("someone/their-melody-finetune", ("hub", "someone/their-melody-finetune")),
    ],
)
def test_specs_resolve(spec, expected):
    assert resolve(spec) == expected


def test_unknown_architectures_and_missing_folders_are_refused():
    with pytest.raises(ModelUnavailableError, match="Unknown architecture"):
        resolve("random:huge")
    with pytest.raises(ModelUnavailableError, match="no model directory"):
        resolve("./no/such/folder")


def test_the_debug_model_is_the_same_every_time(debug_lm):
    again = load_model("debug", device="cpu")
    for (name, first), (_, second) in zip(
        debug_lm.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(first, second), name
