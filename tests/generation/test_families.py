"""Which family serves a spec, and the MusicGen family's facts against its loaded engine."""

from __future__ import annotations

import json

import pytest
import torch

from generation import families
from generation.acestep.family import ACESTEP
from generation.errors import InvalidRequestError, ModelUnavailableError
from generation.families import family_for, load_engine, offered_family
from generation.interface import LoadOptions
from generation.musicgen.family import MUSICGEN
from generation.musicgen.params import SamplingParams
from tests.generation.interface_check import check_engine_against_family


@pytest.mark.parametrize(
    ("spec", "family"),
    [
        ("debug", "musicgen"),
        ("debug-stereo", "musicgen"),
        ("melody", "musicgen"),
        ("facebook/musicgen-melody", "musicgen"),
        ("random:mid", "musicgen"),
        ("someone/some-model", "musicgen"),
        ("ace-step", "acestep"),
        ("debug-ace", "acestep"),
        ("random:ace-step", "acestep"),
        ("random:ace-step-2b", "acestep"),
    ],
)
def test_a_spec_names_its_family_without_loading_anything(spec, family):
    assert family_for(spec).name == family


def test_a_folder_is_served_by_the_family_of_what_it_holds(tmp_path):
    ace, other = tmp_path / "ace", tmp_path / "other"
    for folder, index in ((ace, {"_class_name": "AceStepPipeline"}), (other, {"_class_name": "Other"})):
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps(index))
    assert family_for(str(ace)).name == "acestep"
    assert family_for(str(other)).name == "musicgen"  # whose loader then refuses it in one line
    assert family_for(str(tmp_path)).name == "musicgen"  # no index: a save_pretrained folder, perhaps


def test_the_fronts_are_offered_both_families(monkeypatch):
    assert offered_family("debug") is MUSICGEN
    assert offered_family("debug-ace") is ACESTEP
    monkeypatch.setattr(families, "OFFERED", (MUSICGEN.name,))  # a family a front cannot set up yet
    with pytest.raises(ModelUnavailableError) as refused:
        offered_family("debug-ace")
    message = str(refused.value)
    assert "ACE-Step" in message and "debug-ace" in message and "\n" not in message


def test_the_musicgen_family_says_what_its_engine_says(fast_engine):
    check_engine_against_family(fast_engine, MUSICGEN, [1.0, 2.3, 30.0, 31.0, 75.0, 300.0])


def test_a_musicgen_engine_loads_through_its_family():
    engine = load_engine("debug", LoadOptions(device="cpu", backend="reference"))
    assert engine.family == "musicgen"
    assert engine.describe()["backend"] == "reference"
    assert engine.describe()["source"] == "random"


def test_parameters_are_made_and_checked_by_the_family():
    assert MUSICGEN.make_params(top_k=10) == SamplingParams(top_k=10)
    with pytest.raises(InvalidRequestError, match="strength"):
        MUSICGEN.make_params(strength=0.5)
    with pytest.raises(InvalidRequestError, match="top_k"):
        MUSICGEN.make_params(top_k=-1)


def test_the_batch_key_follows_the_engines_windows():
    """Frames are counted as the engine counts them (int, not round): 2.019 s is 100 frames."""
    params = SamplingParams()
    key = MUSICGEN.batch_key("debug", 2.0, params)
    assert MUSICGEN.batch_key("debug", 2.019, params) == key
    assert MUSICGEN.batch_key("debug", 2.02, params) != key
    assert MUSICGEN.batch_key("debug", 2.0, SamplingParams(top_k=10)) != key
    assert MUSICGEN.batch_key("melody", 2.0, params) != key


def test_the_dtype_a_debug_model_runs_in_is_known_before_loading():
    cpu = torch.device("cpu")
    assert MUSICGEN.dtype_name("debug", "auto", cpu) == "float32"
    assert MUSICGEN.dtype_name("melody", "bfloat16", cpu) == "bfloat16"
    with pytest.raises(ModelUnavailableError):
        MUSICGEN.dtype_name("debug", "float8", cpu)
