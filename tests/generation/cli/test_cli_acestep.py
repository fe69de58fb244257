"""`restyle` on ACE-Step's debug pipeline: the same commands as MusicGen's, `--strength`, the
weights' licence in every sidecar, and one-line refusals for options a family does not take."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generation.acestep.family import ACESTEP
from generation.audio.decode import decode_audio
from generation.cli import DEFAULT_STRENGTH, main
from tests.audio_factory import encode_format, melody
from tests.fake_hub import dropping_server
from tests.generation.cli.running import refused as _refused
from tests.generation.cli.running import run as _run


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    """Two short tunes (the debug pipeline takes pieces from half a second)."""
    folder = tmp_path_factory.mktemp("seeds")
    tunes = {"rising": [392.0, 440.0, 493.9, 523.3], "falling": [880.0, 659.3, 440.0, 329.6]}
    paths = {}
    for name, notes in tunes.items():
        paths[name] = folder / f"{name}.mp3"
        paths[name].write_bytes(encode_format("mp3", melody(notes, 0.3, 44_100)))
    return paths


def _made(capsys, out_dir: Path, seed: Path, *extra: str) -> bytes:
    """One debug-ace candidate's wav, seed 3, prompt "chiptune"."""
    argv = ["generate", str(seed), "chiptune", "--model", "debug-ace", "--seed", "3", "-o", str(out_dir)]
    code, _, err = _run(capsys, *argv, *extra)
    assert code == 0, err
    return (out_dir / f"{seed.stem}-chiptune.wav").read_bytes()


def test_debug_ace_writes_stereo_48k_candidates_with_the_mit_licence(capsys, tmp_path, seeds):
    code, out, err = _run(
        capsys, "generate", str(seeds["rising"]), "lofi piano", "--model", "debug-ace", "-n", "2",
        "-o", str(tmp_path), "--seed", "40",
    )  # fmt: skip
    assert code == 0, err
    files = sorted(tmp_path.glob("*.wav"))
    assert [f.name for f in files] == ["rising-lofi-piano-1.wav", "rising-lofi-piano-2.wav"]
    audio = decode_audio(files[0].read_bytes(), sample_rate=48_000, channels=2)
    assert audio.duration_s == pytest.approx(1.2, abs=0.05)
    meta = json.loads(files[1].with_name(files[1].name + ".json").read_text())
    assert meta["licence"] == {
        "name": "MIT",
        "commercial_use": True,
        "url": "https://huggingface.co/ACE-Step/acestep-v15-xl-turbo-diffusers",
    }
    assert meta["model"]["family"] == "acestep" and meta["model"]["name"] == "debug-ace"
    assert meta["parameters"]["strength"] == 1.0 and meta["parameters"]["cover_steps"] == 8
    assert (meta["seed"], meta["output"]["sample_rate"], meta["output"]["channels"]) == (41, 48_000, 2)
    assert meta["loudness"]["integrated_lufs"] is not None
    assert "seed 41" in out
    assert "MIT" in err  # the licence is said once the files are written


def test_musicgen_sidecars_say_their_weights_are_non_commercial(capsys, tmp_path, seeds):
    code, _, err = _run(
        capsys, "generate", str(seeds["rising"]), "lofi", "--model", "debug", "-o", str(tmp_path)
    )
    assert code == 0, err
    meta = json.loads((tmp_path / "rising-lofi.wav.json").read_text())
    assert meta["licence"]["name"] == "CC-BY-NC 4.0" and meta["licence"]["commercial_use"] is False
    assert "non-commercial" in err


def test_the_same_inputs_give_the_same_file_and_another_seed_track_another(capsys, tmp_path, seeds):
    first = _made(capsys, tmp_path / "a", seeds["rising"])
    again = _made(capsys, tmp_path / "b", seeds["rising"])
    other = _made(capsys, tmp_path / "c", seeds["falling"])
    assert first == again
    assert decode_audio(other).samples.shape == decode_audio(first).samples.shape
    assert other != first


def test_strength_changes_the_output_and_zero_ignores_the_seed_track(capsys, tmp_path, seeds):
    loose = [_made(capsys, tmp_path / f"0-{name}", seeds[name], "--strength", "0") for name in seeds]
    close = [_made(capsys, tmp_path / f"1-{name}", seeds[name], "--strength", "1") for name in seeds]
    half = _made(capsys, tmp_path / "half", seeds["rising"], "--strength", "0.5")
    default = _made(capsys, tmp_path / "default", seeds["rising"])
    assert loose[0] == loose[1]  # strength 0: text-to-music, the seed track is not heard
    assert close[0] != close[1]  # strength 1: every step hears it
    assert len({loose[0], close[0], half}) == 3
    assert default == close[0]  # upstream's default, 1.0
    meta = json.loads((tmp_path / "1-rising" / "rising-chiptune.wav.json").read_text())
    assert (meta["parameters"]["strength"], meta["parameters"]["cover_steps"]) == (1.0, 8)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model", "debug-ace", "--strength", "1.5"], "from 0 to 1"),
        (["--model", "debug-ace", "--strength", "-0.1"], "from 0 to 1"),
        (["--model", "debug-ace", "--strength", "much"], "from 0 to 1"),
        (["--model", "debug", "--strength", "0.5"], "--strength"),
        (["--model", "debug-ace", "--top-k", "10"], "--top-k"),
        (["--model", "debug-ace", "--guidance", "2"], "--guidance"),
        (["--model", "debug-ace", "--revision", "main"], "built in-process"),
        (["--model", "debug-ace", "--dtype", "int8"], "Unknown dtype 'int8'"),
        (["--model", "debug-ace", "--backend", "fast"], "--backend is not a setting of ACE-Step"),
        (["--model", "debug-ace", "--no-stems"], "--no-stems is not a setting of ACE-Step"),
        (["--model", "debug", "--dtype", "float8"], "Unknown dtype 'float8'"),
        (
            ["--model", "ace-step", "--offline", "--cache-dir", "/nonexistent-cache"],
            "restyle download ace-step",
        ),
    ],
)
def test_options_a_family_does_not_take_are_one_line_and_exit_2(capsys, tmp_path, seeds, extra, expected):
    line = _refused(capsys, "generate", str(seeds["rising"]), "lofi", "-o", str(tmp_path), *extra)
    assert expected in line
    assert not list(tmp_path.iterdir())


def test_a_musicgen_refusal_of_strength_names_the_engine_that_has_it(capsys, tmp_path, seeds):
    line = _refused(capsys, "generate", str(seeds["rising"]), "lofi", "--model", "debug", "--strength", ".5")
    assert "MusicGen-melody" in line and "ace-step" in line


def test_batch_takes_strength_for_all_tracks_and_per_track(capsys, tmp_path, seeds):
    batch = tmp_path / "tracks.toml"
    batch.write_text(
        f'seed = "{seeds["rising"]}"\nmodel = "debug-ace"\nstrength = 0.5\nrandom_seed = 2\n\n[tracks]\n'
        'half = "chiptune"\nfull = { prompt = "chiptune", strength = 1.0 }\n'
    )
    code, _, err = _run(capsys, "batch", str(batch))
    assert code == 0, err
    made = {name: json.loads((tmp_path / f"{name}.wav.json").read_text()) for name in ("half", "full")}
    assert made["half"]["parameters"]["strength"] == 0.5
    assert made["full"]["parameters"]["strength"] == 1.0
    assert made["full"]["licence"]["name"] == "MIT"
    assert (tmp_path / "half.wav").read_bytes() != (tmp_path / "full.wav").read_bytes()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('model = "debug"\nstrength = 0.5\n', "strength"),
        ('model = "debug-ace"\nstrength = 2\n', "strength = 2: it must be a number from 0 to 1"),
        ('model = "debug-ace"\nstrength = "high"\n', 'strength = "high": it must be a number'),
    ],
)
def test_bad_strengths_in_a_batch_file_are_refused_first(capsys, tmp_path, seeds, settings, expected):
    batch = tmp_path / "tracks.toml"
    batch.write_text(f'seed = "{seeds["rising"]}"\n{settings}[tracks]\na = "chiptune"\n')
    assert expected in _refused(capsys, "batch", str(batch))
    assert not list(tmp_path.glob("*.wav"))


def test_download_ace_step_without_the_hub_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _refused(capsys, "download", "ace-step", "--cache-dir", str(tmp_path))
    assert "offline" in line  # as MusicGen's
    assert not list(tmp_path.rglob("*.safetensors"))


def test_help_names_the_ace_step_models_strength_and_licences(capsys):
    assert main(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("ace-step", "debug-ace", "--strength", "0.75", "MIT", "CC-BY-NC"):
        assert needle in text, needle
    assert main(["download", "--help"]) == 0
    assert "ace-step" in capsys.readouterr().out


def test_the_default_strength_the_help_gives_is_the_familys():
    assert ACESTEP.default_params.strength == DEFAULT_STRENGTH


def test_the_readme_command_runs_offline(tmp_path, seeds):
    """As the README's quick start has it, with the installed command and no network."""
    theme = tmp_path / "theme.mp3"
    theme.write_bytes(seeds["rising"].read_bytes())
    done = subprocess.run(
        [str(Path(sys.executable).with_name("restyle")), "generate", str(theme), "prompt",
         "--model", "debug-ace", "-n", "2", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == [
        "theme-prompt-1.wav",
        "theme-prompt-2.wav",
    ]
    assert "100%" in done.stderr and "8/8" in done.stderr  # the bar counts the 8 turbo steps


@pytest.fixture(scope="module")
def saved_ace(tmp_path_factory, debug_ace) -> Path:
    """A model folder as `save_pretrained` writes it: the real lengths (10 s to 10 minutes)."""
    folder = tmp_path_factory.mktemp("models") / "cover-model"
    debug_ace.pipe.save_pretrained(folder)
    return folder


def _refused_after_decoding(capsys, *argv: str) -> str:
    """A refusal that needs the seed's length: one line, made while the seed is decoded, no loading."""
    code, _, err = _run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "decoding the seed" not in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def test_a_seed_too_short_for_the_model_is_refused_before_it_loads(capsys, tmp_path, seeds, saved_ace):
    argv = ["generate", str(seeds["rising"]), "lofi", "--model", str(saved_ace), "-o", str(tmp_path)]
    line = _refused_after_decoding(capsys, *argv)
    assert "10.0 s to 10:00" in line and "not 1.2 s" in line and "duration" in line
    assert "not 5.0 s" in _refused_after_decoding(capsys, *argv, "--duration", "5")
    assert not list(tmp_path.iterdir())


def test_ace_step_without_network_is_one_line_at_once_before_the_seed_is_read(tmp_path, seeds):
    """Issue 23's fourth defect: one try, one line, before any work, and the word offline."""
    from tests.generation.cli.test_cli_first_steps import one_line, restyle

    started = time.perf_counter()
    offline = one_line(restyle("download", "ace-step", home=tmp_path, offline=True))
    assert "offline" in offline
    generate = ["generate", str(seeds["rising"]), "lofi", "--model", "ace-step", "-o", str(tmp_path / "out")]
    said = one_line(restyle(*generate, home=tmp_path, offline=True))
    assert "offline" in said and "restyle download ace-step" in said
    with dropping_server() as (accepted, port):
        endpoint = f"http://127.0.0.1:{port}"
        unreachable = one_line(restyle(*generate, home=tmp_path, endpoint=endpoint))
        assert "cannot reach the Hugging Face hub" in unreachable and len(accepted) == 1
        fetch = one_line(restyle("download", "ace-step", home=tmp_path, endpoint=endpoint))
        assert "cannot reach the Hugging Face hub" in fetch and len(accepted) == 2
    assert not (tmp_path / "out").exists()
    assert time.perf_counter() - started < 60  # four runs of the command: ~25 s each before
