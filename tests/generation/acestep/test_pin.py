"""The pinned checkpoint set against a local mirror of the real hub repositories: it downloads only
what each part needs, passes the index checks and covers from the cache offline; today's (turbo-only)
pin is refused in one line naming the missing parts; no network means one line, one try."""

from __future__ import annotations

import time

import numpy as np
import pytest

from generation.acestep.architectures import ARCHITECTURES, build_pipeline
from generation.acestep.checkpoints import (
    CHECKPOINTS,
    PIPELINE_COMPONENTS,
    TURBO_REPO,
    TURBO_REVISION,
    Part,
    missing_components,
)
from generation.acestep.engine import AceStepEngine
from generation.acestep.loading import PIN, download_acestep, load_acestep, locate_acestep
from generation.acestep.params import cover_job
from generation.errors import ModelNotCachedError, ModelUnavailableError
from tests.fake_hub import closed_port, dropping_server, serve
from tests.generation.acestep.hub_mirror import mirror

TODAYS_PIN = (Part(TURBO_REPO, TURBO_REVISION, PIPELINE_COMPONENTS),)  # before this change


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Built afresh: a loaded pipeline's VAE has its weight norm folded (not diffusers' layout)."""
    return mirror(build_pipeline(ARCHITECTURES["debug-ace"]), tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def online(monkeypatch):
    """The hub client as it is on a machine with a network (the test session runs offline)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def point_at(url: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )

    return point_at


@pytest.fixture
def hub(repos, online):
    with serve(repos) as served:
        online(served.url)
        yield served


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_the_pinned_set_gives_every_component_and_todays_did_not_hold_them():
    assert missing_components(CHECKPOINTS["ace-step"]) == []
    assert [part.repo for part in PIN] == [TURBO_REPO, "ACE-Step/acestep-v15-xl-sft-diffusers"]
    assert missing_components(TODAYS_PIN) == []  # it claimed them all: only the hub says otherwise


def test_todays_pin_is_refused_in_one_line_naming_the_missing_parts(hub, tmp_path):
    with pytest.raises(ModelUnavailableError) as refused:
        download_acestep("ace-step", cache_dir=tmp_path, parts=TODAYS_PIN)
    message = one_line(refused)
    assert "audio_tokenizer and audio_token_detokenizer" in message and TURBO_REVISION[:12] in message
    assert not [path for path in hub.requested_paths(TURBO_REPO) if path.endswith(".safetensors")]


def test_the_pin_downloads_only_each_parts_files_then_covers_offline(hub, tmp_path, rising, monkeypatch):
    folder = download_acestep("ace-step", cache_dir=tmp_path)
    assert folder.name == TURBO_REVISION
    for part in PIN:
        fetched = hub.requested_paths(part.repo)
        assert "model_index.json" in fetched
        assert {path.split("/")[0] for path in fetched if "/" in path} == set(part.components)
        assert not [path for path in fetched if path.endswith((".pt", ".bin", ".md"))]
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    asked = len(hub.log)
    location = locate_acestep("ace-step", cache_dir=tmp_path, offline=True)
    loaded = load_acestep("ace-step", device="cpu", cache_dir=tmp_path, offline=True)
    assert location.folder == folder and len(hub.log) == asked  # nothing more was asked of the hub
    assert [entry["repository"] for entry in loaded.describe()["checkpoints"]] == [part.repo for part in PIN]
    assert loaded.pipe.audio_tokenizer is not None and loaded.pipe.transformer.config.is_turbo
    audio = AceStepEngine(loaded).generate(cover_job("lo-fi hip hop", rising, (5,), 10.0))
    assert audio.shape == (1, 2, 480_000) and np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_a_pin_lacking_a_part_is_refused_before_work_when_online(hub, tmp_path, monkeypatch):
    monkeypatch.setitem(CHECKPOINTS, "ace-step", TODAYS_PIN)
    with pytest.raises(ModelUnavailableError) as refused:
        locate_acestep("ace-step", cache_dir=tmp_path)
    assert "audio_tokenizer and audio_token_detokenizer" in one_line(refused)
    assert not any("/resolve/" in path for _, path in hub.log)


def test_offline_without_the_cache_is_one_line_at_once(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ModelNotCachedError) as missing:  # the test session runs with HF_HUB_OFFLINE=1
        locate_acestep("ace-step", cache_dir=tmp_path)
    message = one_line(missing)
    assert "offline" in message and "restyle download ace-step" in message
    assert all(part.repo in message for part in PIN)
    with pytest.raises(ModelUnavailableError, match="offline"):
        download_acestep("ace-step", cache_dir=tmp_path)
    assert time.perf_counter() - started < 5


def test_an_unreachable_hub_is_tried_once_and_said_in_one_line(online, tmp_path):
    with dropping_server() as (accepted, port):
        online(f"http://127.0.0.1:{port}")
        for attempt in (
            lambda: locate_acestep("ace-step", cache_dir=tmp_path),
            lambda: download_acestep("ace-step", cache_dir=tmp_path),
        ):
            before = len(accepted)
            with pytest.raises(ModelUnavailableError) as unreachable:
                attempt()
            assert "cannot reach the Hugging Face hub" in one_line(unreachable)
            assert len(accepted) - before == 1


def test_cover_parts_of_another_latent_space_are_refused_in_one_line(online, tmp_path):
    import dataclasses

    from tests.generation.acestep.hub_mirror import sft_files, turbo_files

    turbo = build_pipeline(ARCHITECTURES["debug-ace"])
    other = build_pipeline(dataclasses.replace(ARCHITECTURES["debug-ace"], acoustic_dim=4))
    turbo_repo, sft_repo = PIN
    repos = {
        turbo_repo.repo: {turbo_repo.revision: turbo_files(turbo, tmp_path / "turbo")},
        sft_repo.repo: {sft_repo.revision: sft_files(other, tmp_path / "sft")},
    }
    with serve(repos) as served:
        online(served.url)
        with pytest.raises(ModelUnavailableError) as refused:
            load_acestep("ace-step", device="cpu", cache_dir=tmp_path / "cache")
    assert "4-channel latents but the transformer on 8" in one_line(refused)
