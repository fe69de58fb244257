"""Nothing a careless command or batch file does destroys a file (issue 23): no output is ever an
input (the seed, the batch file), whatever --force, --name, -o or `output` say; no two tracks of a
batch write the same file; every refusal comes before any work, in one line that says what to do."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from generation.cli import main
from tests.audio_factory import encode_format, melody
from tests.generation.cli.running import refused, run


@pytest.fixture
def seed_wav(tmp_path) -> Path:
    path = tmp_path / "seed.wav"
    path.write_bytes(encode_format("wav16", melody([392.0, 440.0, 493.9], 0.5, 32_000)))
    return path


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


def test_a_strength_in_the_file_is_blamed_as_the_file_spells_it(capsys, tmp_path, seed_wav, no_model):
    tracks = _batch(tmp_path, "strength = 0.5\n[tracks]\na = 'chiptune'\n")
    line = refused(capsys, "batch", str(tracks))
    assert "strength = 0.5 in t.toml" in line and "--strength" not in line.split("(")[0]
    tracks = _batch(tmp_path, "[tracks]\na = 'chiptune'\nb = { prompt = 'harp', strength = 0.5 }\n")
    assert refused(capsys, "batch", str(tracks)).startswith("restyle: Track b: strength = 0.5 is not")


@pytest.mark.parametrize(
    ("track_b", "expected"),
    [
        ("b = { prompt = 'harp', duration = 400 }", "Track b: the duration must be between 1 s and 5:00"),
        ("b = '\u200b\u200d '", "Track b: the style prompt is empty"),
        ("b = { prompt = 'harp', loop = true, bpm = 120 }", "Track b: "),  # wav + no beat: a loop's refusal
    ],
)
def test_refusals_in_a_file_of_several_tracks_name_the_track(
    capsys, tmp_path, seed_wav, no_model, track_b, expected
):
    tracks = _batch(tmp_path, f"[tracks]\na = 'chiptune'\n{track_b}\n")
    line = refused(capsys, "batch", str(tracks))
    assert expected in line, line


@pytest.mark.parametrize("prompt", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", "\u3164", " \u034f "])
def test_a_prompt_of_invisible_characters_is_empty(capsys, tmp_path, seed_wav, no_model, prompt):
    line = refused(capsys, "generate", str(seed_wav), prompt, "--model", "debug", "-o", str(tmp_path))
    assert "prompt is empty" in line


@pytest.mark.parametrize(
    ("model", "command"), [("debug-ace", "generate"), ("debug", "generate"), ("debug-ace", "download")]
)
def test_a_revision_for_a_model_built_in_process_is_refused(
    capsys, tmp_path, seed_wav, no_model, model, command
):
    argv = (
        [str(seed_wav), "lofi", "-o", str(tmp_path), "--model", model] if command == "generate" else [model]
    )
    line = refused(capsys, command, *argv, "--revision", "abc")
    assert "built in-process" in line and "200ba991" not in line


def test_debug_ace_says_the_shortest_piece_it_makes(capsys, tmp_path, seed_wav, no_model):
    """It claimed 0.5 s while every front refused under 1 s."""
    from generation.acestep.family import ACESTEP
    from generation.pipeline import check_length

    with pytest.raises(Exception, match=r"makes 1\.0 s to"):
        check_length(ACESTEP.lengths("debug-ace"), 0.7)


def test_a_model_switch_says_the_model_differs(capsys, tmp_path, seed_wav):
    tracks = _batch(tmp_path, "duration = 1\n[tracks]\na = 'chiptune'\n")
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    line = refused(capsys, "batch", str(tracks), "--model", "debug-ace")
    assert "a.wav already exists, made by another model (debug, not debug-ace)" in line


def test_resume_compares_a_loops_asked_duration(capsys, tmp_path):
    from tests.generation.audio.loop_audio import click_track
    from tests.generation.cli.test_cli_loops import _wav

    _wav(tmp_path / "groove.wav", click_track(12.0, 32_000))
    tracks = _batch(
        tmp_path, "loop = true\nbpm = 120\nduration = 4\n[tracks]\na = 'chiptune'\n", "groove.wav"
    )
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    tracks.write_text(tracks.read_text().replace("duration = 4", "duration = 16"))
    line = refused(capsys, "batch", str(tracks))
    assert "a.wav already exists, made with another duration (4, not 16)" in line
    tracks.write_text(tracks.read_text().replace("duration = 16", "duration = 4"))
    assert main(["batch", str(tracks)]) == 0  # as it was made: kept
    assert "a: already written, skipped" in capsys.readouterr().err


def test_running_out_of_memory_anyway_is_one_line(capsys, tmp_path, seed_wav, monkeypatch):
    def exhausted(args):
        raise MemoryError

    monkeypatch.setattr("generation.cli.commands.generate", exhausted)
    code, _, err = run(capsys, *_generate(seed_wav, tmp_path))
    assert code == 1
    assert err.strip() == "restyle: out of memory: ask for fewer candidates (-n) or a shorter --duration."


def test_a_seed_that_leaves_no_room_for_the_candidates_says_so(capsys, tmp_path, seed_wav, no_model):
    tracks = _batch(tmp_path, "random_seed = 2147483647\n[tracks]\na = { prompt = 'x', candidates = 2 }\n")
    line = refused(capsys, "batch", str(tracks))
    assert "Track a: with 2 candidates the random seed is at most 2147483646" in line


@pytest.mark.parametrize("front", ["generate", "batch"])
def test_a_layer_file_never_overwrites_the_seed(capsys, tmp_path, no_model, front):
    """Layers are outputs too: a seed named like a candidate's drums layer is refused, --force or not."""
    seed = tmp_path / "x-drums.wav"  # long enough for a loop: only the name may refuse it
    seed.write_bytes(encode_format("wav16", melody([392.0, 440.0, 493.9, 523.3] * 3, 0.5, 32_000)))
    before = _digest(seed)
    if front == "generate":
        argv = ["generate", str(seed), "lofi", "--model", "debug", "-o", str(tmp_path), "--name", "x"]
        line = refused(capsys, *argv, "--loop", "--bpm", "120", "--layers", "--force")
    else:
        tracks = _batch(tmp_path, 'loop = true\nbpm = 120\nlayers = true\n[tracks]\nx = "lofi"\n', seed.name)
        line = refused(capsys, "batch", str(tracks), "--force")
    assert "seed" in line and "--force" not in line
    assert _digest(seed) == before


def test_a_layer_of_one_track_colliding_with_another_track_is_refused(capsys, tmp_path, seed_wav, no_model):
    tracks = _batch(
        tmp_path, 'loop = true\nbpm = 120\n[tracks]\nx = { prompt = "a", layers = true }\nx-drums = "b"\n'
    )
    line = refused(capsys, "batch", str(tracks))
    assert "x" in line and "x-drums" in line
