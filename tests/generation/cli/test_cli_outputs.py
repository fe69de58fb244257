"""Where results go: every output path and option checked before the model loads, sidecars that never
collide, files written as pairs, batches that resume, and what the console says along the way."""

from __future__ import annotations

import json
import pathlib
import re
import sys
from pathlib import Path

import pytest

from generation.cli import main
from tests.audio_factory import encode_format, melody
from tests.generation.cli.running import refused as _refused


@pytest.fixture(scope="module")
def seed_mp3(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "level-theme.mp3"
    path.write_bytes(encode_format("mp3", melody([392.0, 440.0, 493.9], 0.5, 44_100)))
    return path


def _generate(seed: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", str(seed), "lofi", "--model", "debug", "-o", str(out), *extra]


def test_an_output_folder_under_a_file_is_refused_first(capsys, tmp_path, seed_mp3, no_model):
    (tmp_path / "file").write_text("not a folder")
    line = _refused(capsys, *_generate(seed_mp3, tmp_path / "file" / "sub"))
    assert "file" in line and "folder" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_an_output_folder_that_cannot_be_created_is_refused_first(capsys, seed_mp3, no_model):
    # /proc takes no new folders, not even from root (the tests may run as root, so no chmod here).
    line = _refused(capsys, *_generate(seed_mp3, Path("/proc/restyle-out")))
    assert "cannot write" in line and "/proc/restyle-out" in line
    assert not Path("/proc/restyle-out").exists()


@pytest.mark.parametrize("name", ["a/b", "../escaped", "..", ".hidden/x", "a\\b"])
def test_names_that_leave_the_folder_are_refused(capsys, tmp_path, seed_mp3, name, no_model):
    line = _refused(capsys, *_generate(seed_mp3, tmp_path / "out", "--name", name))
    assert "--name" in line
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--lufs", "-100"], "--lufs"),
        (["--lufs", "3"], "--lufs"),
        (["--device", "gpu"], "device"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--threads", "0"], "--threads"),
        (["--max-duration", "0"], "--max-duration"),
    ],
)
def test_out_of_range_settings_are_refused_first(capsys, tmp_path, seed_mp3, extra, expected, no_model):
    assert expected in _refused(capsys, *_generate(seed_mp3, tmp_path, *extra))


def test_cuda_on_a_machine_without_it_is_refused_first(capsys, tmp_path, seed_mp3, no_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "CUDA" in _refused(capsys, *_generate(seed_mp3, tmp_path, "--device", "cuda"))


def test_an_empty_model_folder_is_one_line(capsys, tmp_path, seed_mp3):
    (tmp_path / "empty-model").mkdir()
    line = _refused(capsys, *_generate(seed_mp3, tmp_path / "out", "--model", str(tmp_path / "empty-model")))
    assert "holds no model" in line


def test_a_second_format_in_the_same_folder_keeps_the_first_sidecar(capsys, tmp_path, seed_mp3):
    assert main(_generate(seed_mp3, tmp_path, "--format", "mp3", "--seed", "3")) == 0
    first = json.loads((tmp_path / "level-theme-lofi.mp3.json").read_text())
    assert main(_generate(seed_mp3, tmp_path, "--format", "ogg", "--seed", "4")) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "level-theme-lofi.mp3.json").read_text())
    assert again == first and again["output"]["file"] == "level-theme-lofi.mp3"
    assert json.loads((tmp_path / "level-theme-lofi.ogg.json").read_text())["seed"] == 4


def _pairs_intact(folder: Path) -> None:
    """Every audio file has its sidecar, and nothing half-written is left behind."""
    names = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    for name in names:
        if name.endswith(".mp3"):
            assert f"{name}.json" in names, names
    assert all(name.endswith((".mp3", ".mp3.json")) for name in names), names


@pytest.mark.parametrize("interrupt_at", range(1, 9))
def test_ctrl_c_while_writing_never_leaves_audio_without_its_sidecar(
    capsys, tmp_path, seed_mp3, monkeypatch, interrupt_at
):
    calls = [0]
    real = {name: getattr(pathlib.Path, name) for name in ("write_bytes", "write_text", "replace", "rename")}

    def interrupting(name):
        def wrapper(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == interrupt_at:
                raise KeyboardInterrupt
            return real[name](self, *args, **kwargs)

        return wrapper

    for name in real:
        monkeypatch.setattr(pathlib.Path, name, interrupting(name))
    code = main(_generate(seed_mp3, tmp_path / "out", "-n", "2", "--format", "mp3", "--seed", "1"))
    capsys.readouterr()
    assert code in (0, 130)
    _pairs_intact(tmp_path / "out")


def _batch_file(folder: Path, seed: Path, tracks: dict[str, str]) -> Path:
    lines = [
        f'seed = "{seed}"',
        'format = "flac"',
        'output = "variations"',
        "random_seed = 5",
        "",
        "[tracks]",
    ]
    lines += [f'{name} = "{prompt}"' for name, prompt in tracks.items()]
    path = folder / "tracks.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_batch_run_again_skips_the_tracks_it_finished(capsys, tmp_path, seed_mp3):
    first = _batch_file(tmp_path, seed_mp3, {"ambient": "serene ambient piano"})
    assert main(["batch", str(first), "--model", "debug"]) == 0
    done = (tmp_path / "variations" / "ambient.flac").read_bytes()
    capsys.readouterr()
    more = _batch_file(tmp_path, seed_mp3, {"ambient": "serene ambient piano", "drums": "tribal drums"})
    assert main(["batch", str(more), "--model", "debug"]) == 0
    out, err = capsys.readouterr()
    assert "ambient: already written, skipped" in out + err
    assert (tmp_path / "variations" / "ambient.flac").read_bytes() == done
    assert (tmp_path / "variations" / "drums.flac.json").exists()


def test_a_batch_does_not_skip_a_track_whose_prompt_changed(capsys, tmp_path, seed_mp3):
    first = _batch_file(tmp_path, seed_mp3, {"ambient": "serene ambient piano"})
    assert main(["batch", str(first), "--model", "debug"]) == 0
    capsys.readouterr()
    changed = _batch_file(tmp_path, seed_mp3, {"ambient": "harsh industrial noise"})
    line = _refused(capsys, "batch", str(changed), "--model", "debug")
    assert "ambient" in line and "--force" in line


def test_a_batch_does_not_skip_tracks_another_model_made(capsys, tmp_path, seed_mp3):
    """Switching a batch to ACE-Step (MIT weights) must not keep MusicGen's non-commercial files."""
    tracks = _batch_file(tmp_path, seed_mp3, {"ambient": "serene ambient piano"})
    assert main(["batch", str(tracks), "--model", "debug"]) == 0
    capsys.readouterr()
    line = _refused(capsys, "batch", str(tracks), "--model", "debug-ace")
    assert "ambient" in line and "--force" in line
    assert main(["batch", str(tracks), "--model", "debug-ace", "--force"]) == 0
    made = json.loads((tmp_path / "variations" / "ambient.flac.json").read_text())
    assert (made["model"]["name"], made["licence"]["name"]) == ("debug-ace", "MIT")
    capsys.readouterr()
    assert main(["batch", str(tracks), "--model", "debug-ace"]) == 0  # the same model: resumed
    assert "ambient: already written, skipped" in "".join(capsys.readouterr())


@pytest.mark.parametrize(
    ("model", "setting", "changed", "changed_setting"),
    [
        ("debug", "", ["--top-k", "50"], ""),  # another sampling setting
        ("debug", "duration = 1.0", [], "duration = 1.5"),  # another length
        ("debug", "", ["--no-stems"], ""),  # the melody read from the whole mix
        ("debug-ace", "strength = 0.5", [], "strength = 0.4"),  # another cover strength
    ],
)
def test_a_batch_does_not_skip_tracks_made_with_other_settings(
    capsys, tmp_path, seed_mp3, model, setting, changed, changed_setting
):
    """A resumed batch keeps a track only if it was made as asked now: a changed setting would
    otherwise leave the old sound under the new settings' name."""
    tracks = _batch_file(tmp_path, seed_mp3, {"ambient": "serene ambient piano"})
    made_as = tracks.read_text()
    tracks.write_text(f"{setting}\n{made_as}")
    assert main(["batch", str(tracks), "--model", model]) == 0
    capsys.readouterr()
    tracks.write_text(f"{changed_setting}\n{made_as}")
    line = _refused(capsys, "batch", str(tracks), "--model", model, *changed)
    assert "ambient" in line and "--force" in line
    tracks.write_text(f"{setting}\n{made_as}")
    capsys.readouterr()
    assert main(["batch", str(tracks), "--model", model]) == 0  # as it was made: resumed
    assert "ambient: already written, skipped" in "".join(capsys.readouterr())


def test_a_seed_longer_than_the_cap_is_said_and_phases_are_shown(capsys, tmp_path):
    long_seed = tmp_path / "long.wav"
    long_seed.write_bytes(encode_format("wav16", melody([330.0, 440.0], 3.0, 44_100)))  # 6 s
    assert (
        main(
            [
                "generate",
                str(long_seed),
                "drone",
                "--model",
                "debug",
                "-o",
                str(tmp_path),
                "--max-duration",
                "2",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "the seed is 6.0 s; the output is capped at 2.0 s (--max-duration)" in err
    for phase in (
        "decoding the seed",
        "loading the model",
        "separating stems",
        "generating",
        "decoding audio",
        "writing",
    ):
        assert phase in err, phase
    assert re.search(r"\b0/1\b", err) is None  # the bar knew its total (2 s: 103 steps) from the start
    assert " 0/103 " in err
