"""Game music end to end on the debug model: an intro + loop file with layers, read back by hand
(RIFF chunks, 16-bit samples) and by a real engine (Godot 3's headless importer, where installed).

`restyle generate seed.wav "chiptune" --loop --bpm 120 --intro 1 --layers -n 2` must write two
files whose `smpl` loop starts after one bar and ends on the last sample, and four layers each that
sum to their candidate and carry the same loop points. The layer checks hold for any separator: the
debug one is tiny and random, and the sum property does not depend on what it does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from generation.cli import main
from tests.audio_factory import encode
from tests.generation.audio.loop_audio import click_track, smpl_loops

RATE = 32_000
BAR_120 = 2 * RATE
LAYERS = ("drums", "bass", "other", "vocals")
GODOT = shutil.which("godot3-server")
# Godot 3's importer reads a WAV `smpl` loop into the imported AudioStreamSample (DESIGN.md).
READ_LOOPS_GD = """extends SceneTree

func _init():
\tfor path in OS.get_cmdline_args():
\t\tif path.ends_with(".wav"):
\t\t\tvar s = load("res://" + path)
\t\t\tprint("LOOP ", path, " ", s.loop_mode, " ", s.loop_begin, " ", s.loop_end, " ", s.mix_rate)
\tquit()
"""


def _samples(path: Path) -> np.ndarray:
    """16-bit samples as int64, read with the standard library (it skips the `smpl` chunk)."""
    with wave.open(str(path)) as file:
        assert (file.getsampwidth(), file.getframerate()) == (2, RATE)
        frames = file.readframes(file.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.int64)


def _sidecar(audio: Path) -> dict:
    return json.loads(audio.with_name(audio.name + ".json").read_text())


@pytest.fixture(scope="module")
def game_folder(tmp_path_factory) -> Path:
    """The issue's command (a 2-bar loop to keep it short) and a plain loop, in a Godot project."""
    folder = tmp_path_factory.mktemp("game")
    seed = folder / "seed.wav"
    seed.write_bytes(
        encode(click_track(8.0, RATE), RATE, "wav", "pcm_s16le", sample_format="s16", channels=1)
    )
    common = ["--model", "debug", "--bpm", "120", "--duration", "4", "-o", str(folder / "music")]
    intro = ["generate", str(seed), "chiptune", "--loop", "--intro", "1", "--layers", "-n", "2"]
    assert main([*intro, *common, "--name", "level"]) == 0
    assert main(["generate", str(seed), "chiptune", "--loop", *common, "--name", "plain"]) == 0
    return folder


def test_intro_and_loop_files_have_their_loop_after_one_bar_to_the_last_sample(game_folder):
    for index in (1, 2):
        audio = game_folder / "music" / f"level-{index}.wav"
        loop = _sidecar(audio)["loop"]
        assert (loop["intro_bars"], loop["intro_samples"], loop["loop_samples"]) == (1, BAR_120, 2 * BAR_120)
        assert (loop["loop_start"], loop["loop_end"]) == (BAR_120, 3 * BAR_120)
        assert (loop["intro_s"], loop["loop_s"], loop["loop_start_s"], loop["loop_end_s"]) == (
            2.0,
            4.0,
            2.0,
            6.0,
        )
        assert len(_samples(audio)) == 3 * BAR_120
        assert smpl_loops(audio.read_bytes()) == [(0, BAR_120, 3 * BAR_120 - 1, 0)]  # last sample, inclusive
        assert set(loop["intro_seam"]) == set(loop["seam"])


def test_four_layers_each_sum_to_their_candidate_and_carry_its_loop_points(game_folder):
    for index in (1, 2):
        audio = game_folder / "music" / f"level-{index}.wav"
        entry = _sidecar(audio)["loop"]["layers"]
        assert entry["remainder_layer"] == "other" and entry["sum"].startswith("exact")
        layers = [audio.with_name(f"level-{index}-{name}.wav") for name in LAYERS]
        assert [item["file"] for item in entry["files"]] == [path.name for path in layers]
        total = sum(_samples(path) for path in layers)
        np.testing.assert_array_equal(total, _samples(audio))
        for path, item in zip(layers, entry["files"], strict=True):
            assert smpl_loops(path.read_bytes()) == smpl_loops(audio.read_bytes())
            assert _sidecar(path)["loop"] == {
                "loop_start": BAR_120,
                "loop_end": 3 * BAR_120,
                "sample_rate": RATE,
            }
            assert item["silent"] == (item["integrated_lufs"] is None or item["true_peak_dbtp"] < -60)
            assert entry["silent_layers"] == [item["layer"] for item in entry["files"] if item["silent"]]


def test_intro_and_layers_without_a_loop_or_a_negative_intro_are_refused_in_one_line(capsys, game_folder):
    seed = str(game_folder / "seed.wav")
    out = ["--model", "debug", "-o", str(game_folder / "refused")]
    for argv, expected in (
        (["--intro", "1"], "add --loop"),
        (["--layers"], "add --loop"),
        (["--loop", "--bpm", "120", "--intro", "-1"], "whole number from 0 to 64 bars"),
        (["--loop", "--bpm", "120", "--intro", "2", "--max-duration", "5"], "longer than the maximum"),
    ):
        assert main(["generate", seed, "chiptune", *argv, *out]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], lines
    assert not (game_folder / "refused").exists()


def _godot(project: Path, *args: str) -> str:
    done = subprocess.run(
        [GODOT, "--path", ".", *args], cwd=project, capture_output=True, text=True, timeout=300, check=True
    )
    return done.stdout


@pytest.mark.skipif(GODOT is None, reason="Godot 3 (Debian godot3-server) is not installed")
def test_godot_imports_the_loop_points_we_wrote(game_folder):
    (game_folder / "project.godot").write_text('config_version=4\n\n[application]\nconfig/name="loops"\n')
    (game_folder / "read_loops.gd").write_text(READ_LOOPS_GD)
    _godot(game_folder, "--editor", "--quit")  # imports every .wav
    wavs = sorted(str(path.relative_to(game_folder)) for path in (game_folder / "music").glob("*.wav"))
    assert len(wavs) == 2 + 2 * 4 + 1
    printed = _godot(game_folder, "-s", "read_loops.gd", *wavs)
    read = {
        m[0]: tuple(map(int, m[1:]))
        for m in re.findall(r"^LOOP (\S+) (\d+) (\d+) (\d+) (\d+)$", printed, re.M)
    }
    assert sorted(read) == wavs, printed
    for path, (mode, begin, end, mix_rate) in read.items():
        loop = _sidecar(game_folder / path)["loop"]
        assert mode == 1, path  # AudioStreamSample.LOOP_FORWARD
        assert (begin, end + 1, mix_rate) == (loop["loop_start"], loop["loop_end"], RATE), path
    assert read["music/level-1.wav"][1:3] == (BAR_120, 3 * BAR_120 - 1)
    assert read["music/plain.wav"][1:3] == (0, 2 * BAR_120 - 1)
