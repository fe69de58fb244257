"""ACE-Step as a family: its facts against its engine, locating a model before loading it, and the
shared pipeline and rendering driving its engine through the interface alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generation.acestep.family import ACESTEP
from generation.acestep.loading import HUB_REPO, HUB_REVISION
from generation.acestep.params import CoverParams
from generation.audio.decode import AudioLimits
from generation.errors import InvalidRequestError, ModelNotCachedError, ModelUnavailableError
from generation.interface import LoadOptions
from generation.pipeline import decode_seed, restyle
from generation.render import render_candidates
from generation.results import RestyleOptions
from tests.audio_factory import encode_format, melody
from tests.generation.interface_check import check_engine_against_family


def test_the_acestep_family_says_what_its_engine_says(ace_engine):
    check_engine_against_family(ace_engine, ACESTEP, [0.5, 10.0, 600.0])
    assert ACESTEP.total_steps(30.0, CoverParams(steps=4)) == ace_engine.total_steps(
        30.0, CoverParams(steps=4)
    )


def test_locating_finds_random_builds_and_folders(debug_ace, tmp_path):
    assert ACESTEP.locate("debug-ace", LoadOptions()).kind == "random"
    folder = tmp_path / "saved"
    debug_ace.pipe.save_pretrained(folder)
    found = ACESTEP.locate(str(folder), LoadOptions())
    assert (found.kind, found.folder) == ("local", folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.pop("audio_tokenizer")
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelUnavailableError, match="audio_tokenizer"):
        ACESTEP.locate(str(folder), LoadOptions())


def test_locating_the_hub_model_offline_and_uncached_is_one_line(tmp_path):
    with pytest.raises(ModelNotCachedError) as missing:
        ACESTEP.locate("ace-step", LoadOptions(cache_dir=tmp_path, offline=True))
    message = str(missing.value)
    assert HUB_REPO in message and "restyle download ace-step" in message and "\n" not in message


def test_the_pinned_checkpoint_takes_no_other_revision(tmp_path):
    for call in (
        lambda: ACESTEP.locate("ace-step", LoadOptions(revision="main")),
        lambda: ACESTEP.load("debug-ace", LoadOptions(revision="main")),
        lambda: ACESTEP.download("ace-step", cache_dir=tmp_path, revision="main"),
    ):
        with pytest.raises(ModelUnavailableError, match=HUB_REVISION[:12]):
            call()


def test_parameters_are_made_and_checked_by_the_family():
    assert ACESTEP.make_params(strength=0.5) == CoverParams(strength=0.5)
    with pytest.raises(InvalidRequestError, match="top_k"):
        ACESTEP.make_params(top_k=10)
    with pytest.raises(InvalidRequestError, match="strength"):
        ACESTEP.make_params(strength=2.0)


def test_the_shared_pipeline_drives_an_acestep_engine(ace_engine):
    """Decoded at the engine's 48 kHz stereo, no stems, adherence measured on mono 32 kHz, and a
    sidecar that names the family, its parameters and what the weights allow."""
    tune = melody([261.6, 329.6, 392.0, 523.3], 0.3, 44_100)
    seed = decode_seed(encode_format("wav16", tune), AudioLimits(), ace_engine)
    assert (seed.sample_rate, seed.channels) == (48_000, 2)
    options = RestyleOptions(candidates=2, seed=5, params=CoverParams(strength=0.5), stems=True)
    result = restyle(ace_engine, seed, "chiptune", options)
    assert not result.stems  # the cover hears the whole seed
    assert [c.seed for c in result.candidates] == [5, 6]
    for candidate in result.candidates:
        assert candidate.audio.shape == (2, round(result.duration_s * 48_000))
        assert 0.0 <= candidate.adherence <= 1.0
    assert not np.array_equal(result.candidates[0].audio, result.candidates[1].audio)
    rendered = render_candidates(result, ace_engine, seed, name="cover", format_name="flac")
    record = json.loads(rendered[0].sidecar)
    assert record["model"]["family"] == "acestep" and record["model"]["licence"] == "MIT"
    assert record["parameters"]["strength"] == 0.5 and record["parameters"]["stems"] is False
    assert record["output"]["sample_rate"] == 48_000 and record["output"]["channels"] == 2


def test_loops_refuse_an_engine_that_does_not_read_the_melody(ace_engine):
    from generation.loops import restyle_loop

    seed = decode_seed(encode_format("wav16", melody([440.0], 2.0, 44_100)), AudioLimits(), ace_engine)
    with pytest.raises(InvalidRequestError, match="melody"):
        restyle_loop(ace_engine, seed, "chiptune", RestyleOptions())


def test_a_first_guess_of_a_step_says_a_cpu_cover_takes_minutes():
    from generation.musicgen.family import MUSICGEN

    cpu_step = ACESTEP.first_guess_step_s("ace-step", "cpu", 30.0)
    assert 8 * cpu_step > 5 * 60  # a fresh bot must not promise a CPU cover "under a minute"
    assert ACESTEP.first_guess_step_s("ace-step", "cpu", 120.0) == 4 * cpu_step
    assert ACESTEP.first_guess_step_s("ace-step", "cuda", 30.0) < cpu_step
    assert ACESTEP.first_guess_step_s("debug-ace", "cpu", 30.0) < 0.1
    assert MUSICGEN.first_guess_step_s("melody", "cpu", 30.0) < 1.0
