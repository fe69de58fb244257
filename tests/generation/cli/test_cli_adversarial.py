"""The adversarial pass owed by issues 19, 21 and 23: what a careless user, a hostile one and a
failing disk did to `restyle` that the earlier guards missed, each kept here as a test."""

from __future__ import annotations

import errno
import pathlib
from pathlib import Path

import pytest

from generation.cli import main
from tests.generation.audio.loop_audio import click_track
from tests.generation.cli.running import refused, run
from tests.generation.cli.test_cli_loops import _wav
from tests.generation.cli.test_cli_safety import _digest, seed_wav  # noqa: F401 (fixtures)

LOOP = 'seed = "groove.wav"\nmodel = "debug"\nstems = false\nloop = true\nbpm = 120\nduration = 4\n'


@pytest.fixture
def groove(tmp_path) -> Path:
    return _wav(tmp_path / "groove.wav", click_track(8.0, 32_000))


@pytest.mark.parametrize("which", ["batch file", "seed"])
def test_a_sets_json_never_overwrites_an_input(capsys, tmp_path, seed_wav, no_model, which):  # noqa: F811
    """set.json is an output like the tracks: a batch file (or a seed) of that name was replaced."""
    tracks = tmp_path / ("set.json" if which == "batch file" else "t.toml")
    seed = "set.json" if which == "seed" else "seed.wav"
    if which == "seed":
        seed_wav.rename(tmp_path / "set.json")
    tracks.write_text(f'seed = "{seed}"\nmodel = "debug"\nset = true\nbpm = 120\n[tracks]\na = "x"\n')
    before = _digest(tmp_path / "set.json")
    line = refused(capsys, "batch", str(tracks), "--force")
    assert "set.json" in line and which.split()[-1] in line and "--force" not in line
    assert _digest(tmp_path / "set.json") == before


def test_resume_does_not_keep_an_intro_no_longer_asked(capsys, tmp_path, groove):
    tracks = tmp_path / "t.toml"
    tracks.write_text(LOOP + "intro = 1\n[tracks]\na = 'x'\n")
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    for now in ("", "intro = 0\n"):
        tracks.write_text(LOOP + now + "[tracks]\na = 'x'\n")
        line = refused(capsys, "batch", str(tracks))
        assert "a.wav already exists, made with another intro (1, not none asked)" in line


@pytest.mark.parametrize(("key", "value"), [("output", "5"), ("output", "true"), ("seed", "['a.wav']")])
def test_a_path_of_the_wrong_type_is_refused_not_ignored(capsys, tmp_path, seed_wav, no_model, key, value):  # noqa: F811
    """`output = 5` was silently dropped: the tracks went next to the batch file instead."""
    body = {"seed": '"seed.wav"', "output": None} | {key: value}
    text = "".join(f"{k} = {v}\n" for k, v in body.items() if v is not None)
    (tmp_path / "t.toml").write_text(text + 'model = "debug"\n[tracks]\na = "x"\n')
    line = refused(capsys, "batch", str(tmp_path / "t.toml"))
    assert key in line and "text in quotes" in line


@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("ace-step@abc123", "takes no other revision"),
        ("debug-ace@abc", "built in-process"),
        ("debug@abc", "built in-process"),
    ],
)
def test_a_revision_typed_in_the_model_name_is_judged_like_revision(
    capsys,
    tmp_path,
    seed_wav,  # noqa: F811
    no_model,
    model,
    said,
):
    """`ace-step@abc` said "Unknown model 'ace-step'. Did you mean ace-step?"; `debug@abc` ran and
    recorded a revision it never had."""
    line = refused(capsys, "generate", str(seed_wav), "lofi", "-o", str(tmp_path), "--model", model)
    assert said in line and "Did you mean" not in line
    assert not list(tmp_path.glob("*.wav.json"))


def _full_disk_at(monkeypatch, name: str) -> None:
    """The disk fills while writing the first file whose name has `name` (a true edge: the disk)."""
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if name in self.name:
            real(self, data[: len(data) // 2])  # what fitted
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


def test_a_full_disk_is_one_line_and_a_layered_loop_leaves_nothing_half_done(
    capsys, tmp_path, groove, monkeypatch
):
    """Layers were renamed into place before the candidate was written: a full disk (or a Ctrl-C
    between the two) left layers of a missing candidate, the rerun refused them, and its --force
    would have made every finished track again."""
    tracks = tmp_path / "t.toml"
    tracks.write_text(LOOP + "layers = true\n[tracks]\na = 'x'\n")
    with monkeypatch.context() as patched:
        _full_disk_at(patched, "-a.wav")  # the candidate's partial, after its layers'
        code, _, err = run(capsys, "batch", str(tracks))
    lines = [line for line in err.splitlines() if line.startswith("restyle:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "No space left on device" in lines[0] and "internal error" not in lines[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["groove.wav", "t.toml"]
    assert main(["batch", str(tracks)]) == 0  # no --force needed: nothing of the failed run is left
    assert (tmp_path / "a.wav").exists() and (tmp_path / "a-drums.wav").exists()


def test_resume_does_not_keep_tracks_of_another_random_seed_or_another_seed_track(
    capsys,
    tmp_path,
    seed_wav,  # noqa: F811
):
    """Both were kept as "already written": a reproducible run handed back another seed's output,
    and a replaced seed track's restyles were those of the old one."""
    from tests.audio_factory import encode_format, melody

    tracks = tmp_path / "t.toml"
    body = 'seed = "seed.wav"\nmodel = "debug"\nstems = false\nduration = 1\n'
    body += '{}[tracks]\na = {{ prompt = "x", {} }}\n'
    tracks.write_text(body.format("random_seed = 1\n", "candidates = 2"))
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    tracks.write_text(body.format("random_seed = 2\n", "candidates = 2"))
    assert "a-1.wav already exists, made with another random seed (1, not 2)" in refused(
        capsys, "batch", str(tracks)
    )
    tracks.write_text(body.format("", "candidates = 2, random_seed = 1"))  # the track's own, as it was
    assert main(["batch", str(tracks)]) == 0 and "already written" in capsys.readouterr().err
    seed_wav.write_bytes(encode_format("wav16", melody([300.0, 500.0, 600.0], 0.5, 32_000)))
    line = refused(capsys, "batch", str(tracks))
    assert "a-1.wav already exists, made from another seed track" in line


def test_a_refusal_beside_finished_tracks_says_force_makes_them_again(capsys, tmp_path, seed_wav):  # noqa: F811
    """ "use --force to overwrite" made every finished track again too (new random seeds): the line
    now says so, and how to make only the one track again."""
    tracks = tmp_path / "t.toml"
    body = 'seed = "seed.wav"\nmodel = "debug"\nstems = false\nduration = 1\n[tracks]\na = "x"\nb = "{}"\n'
    tracks.write_text(body.format("y"))
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    tracks.write_text(body.format("z"))
    line = refused(capsys, "batch", str(tracks))
    assert "b.wav already exists, made from another prompt" in line
    assert "delete" in line and "--force makes every track again, a too" in line


def test_a_resumed_set_matches_the_loudness_of_the_tracks_it_kept(capsys, tmp_path, groove):
    """A track made again alone went to --lufs while the kept ones stayed at the set's level, and
    the run said "every track at -14 LUFS"."""
    from generation.sets import SET_FILE

    tracks = tmp_path / "t.toml"
    tracks.write_text(LOOP.replace("loop = true", "set = true") + '[tracks]\na = "x"\nb = "y"\n')
    assert main(["batch", str(tracks), "--lufs", "-20"]) == 0
    for path in (tmp_path / "b.wav", tmp_path / "b.wav.json"):
        path.unlink()
    capsys.readouterr()
    assert main(["batch", str(tracks)]) == 0
    assert "every track at -14 LUFS" not in capsys.readouterr().err
    import json

    assert json.loads((tmp_path / SET_FILE).read_text())["loudness_spread_db"] <= 0.1


@pytest.mark.parametrize("writer", ["pairs", "set"])
def test_a_planted_link_at_a_temporary_name_is_not_written_through(tmp_path, writer):
    """The temporary names are predictable (the pid; `.partial-set.json`): a link planted there in a
    shared folder had the output written into whatever it pointed at."""
    import os

    from generation.outputs import write_pairs
    from generation.sets import write_set

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    partial = ".partial-set.json" if writer == "set" else f".partial-{os.getpid()}-a.wav"
    (out / partial).symlink_to(victim)
    (out / (partial + ".json")).symlink_to(victim)
    if writer == "set":
        write_set(out, {"bpm": 120})
    else:
        write_pairs(out, [("a.wav", b"audio", "{}")])
    assert victim.read_text() == "precious"


def test_a_full_disk_while_writing_set_json_is_one_line_and_leaves_no_partial(tmp_path, monkeypatch):
    from generation.errors import OutputWriteError
    from generation.sets import write_set

    _full_disk_at(monkeypatch, "set.json")
    with pytest.raises(OutputWriteError, match="No space left on device"):
        write_set(tmp_path, {"bpm": 120})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["output folder", "seed"])
def test_a_name_too_long_for_the_file_system_is_one_line(capsys, tmp_path, seed_wav, no_model, where):  # noqa: F811
    long = tmp_path / ("a" * 300)
    seed, out = (seed_wav, long) if where == "output folder" else (long / "seed.wav", tmp_path)
    line = refused(capsys, "generate", str(seed), "lofi", "--model", "debug", "-o", str(out))
    assert "internal error" not in line


def test_a_batch_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows' Notepad saves UTF-8 with a BOM: it was "not valid TOML ... line 1, column 1"."""
    from generation.cli.batch_file import load_batch_file

    path = tmp_path / "t.toml"
    path.write_bytes('seed = "s.wav"\n[tracks]\nboss = "épique"\n'.encode("utf-8-sig"))
    assert load_batch_file(path).tracks[0].prompt == "épique"


@pytest.mark.parametrize("index", ["[1, 2]", '"AceStepPipeline"', "null"])
def test_a_model_index_that_is_no_table_is_one_line(capsys, tmp_path, seed_wav, no_model, index):  # noqa: F811
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(index)
    line = refused(capsys, "generate", str(seed_wav), "lofi", "--model", str(folder), "-o", str(tmp_path))
    assert "internal error" not in line


def test_resume_does_not_keep_a_loop_of_a_tempo_or_metre_no_longer_given(capsys, tmp_path, groove):
    """Dropping `beats_per_bar = 3` (now 4, the default) or `bpm` (now detected) kept the loop."""
    tracks = tmp_path / "t.toml"
    tracks.write_text(LOOP + "beats_per_bar = 3\n[tracks]\na = 'x'\n")
    assert main(["batch", str(tracks)]) == 0
    capsys.readouterr()
    tracks.write_text(LOOP + "[tracks]\na = 'x'\n")
    assert "made with another beats_per_bar (3, not 4)" in refused(capsys, "batch", str(tracks))
    tracks.write_text(LOOP.replace("bpm = 120\n", "") + "beats_per_bar = 3\n[tracks]\na = 'x'\n")
    assert "made with another tempo (given, not detected)" in refused(capsys, "batch", str(tracks))
