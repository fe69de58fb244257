"""Models from the hub the real way, against a hub on 127.0.0.1: pinned commits, safetensors only,
and quick one-line refusals when the hub cannot be reached or the name is wrong."""

from __future__ import annotations

import pytest

from generation.catalog import PINNED_REVISIONS
from generation.errors import ModelUnavailableError
from generation.musicgen.models import download_model, load_model, locate_model
from tests.fake_hub import closed_port, dropping_server, model_files, serve

PINNED = PINNED_REVISIONS["facebook/musicgen-melody"]
NEWER = "f" * 40


@pytest.fixture(scope="module")
def debug_files(tmp_path_factory, debug_lm) -> dict[str, bytes]:
    return model_files(debug_lm.model, debug_lm.tokenizer, tmp_path_factory.mktemp("debug-files"))


@pytest.fixture
def melody_hub(debug_files, online):
    # audiocraft's pickles sit beside the safetensors in the real repos: they must never be fetched.
    pinned = {**debug_files, "state_dict.bin": b"pickle", "compression_state_dict.bin": b"pickle"}
    newer = {**debug_files, "config.json": b"{not json"}  # what a broken hub update would look like
    repos = {"facebook/musicgen-melody": {PINNED: pinned, NEWER: newer}}
    with serve(repos, {"facebook/musicgen-melody": {"main": NEWER}}) as hub:
        online(hub.url)
        yield hub


def test_download_fetches_the_pinned_commit_and_safetensors_only(melody_hub, tmp_path):
    path = download_model("melody", cache_dir=tmp_path)
    assert path.name == PINNED
    fetched = melody_hub.requested_files()
    assert "model.safetensors" in fetched and "config.json" in fetched
    assert not [name for name in fetched if name.endswith(".bin")]
    assert all(NEWER not in request for _, request in melody_hub.log)  # main moved on; the pin did not
    loaded = load_model("melody", device="cpu", cache_dir=tmp_path, offline=True)
    assert loaded.revision == PINNED and loaded.source == "hub"


@pytest.mark.parametrize("how", ["suffix", "argument"])
def test_another_commit_can_be_asked_for(melody_hub, tmp_path, how):
    spec, revision = ("melody@" + NEWER, None) if how == "suffix" else ("melody", NEWER)
    path = download_model(spec, revision=revision, cache_dir=tmp_path)
    assert path.name == NEWER


def test_a_model_missing_from_the_cache_is_fetched_at_its_pin_when_online(melody_hub, tmp_path):
    loaded = load_model("melody", device="cpu", cache_dir=tmp_path)
    assert loaded.revision == PINNED
    assert not [name for name in melody_hub.requested_files() if name.endswith(".bin")]


def test_a_repo_without_safetensors_is_refused_in_one_line(online, tmp_path):
    repos = {"someone/old-melody": {NEWER: {"config.json": b"{}", "pytorch_model.bin": b"pickle"}}}
    with serve(repos, {"someone/old-melody": {"main": NEWER}}) as hub:
        online(hub.url)
        with pytest.raises(ModelUnavailableError, match="safetensors") as caught:
            download_model("someone/old-melody", cache_dir=tmp_path)
        assert hub.requested_files() == []
    assert "\n" not in str(caught.value)


def test_an_unknown_repo_and_an_unknown_revision_are_named(melody_hub, tmp_path):
    with pytest.raises(ModelUnavailableError, match="no model someone/nothing"):
        download_model("someone/nothing", cache_dir=tmp_path)
    with pytest.raises(ModelUnavailableError, match="no revision 0123"):
        download_model("melody@0123", cache_dir=tmp_path)


def test_an_unreachable_hub_is_one_line_after_one_attempt(online, tmp_path):
    with dropping_server() as (accepted, port):
        online(f"http://127.0.0.1:{port}")
        with pytest.raises(ModelUnavailableError, match="cannot reach the Hugging Face hub"):
            download_model("melody", cache_dir=tmp_path)
        assert len(accepted) == 1  # huggingface_hub's own loop would have tried six times
    online(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelUnavailableError, match="cannot reach the Hugging Face hub"):
        load_model("melody", device="cpu", cache_dir=tmp_path)


def test_offline_never_touches_the_network(online, tmp_path, monkeypatch):
    from huggingface_hub import constants

    with dropping_server() as (accepted, port):
        online(f"http://127.0.0.1:{port}")
        with pytest.raises(ModelUnavailableError, match="offline"):
            download_model("melody", cache_dir=tmp_path, offline=True)
        with pytest.raises(ModelUnavailableError, match="offline"):
            load_model("melody", device="cpu", cache_dir=tmp_path, offline=True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1 counts as offline
        with pytest.raises(ModelUnavailableError, match="offline"):
            load_model("melody", device="cpu", cache_dir=tmp_path)
        assert accepted == []


@pytest.mark.parametrize("typo", ["melodyy", "stereo_melody", "Melody Large"])
def test_a_typo_lists_the_names_without_asking_the_hub(online, tmp_path, typo):
    with dropping_server() as (accepted, port):
        online(f"http://127.0.0.1:{port}")
        with pytest.raises(ModelUnavailableError) as caught:
            locate_model(typo, cache_dir=tmp_path)
        assert accepted == []
    message = str(caught.value)
    assert "melody-large" in message and "debug" in message and "\n" not in message


def test_an_empty_folder_or_one_with_pickles_only_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match="holds no model"):
        load_model(str(empty), device="cpu")
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "config.json").write_text('{"model_type": "musicgen_melody"}')
    (pickles / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelUnavailableError, match="safetensors"):
        load_model(str(pickles), device="cpu")
