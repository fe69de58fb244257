"""`restyle batch` with `set = true`: loops of one tempo, metre and bar count, identical to the
sample, at one loudness, described by a `set.json` built from the files as written."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from generation.cli import main
from generation.errors import RestyleError
from generation.sets import common_loudness, set_manifest
from tests.audio_factory import encode
from tests.generation.audio.loop_audio import click_track, smpl_loops

RATE = 32_000
BAR_120 = 2 * RATE
SET_FILE = """seed = "seed.wav"
model = "debug"
output = "out"
set = true
bpm = 120
duration = 4
intro = 1
stems = false

[tracks]
calm = "soft harp"
tense = {{ prompt = "tense strings", candidates = 2, layers = true }}
{extra}"""


def _batch(folder: Path, extra: str = "", *argv: str) -> int:
    (folder / "set.toml").write_text(SET_FILE.format(extra=extra))
    return main(["batch", str(folder / "set.toml"), *argv])


def _frames(path: Path) -> int:
    with wave.open(str(path)) as file:
        return file.getnframes()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("set")
    (folder / "seed.wav").write_bytes(
        encode(click_track(8.0, RATE), RATE, "wav", "pcm_s16le", sample_format="s16", channels=1)
    )
    assert _batch(folder) == 0
    return folder / "out"


def test_every_track_of_a_set_is_the_same_length_with_the_same_loop_points(made):
    files = [made / "calm.wav", made / "tense-1.wav", made / "tense-2.wav"]
    assert {_frames(path) for path in files} == {3 * BAR_120}
    assert {tuple(smpl_loops(path.read_bytes())[0]) for path in files} == {(0, BAR_120, 3 * BAR_120 - 1, 0)}
    assert _frames(made / "tense-2-drums.wav") == 3 * BAR_120 and not (made / "calm-drums.wav").exists()


def test_set_json_gives_the_grid_files_layers_and_loudness(made):
    manifest = json.loads((made / "set.json").read_text())
    assert (manifest["bpm"], manifest["beats_per_bar"], manifest["bars"], manifest["intro_bars"]) == (
        120.0,
        4,
        2,
        1,
    )
    assert (manifest["sample_rate"], manifest["loop_start"], manifest["loop_end"]) == (
        RATE,
        BAR_120,
        3 * BAR_120,
    )
    assert manifest["bar_lines"] == [0, BAR_120, 2 * BAR_120, 3 * BAR_120]
    tracks = {track["name"]: track for track in manifest["tracks"]}
    assert [c["file"] for c in tracks["tense"]["candidates"]] == ["tense-1.wav", "tense-2.wav"]
    assert tracks["tense"]["prompt"] == "tense strings"
    assert [layer["layer"] for layer in tracks["tense"]["candidates"][0]["layers"]] == [
        "drums",
        "bass",
        "other",
        "vocals",
    ]
    assert tracks["calm"]["candidates"][0]["layers"] == []
    loudness = [c["integrated_lufs"] for track in manifest["tracks"] for c in track["candidates"]]
    assert max(loudness) - min(loudness) <= 0.1 and manifest["loudness_spread_db"] <= 0.1


def test_a_resumed_set_writes_its_set_json_again_from_the_files(made, capsys):
    (made / "set.json").unlink()
    assert _batch(made.parent) == 0
    assert "already written" in capsys.readouterr().err
    assert json.loads((made / "set.json").read_text())["bars"] == 2


@pytest.mark.parametrize(
    ("extra", "argv", "expected"),
    [
        ('fast = { prompt = "x", bpm = 140 }\n', (), "sets its own bpm"),
        ('fast = { prompt = "x", duration = 8 }\n', (), "sets its own duration"),
        ('still = { prompt = "x", loop = false }\n', (), "every track of a set"),
        ("", ("--no-normalize",), "loudness-matched"),
    ],
)
def test_a_set_that_cannot_share_one_grid_is_refused_in_one_line(tmp_path, capsys, extra, argv, expected):
    (tmp_path / "seed.wav").write_bytes(b"")  # never read: refused first
    assert _batch(tmp_path, extra, *argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], lines


def test_the_common_loudness_is_what_the_peakiest_track_can_reach():
    t = np.arange(RATE * 2) / RATE
    smooth = (0.1 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32)
    peaky = smooth.copy()
    peaky[0, ::4000] = 0.9  # clicks: a high true peak for its loudness
    alone = common_loudness([smooth], RATE, -14.0, -1.0)
    together = common_loudness([smooth, peaky], RATE, -14.0, -1.0)
    assert alone == -14.0 and together < -16.0


def test_set_json_refuses_tracks_that_do_not_share_the_grid(tmp_path):
    for name, end in (("a", 3 * BAR_120), ("b", 4 * BAR_120)):
        loop = {
            "bpm": 120.0,
            "beats_per_bar": 4,
            "bars": 2,
            "sample_rate": RATE,
            "loop_start": 0,
            "loop_end": end,
        }
        (tmp_path / f"{name}.wav.json").write_text(json.dumps({"loop": loop}))
    with pytest.raises(RestyleError, match="does not share the set's"):
        set_manifest([("a", [tmp_path / "a.wav"]), ("b", [tmp_path / "b.wav"])])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('intro = 1\n[tracks]\na = "x"\n', "intro or layers but no track loops"),
        ('[tracks]\na = { prompt = "x", layers = true }\n', "asks for an intro or layers but does not loop"),
        (
            'loop = true\nintro = "one"\n[tracks]\na = "x"\n',
            'intro = "one": it must be a whole number from 0 to 64 bars',
        ),
    ],
)
def test_batch_intro_and_layers_keys_are_checked_before_any_work(tmp_path, capsys, text, expected):
    (tmp_path / "t.toml").write_text('seed = "seed.wav"\nmodel = "debug"\n' + text)
    assert main(["batch", str(tmp_path / "t.toml")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], lines


def test_a_track_made_without_layers_is_not_kept_on_resume_when_layers_are_asked(made, capsys):
    toml = made.parent / "set.toml"
    toml.write_text(
        toml.read_text().replace('calm = "soft harp"', 'calm = { prompt = "soft harp", layers = true }')
    )
    assert main(["batch", str(toml)]) == 2  # as for any changed setting: made again only with --force
    assert "calm.wav already exists" in capsys.readouterr().err
    assert main(["batch", str(toml), "--force"]) == 0
    assert _frames(made / "calm-drums.wav") == 3 * BAR_120
