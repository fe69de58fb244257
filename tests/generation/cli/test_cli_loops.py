"""`restyle generate --loop` and `loop = true` in batch files, end to end on the debug model: whole
bars to the sample, loop points in the files equal to the sidecar's, refusals before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generation.audio.decode import AudioLimits
from generation.cli import main
from generation.loops import LoopOptions, plan_loop
from generation.musicgen.family import MUSICGEN
from generation.pipeline import decode_seed
from generation.results import RestyleOptions
from tests.audio_factory import encode
from tests.generation.audio.loop_audio import click_track, smpl_loops, tags_and_length

RATE = 32_000
BAR_120 = 2 * RATE


def _wav(path: Path, samples: np.ndarray) -> Path:
    path.write_bytes(encode(samples, RATE, "wav", "pcm_s16le", sample_format="s16", channels=1))
    return path


@pytest.fixture(scope="module")
def groove(tmp_path_factory) -> Path:
    """12 s at 120 BPM in 4/4: a click on every beat, a chord a bar, a pickup before the first bar."""
    return _wav(tmp_path_factory.mktemp("seeds") / "groove.wav", click_track(12.0, RATE))


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr("generation.musicgen.models.load_model", refuse)


def _loop(seed: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", str(seed), "lofi", "--model", "debug", "--no-stems", "-o", str(out), "--loop", *extra]


def _refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    return lines[0]


def _sidecar(audio: Path) -> dict:
    return json.loads(audio.with_name(audio.name + ".json").read_text())


def test_a_wav_loop_lasts_its_bars_to_the_sample_and_its_smpl_chunk_is_the_sidecars(capsys, tmp_path, groove):
    assert main(_loop(groove, tmp_path, "--duration", "8", "--seed", "3", "--name", "theme")) == 0
    out, err = capsys.readouterr()
    audio = tmp_path / "theme.wav"
    loop = _sidecar(audio)["loop"]
    assert (loop["bpm"], loop["beats_per_bar"], loop["bars"], loop["tempo_detected"]) == (120.0, 4, 4, True)
    assert (loop["loop_start"], loop["loop_end"], loop["loop_end_s"]) == (0, 4 * BAR_120, 8.0)
    assert loop["prompt"] == "lofi"
    data = audio.read_bytes()
    assert smpl_loops(data) == [(0, loop["loop_start"], loop["loop_end"] - 1, 0)]  # inclusive end
    assert tags_and_length(data)[1:] == (loop["loop_end"], RATE)
    seam = loop["seam"]
    assert f"loops seamlessly: 4 bars at 120 BPM (seam: flux {seam['flux_ratio_bar_lines']:.2f}" in out
    assert f"jump {seam['jump_ratio']:.2f}" in out
    assert _sidecar(audio)["loudness"]["fade_out_s"] == 0.0  # a fade would dip at every wrap
    seed = decode_seed(groove, AudioLimits(), MUSICGEN)
    plan = plan_loop(seed, RestyleOptions(duration_s=8.0), LoopOptions(), frame_rate=MUSICGEN.frame_rate)
    steps = MUSICGEN.total_steps(plan.generated_s)
    assert steps > MUSICGEN.total_steps(8.0)
    assert f"{steps}/{steps}" in err  # the bar counts the overhang too


def test_ogg_and_flac_loops_carry_their_points_as_tags(capsys, tmp_path, groove):
    for fmt in ("ogg", "flac"):
        argv = _loop(groove, tmp_path, "--duration", "4", "--seed", "1", "--format", fmt, "--name", fmt)
        assert main(argv) == 0
        audio = tmp_path / f"{fmt}.{fmt}"
        loop = _sidecar(audio)["loop"]
        tags, samples, rate = tags_and_length(audio.read_bytes())
        assert samples * loop["sample_rate"] == loop["loop_end"] * rate  # Opus counts at 48 kHz
        assert (tags["LOOPSTART"], tags["LOOPLENGTH"]) == ("0", str(samples))
        assert loop["bars"] == 2
    capsys.readouterr()


def test_a_given_tempo_and_metre_set_the_bars(capsys, tmp_path, groove):
    argv = _loop(
        groove, tmp_path, "--duration", "8", "--bpm", "100", "--beats-per-bar", "3", "--name", "waltz"
    )
    assert main(argv) == 0
    # The bars, not the verdict: a random seed's noise may or may not wrap without a click (the
    # verdict's wording is generation.game_music's, tested there).
    assert "4 bars at 100 BPM" in capsys.readouterr().out
    loop = _sidecar(tmp_path / "waltz.wav")["loop"]
    assert (loop["bpm"], loop["beats_per_bar"], loop["tempo_detected"]) == (100.0, 3, False)
    assert loop["loop_end"] == 4 * 3 * 60 * RATE // 100
    assert tags_and_length((tmp_path / "waltz.wav").read_bytes())[1] == loop["loop_end"]


def hiss(seconds: float) -> np.ndarray:
    return (0.2 * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)


def test_a_seed_with_no_clear_beat_loops_once_its_tempo_is_given(capsys, tmp_path):
    noise = _wav(tmp_path / "hiss.wav", hiss(6.0))
    line = _refused(capsys, _loop(noise, tmp_path / "out"))
    assert "no clear beat" in line and "bpm" in line
    assert not (tmp_path / "out").exists()
    assert main(_loop(noise, tmp_path / "out", "--bpm", "120", "--name", "hiss")) == 0  # the fallback
    assert "3 bars at 120 BPM" in capsys.readouterr().out  # seamless or not: a random seed's noise
    assert _sidecar(tmp_path / "out" / "hiss.wav")["loop"]["loop_end"] == 3 * BAR_120


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--format", "mp3"], "mp3 cannot carry loop points"),
        (["--bpm", "500"], "--bpm: must be a number from 30 to 300 BPM"),
        (["--beats-per-bar", "0"], "--beats-per-bar: must be a whole number from 1 to 16"),
        (["--max-duration", "1.5"], "longer than the maximum"),
    ],
)
def test_bad_loop_requests_are_refused_before_the_model_loads(
    capsys, tmp_path, groove, extra, expected, no_model
):
    assert expected in _refused(capsys, _loop(groove, tmp_path, *extra))


def test_a_seed_shorter_than_a_bar_is_refused_before_the_model_loads(capsys, tmp_path, no_model):
    short = _wav(tmp_path / "short.wav", click_track(1.5, RATE))
    assert "less than one whole bar" in _refused(capsys, _loop(short, tmp_path, "--bpm", "120"))


def test_tempo_options_without_a_loop_are_refused(capsys, tmp_path, groove, no_model):
    argv = ["generate", str(groove), "lofi", "--model", "debug", "-o", str(tmp_path), "--bpm", "120"]
    assert "--loop" in _refused(capsys, argv)


def _batch(tmp_path: Path, groove: Path, body: str) -> Path:
    path = tmp_path / "tracks.toml"
    path.write_text(f'seed = "{groove}"\nmodel = "debug"\nstems = false\n{body}')
    return path


def test_a_batch_loops_all_tracks_or_some_and_resumes(capsys, tmp_path, groove):
    tracks = _batch(
        tmp_path,
        groove,
        'loop = true\nduration = 4\nrandom_seed = 7\n[tracks]\nlevel = "chiptune"\n'
        'boss = { prompt = "metal", bpm = 90, beats_per_bar = 3 }\n'
        'menu = { prompt = "harp", loop = false }\n',
    )
    assert main(["batch", str(tracks)]) == 0
    out = capsys.readouterr().out
    assert "loops seamlessly: 2 bars at 120 BPM" in out and "loops seamlessly: 2 bars at 90 BPM" in out
    level, boss = _sidecar(tmp_path / "level.wav")["loop"], _sidecar(tmp_path / "boss.wav")["loop"]
    assert (level["bars"], level["loop_end"]) == (2, 2 * BAR_120)
    assert (boss["bpm"], boss["beats_per_bar"], boss["loop_end"]) == (90.0, 3, 2 * 3 * 60 * RATE // 90)
    assert smpl_loops((tmp_path / "boss.wav").read_bytes()) == [(0, 0, boss["loop_end"] - 1, 0)]
    assert "loop" not in _sidecar(tmp_path / "menu.wav")
    assert main(["batch", str(tracks)]) == 0  # again: every track is there, loops included
    err = capsys.readouterr().err
    assert err.count("already written, skipped") == 3


def test_a_batch_that_turns_a_written_track_into_a_loop_makes_it_again(capsys, tmp_path, groove):
    plain = _batch(tmp_path, groove, 'duration = 2\n[tracks]\nlevel = "chiptune"\n')
    assert main(["batch", str(plain)]) == 0
    capsys.readouterr()
    looped = _batch(tmp_path, groove, 'duration = 2\nloop = true\n[tracks]\nlevel = "chiptune"\n')
    assert "--force" in _refused(capsys, ["batch", str(looped)])  # not taken for the loop asked
    assert main(["batch", str(looped), "--force"]) == 0
    assert "1 bar at 120 BPM" in capsys.readouterr().out
    assert _sidecar(tmp_path / "level.wav")["loop"]["bars"] == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('format = "mp3"\nloop = true\n[tracks]\na = "x"\n', "mp3 cannot carry loop points"),
        ('[tracks]\na = { prompt = "x", loop = "yes" }\n', "loop must be true or false"),
        ('loop = true\n[tracks]\na = { prompt = "x", bpm = 1000 }\n', "Track a: bpm = 1000: it must be"),
        ('[tracks]\na = { prompt = "x", bpm = 120 }\n', "loop = true"),
        ('loop = true\n[tracks]\na = "x"\nb = { prompt = "y", beats_per_bar = 40 }\n', "b: beats_per_bar"),
    ],
)
def test_bad_loop_settings_in_a_batch_file_are_refused_up_front(
    capsys, tmp_path, groove, body, expected, no_model
):
    assert expected in _refused(capsys, ["batch", str(_batch(tmp_path, groove, body))])
    assert not list(tmp_path.glob("*.wav"))


def test_a_one_bar_loop_is_made_and_said_in_the_singular(capsys, tmp_path, groove):
    """One bar at 120 BPM (2 s) is shorter than the seam's overhang would like: it still folds into
    exactly one bar, and the lines say "1 bar", not "1 bars"."""
    assert main(_loop(groove, tmp_path, "--duration", "2", "--name", "one")) == 0
    out, err = capsys.readouterr()
    assert _sidecar(tmp_path / "one.wav")["loop"]["bars"] == 1
    assert tags_and_length((tmp_path / "one.wav").read_bytes())[1:] == (BAR_120, RATE)
    assert "loop: 1 bar of 4 at 120 BPM" in out + err
    assert "1 bar at 120 BPM" in out
