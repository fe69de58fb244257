"""Nothing a careless command or batch file does destroys a file (issue 23): no output is ever an
input (the seed, the batch file), whatever --force, --name, -o or `output` say; no two tracks of a
batch write the same file; every refusal comes before any work, in one line that says what to do."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.audio_factory import encode_format, melody
from tests.generation.cli.running import refused


@pytest.fixture
def seed_wav(tmp_path) -> Path:
    path = tmp_path / "seed.wav"
    path.write_bytes(encode_format("wav16", melody([392.0, 440.0, 493.9], 0.5, 32_000)))
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if anything loads a model: refusals must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr("generation.musicgen.models.load_model", refuse)
    monkeypatch.setattr("generation.acestep.loading.load_acestep", refuse)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _batch(folder: Path, body: str, seed: str = "seed.wav") -> Path:
    path = folder / "t.toml"
    path.write_text(f'seed = "{seed}"\nmodel = "debug"\nstems = false\n{body}')
    return path


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_batch_track_named_like_the_seed_never_overwrites_it(capsys, tmp_path, seed_wav, no_model, force):
    before = _digest(seed_wav)
    tracks = _batch(tmp_path, '[tracks]\nseed = "chiptune"\n')
    line = refused(capsys, "batch", str(tracks), *force)
    assert "seed" in line and "--force" not in line
    assert _digest(seed_wav) == before


@pytest.mark.parametrize(
    "how",
    ["name", "symlinked seed", "hardlinked seed", "output symlink", "dotted folder"],
)
def test_generate_never_writes_over_its_seed(capsys, tmp_path, seed_wav, no_model, how):
    seed, out, name = seed_wav, tmp_path, "seed"
    if how == "symlinked seed":  # the seed reached through a link elsewhere: its target is still the seed
        (tmp_path / "links").mkdir()
        seed = tmp_path / "links" / "theme.wav"
        seed.symlink_to(seed_wav)
    elif how == "hardlinked seed":
        (tmp_path / "other").mkdir()
        seed = tmp_path / "other" / "theme.wav"
        os.link(seed_wav, seed)
        out, name = tmp_path, "seed"
    elif how == "output symlink":  # an output name that is a link to the seed
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "x.wav").symlink_to(seed_wav)
        out, name = tmp_path / "out", "x"
    elif how == "dotted folder":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / "."
    before = _digest(seed_wav)
    argv = ["generate", str(seed), "lofi", "--model", "debug", "-o", str(out), "--name", name, "--force"]
    line = refused(capsys, *argv)
    assert "seed" in line and "--force" not in line
    assert _digest(seed_wav) == before


def test_a_batch_never_writes_over_its_own_file(capsys, tmp_path, seed_wav, no_model):
    """A sidecar named like the batch file (t.toml is read, never written)."""
    tracks = tmp_path / "t.wav.json"
    tracks.write_text('seed = "seed.wav"\nmodel = "debug"\n[tracks]\nt = "chiptune"\n')
    before = tracks.read_text()
    line = refused(capsys, "batch", str(tracks), "--force")
    assert "t.wav.json" in line and "--force" not in line
    assert tracks.read_text() == before


def test_two_tracks_writing_one_file_are_refused_naming_both(capsys, tmp_path, seed_wav, no_model):
    tracks = _batch(tmp_path, '[tracks]\nx = { prompt = "first", candidates = 2 }\nx-1 = "second"\n')
    line = refused(capsys, "batch", str(tracks))
    assert "x-1.wav" in line and "x " in line + " " and "x-1" in line
    assert not any(path.suffix == ".wav" and path.name != "seed.wav" for path in tmp_path.iterdir())


def test_two_tracks_differing_only_in_case_are_refused(capsys, tmp_path, seed_wav, no_model):
    """The same file on macOS's and Windows' file systems: refused everywhere, so a batch file
    means the same on every machine."""
    tracks = _batch(tmp_path, '[tracks]\nBoss = "first"\nboss = "second"\n')
    line = refused(capsys, "batch", str(tracks))
    assert "Boss" in line and "boss" in line


def _generate(seed: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", str(seed), "lofi", "--model", "debug", "--no-stems", "-o", str(out), *extra]


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--loop", "--max-duration", "nan"], "--max-duration"),
        (["--loop", "--bpm", "120", "--max-duration", "inf"], "--max-duration"),
        (["--max-duration", "nan"], "--max-duration"),
        (["--max-duration", "100000"], "--max-duration"),
        (["--duration", "nan"], "--duration"),
        (["--duration=-inf"], "--duration"),
        (["--lufs", "nan"], "--lufs"),
        (["--top-p", "nan"], "--top-p"),
        (["--temperature", "inf"], "--temperature"),
        (["--guidance", "nan"], "--guidance"),
        (["--top-k", "1e3"], "--top-k"),
        (["--seed", "99999999999"], "--seed"),
        (["-n", "9"], "--candidates"),
        (["--threads", "100000"], "--threads"),
        (["--loop", "--bpm", "nan"], "--bpm"),
        (["--loop", "--beats-per-bar", "0"], "--beats-per-bar"),
        (["--model", "debug-ace", "--strength", "nan"], "--strength"),
    ],
)
def test_every_number_option_is_finite_and_in_its_stated_range(
    capsys, tmp_path, seed_wav, no_model, extra, option
):
    line = refused(capsys, *_generate(seed_wav, tmp_path / "out", *extra))
    assert option in line and " from " in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("duration = nan\n[tracks]\na = 'x'\n", "t.toml: duration = nan"),
        ("[tracks]\na = { prompt = 'x', duration = inf }\n", "Track a: duration = inf"),
        ("[tracks]\na = { prompt = 'x', candidates = 9 }\n", "Track a: candidates = 9"),
        ("[tracks]\na = { prompt = 'x', random_seed = -1 }\n", "Track a: random_seed = -1"),
        ("loop = true\n[tracks]\na = { prompt = 'x', bpm = nan }\n", "Track a: bpm = nan"),
        ("[tracks]\na = { prompt = 'x', strength = 1e9 }\n", "Track a: strength = 1000000000.0"),
    ],
)
def test_numbers_in_a_batch_file_are_checked_by_the_same_rules(
    capsys, tmp_path, seed_wav, no_model, body, expected
):
    line = refused(capsys, "batch", str(_batch(tmp_path, body)))
    assert expected in line and " from " in line, line


def test_a_plan_that_cannot_fit_in_memory_is_refused_before_the_model_loads(
    capsys, tmp_path, seed_wav, no_model, monkeypatch
):
    monkeypatch.setattr("generation.pipeline.available_memory", lambda: 2 * 1024**3)
    line = refused(
        capsys, *_generate(seed_wav, tmp_path, "--duration", "600", "--max-duration", "600", "-n", "8")
    )
    assert "memory" in line and "2.0 GiB" in line and "8 candidates" in line
