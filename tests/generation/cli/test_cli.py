"""`restyle` end to end on the debug model: files, sidecars, exit codes, one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from generation.cli import main
from tests.audio_factory import encode_format, melody
from tests.generation.cli.running import refused as _refused
from tests.generation.cli.running import run as _run


@pytest.fixture(scope="module")
def seed_mp3(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "level-theme.mp3"
    path.write_bytes(encode_format("mp3", melody([392.0, 440.0, 493.9, 523.3], 0.75, 44_100)))
    return path


def test_generate_writes_candidates_and_sidecars(capsys, tmp_path, seed_mp3):
    code, out, _ = _run(
        capsys,
        "generate",
        str(seed_mp3),
        "serene ambient piano, gentle chimes",
        "--model",
        "debug",
        "-n",
        "2",
        "--format",
        "mp3",
        "-o",
        str(tmp_path),
        "--seed",
        "40",
    )
    assert code == 0
    files = sorted(tmp_path.glob("*.mp3"))
    assert [f.name for f in files] == [
        "level-theme-serene-ambient-piano-gentle-chimes-1.mp3",
        "level-theme-serene-ambient-piano-gentle-chimes-2.mp3",
    ]
    meta = json.loads(files[1].with_name(files[1].name + ".json").read_text())
    assert meta["seed"] == 41 and meta["candidate"] == 2
    assert meta["prompt"] == "serene ambient piano, gentle chimes"
    assert meta["model"]["name"] == "debug"
    assert meta["parameters"]["top_k"] == 250 and meta["parameters"]["guidance_scale"] == 3.0
    assert meta["input"]["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert meta["output"]["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert meta["loudness"]["integrated_lufs"] is not None
    assert meta["loudness"]["true_peak_dbtp"] <= -0.9
    assert 0.0 <= meta["melody_adherence"] <= 1.0
    assert meta["versions"]["transformers"] and meta["versions"]["torch"]
    assert "seed 41" in out


def test_the_same_seed_gives_the_same_file(capsys, tmp_path, seed_mp3):
    for folder in ("a", "b"):
        args = [
            "generate",
            str(seed_mp3),
            "lofi",
            "--model",
            "debug",
            "--seed",
            "9",
            "-o",
            str(tmp_path / folder),
        ]
        assert _run(capsys, *args)[0] == 0
    first, second = (tmp_path / f / "level-theme-lofi.wav" for f in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()


def test_duration_and_no_normalize(capsys, tmp_path, seed_mp3):
    args = [
        "generate",
        str(seed_mp3),
        "jazz",
        "--model",
        "debug",
        "--duration",
        "2",
        "--no-normalize",
        "-o",
        str(tmp_path),
    ]
    assert _run(capsys, *args)[0] == 0
    meta = json.loads((tmp_path / "level-theme-jazz.wav.json").read_text())
    assert meta["output"]["duration_s"] == 2.0
    assert meta["loudness"]["normalized"] is False and meta["loudness"]["gain_db"] == 0.0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-n", "0"], "from 1 to 8"),
        (["--seed", "-3"], "--seed: must be a whole number from 0"),
        (["--duration", "900"], "duration must be between"),
        (["--top-k", "5000"], "--top-k: must be a whole number from 0 to 2048"),
        (["--format", "aiff"], "invalid choice"),
        (["--candidates", "two"], "must be a whole number from 1 to 8, not two"),
        (
            ["--model", "facebook/musicgen-melody", "--offline", "--cache-dir", "/nonexistent-cache"],
            "restyle download",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, tmp_path, seed_mp3, extra, expected):
    line = _refused(
        capsys, "generate", str(seed_mp3), "lofi", "--model", "debug", "-o", str(tmp_path), *extra
    )
    assert expected in line


def test_a_bad_seed_is_refused_in_one_line(capsys, tmp_path):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("shopping list: eggs, milk\n" * 40)
    assert "not audio" in _refused(
        capsys, "generate", str(not_audio), "lofi", "--model", "debug", "-o", str(tmp_path)
    )
    assert "no file" in _refused(capsys, "generate", str(tmp_path / "nope.wav"), "lofi", "--model", "debug")
    assert "empty" in _refused(capsys, "generate", str(tmp_path / "notes.mp3"), "   ", "--model", "debug")


def test_existing_outputs_are_not_overwritten_without_force(capsys, tmp_path, seed_mp3):
    (tmp_path / "level-theme-lofi.wav").write_bytes(b"earlier work")
    assert "--force" in _refused(
        capsys, "generate", str(seed_mp3), "lofi", "--model", "debug", "-o", str(tmp_path)
    )
    assert (tmp_path / "level-theme-lofi.wav").read_bytes() == b"earlier work"
    assert (
        _run(capsys, "generate", str(seed_mp3), "lofi", "--model", "debug", "-o", str(tmp_path), "--force")[0]
        == 0
    )
    assert (tmp_path / "level-theme-lofi.wav").read_bytes() != b"earlier work"


def test_batch_makes_one_track_per_name(capsys, tmp_path, seed_mp3):
    batch = tmp_path / "tracks.toml"
    batch.write_text(
        f'seed = "{seed_mp3}"\nformat = "flac"\noutput = "variations"\nrandom_seed = 5\n\n[tracks]\n'
        'ambient = "serene ambient piano, gentle chimes"\n'
        'clockwork = { prompt = "minimalist ticking, soft synth pads, clockwork puzzle", candidates = 2 }\n'
    )
    code, out, _ = _run(capsys, "batch", str(batch), "--model", "debug")
    assert code == 0
    made = sorted(p.name for p in (tmp_path / "variations").glob("*.flac"))
    assert made == ["ambient.flac", "clockwork-1.flac", "clockwork-2.flac"]
    assert json.loads((tmp_path / "variations" / "ambient.flac.json").read_text())["seed"] == 5
    assert out.count("seed") == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('seed = "x.mp3"\n', "[tracks] table"),
        ("[tracks]\na = 'b'\n", "needs a seed track"),
        ('seed = "x.mp3"\ncolour = "red"\n[tracks]\na = "b"\n', "Unknown setting 'colour'"),
        ('seed = "x.mp3"\n[tracks]\n"bad name!" = "b"\n', "Track name"),
        ('seed = "x.mp3"\n[tracks]\na = { candidates = 2 }\n', "needs a prompt"),
        ('seed = "x.mp3"\ncandidates = "2"\n[tracks]\na = "b"\n', 'candidates = "2": it must'),
        ("seed = \n", "not valid TOML"),
    ],
)
def test_bad_batch_files_are_refused(capsys, tmp_path, content, expected):
    batch = tmp_path / "tracks.toml"
    batch.write_text(content)
    assert expected in _refused(capsys, "batch", str(batch), "--model", "debug")


def test_download_refuses_what_is_not_on_the_hub(capsys):
    assert "nothing to download" in _refused(capsys, "download", "debug")


def test_help_lists_every_option(capsys):
    assert main(["generate", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "-n",
        "--duration",
        "--seed",
        "--model",
        "--format",
        "--output",
        "--no-normalize",
        "--no-stems",
        "--name",
        "--threads",
        "--revision",
        "--top-k",
        "--top-p",
        "--temperature",
        "--guidance",
        "--device",
        "--offline",
        "--force",
    ):
        assert option in text


def _console_script() -> str:
    return str(Path(sys.executable).with_name("restyle"))


def test_the_installed_command_runs_offline(tmp_path, seed_mp3):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            _console_script(),
            "generate",
            str(seed_mp3),
            "chiptune",
            "--model",
            "debug",
            "-n",
            "2",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("*.wav"))) == 2
    assert "100%" in done.stderr  # the progress bar ran to the end


def test_ctrl_c_cancels_with_one_line(tmp_path):
    long_seed = tmp_path / "long.flac"
    long_seed.write_bytes(encode_format("flac", melody([330.0, 440.0], 30.0, 96_000)))
    process = subprocess.Popen(
        [
            _console_script(),
            "generate",
            str(long_seed),
            "drone",
            "--model",
            "debug",
            "--backend",
            "reference",
            "--duration",
            "150",  # five windows: far longer than the wait for the bar, even on a loaded machine
            "-o",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
    )
    seen = b""
    while b"step" not in seen and process.poll() is None:  # wait for the progress bar to start
        seen += os.read(process.stderr.fileno(), 65536)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    rest = rest.decode()
    assert process.returncode == 130
    assert "cancelled" in rest and "Traceback" not in rest
    assert not list(tmp_path.glob("*.wav"))
