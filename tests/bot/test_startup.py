"""Start-up: everything that can be checked without Discord is checked before connecting, and a
problem stops the bot at once with one line and a non-zero code (so Docker or systemd restart it).
The token never appears: not in errors, not in tracebacks, not in warnings."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from bot.__main__ import _configure_logging, main
from tests.fake_hub import dropping_server

TOKEN = "MTIzNDU2Nzg5.invalid.token-that-must-not-leak"
REPO = Path(__file__).parents[2]


def _config(folder: Path, text: str) -> Path:
    path = folder / "config.toml"
    path.write_text(text)
    return path


def _one_line(code: int, err: str, expected_code: int = 2) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected_code, err
    assert lines and "Traceback" not in err, err
    assert TOKEN not in err
    return lines[-1]


@pytest.fixture
def unreachable_discord(monkeypatch):
    """Discord at a port that counts connections: a check that fails must never get this far."""
    import discord

    with dropping_server() as (accepted, port):
        monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
        yield accepted


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)


@pytest.fixture(autouse=True)
def logging_as_it_was():
    """main() configures the process's logging, as it should once per process: undo it per test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.captureWarnings(False)
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('[bot]\nlog_level = "LOUD"\n', "bot.log_level must be one of DEBUG, INFO"),
        ('[models]\ndefault = "debug"\ndevice = "gpu"\n', "Unknown device 'gpu'"),
        ('[models]\ndefault = "melodyy"\n', "Did you mean melody?"),
        (
            '[models]\ndefault = "melody"\noffline = true\ncache_dir = "empty-cache"\n',
            "this machine is offline",
        ),
        ('[models]\ndefault = "debug"\nthreads = -1\n', "models.threads"),
        ("[output]\nloudness_lufs = -100\n", "output.loudness_lufs"),
    ],
)
def test_a_bad_setting_stops_start_up_before_discord(
    tmp_path, capsys, unreachable_discord, settings, expected
):
    code = main(["--config", str(_config(tmp_path, settings))])
    assert expected in _one_line(code, capsys.readouterr().err)
    assert unreachable_discord == []


def test_cuda_on_a_cpu_build_stops_start_up_before_discord(tmp_path, capsys, unreachable_discord):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["--config", str(_config(tmp_path, '[models]\ndefault = "debug"\ndevice = "cuda"\n'))])
    assert "CUDA is not available" in _one_line(code, capsys.readouterr().err)
    assert unreachable_discord == []


def test_a_data_dir_that_cannot_be_created_is_named(tmp_path, capsys, unreachable_discord):
    (tmp_path / "a-file").write_text("")
    config = _config(tmp_path, '[bot]\ndata_dir = "a-file/data"\n[models]\ndefault = "debug"\n')
    line = _one_line(main(["--config", str(config)]), capsys.readouterr().err)
    assert "bot.data_dir" in line and "cannot reach Discord" not in line
    assert unreachable_discord == []


def test_stems_weights_missing_offline_name_the_way_out(tmp_path, capsys, debug_lm, unreachable_discord):
    model = tmp_path / "my-model"
    debug_lm.model.save_pretrained(model)
    debug_lm.tokenizer.save_pretrained(model)
    settings = f'[models]\ndefault = "{model}"\noffline = true\ncache_dir = "{tmp_path / "cache"}"\n'
    line = _one_line(main(["--config", str(_config(tmp_path, settings))]), capsys.readouterr().err)
    assert "htdemucs" in line and "restyle download" in line and "models.stems = false" in line


def _run_bot(config: Path, *, timeout: float = 10) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=str(REPO),
    )  # fmt: skip


def test_a_corrupt_database_exits_at_once_with_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "restyle.sqlite3").write_bytes(b"this is not a database, it only pretends" * 100)
    config = _config(tmp_path, '[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    done = _run_bot(config, timeout=30)  # a leftover aiosqlite thread used to keep it alive for ever
    line = _one_line(done.returncode, done.stderr)
    assert "database" in line and "restore a backup" in line


@contextlib.contextmanager
def _read_only(folder: Path):
    """A folder nobody may write to. Root ignores permissions, so for root it is made immutable."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        folder.chmod(0o755)
        return
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(folder)], check=False).returncode
    ):
        pytest.skip("running as root, and this file system cannot make a folder immutable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_data_dir_exits_at_once_with_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config = _config(tmp_path, '[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    with _read_only(data):
        done = _run_bot(config, timeout=30)
    line = _one_line(done.returncode, done.stderr)
    assert "bot.data_dir" in line and "cannot be used" in line


def test_without_a_config_the_example_is_suggested(tmp_path, capsys):
    code = main(["--config", str(tmp_path / "config.toml")])
    assert "cp config.example.toml" in _one_line(code, capsys.readouterr().err)


def test_check_says_what_it_checked_and_loads_the_model(tmp_path, capsys, unreachable_discord):
    config = _config(tmp_path, '[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    assert main(["--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    for checked in (
        "log level: INFO",
        "data dir:",
        "database:",
        "device: cpu",
        "dtype: float32",
        "threads:",
        "model debug:",
        "stems: the tiny",
        "loading: debug loaded",
    ):
        assert checked in out, checked
    assert TOKEN not in out and unreachable_discord == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            f'[access]\nchannels = ["{TOKEN}"]\n',
            "access.channels must be a list of whole-number IDs, not text",
        ),
        (f'[bot]\nsync_guilds = "{TOKEN}"\n', "bot.sync_guilds must be a list of IDs, not text"),
        (f'[limits]\nmax_queue = "{TOKEN}"\n', "limits.max_queue must be a whole number, not text"),
        (f'[bot]\nlog_level = "{TOKEN}"\n', "bot.log_level must be one of"),
    ],
)
def test_a_token_pasted_into_a_setting_of_the_wrong_type_is_not_echoed(tmp_path, capsys, settings, expected):
    line = _one_line(main(["--config", str(_config(tmp_path, settings))]), capsys.readouterr().err)
    assert expected in line


def test_the_token_is_redacted_from_tracebacks_and_warnings(capsys):
    _configure_logging("INFO", TOKEN)
    try:
        raise RuntimeError(f"the gateway said no to {TOKEN}")
    except RuntimeError:
        logging.getLogger("discord.gateway").exception("connection failed")
    warnings.warn(f"a library warns about {TOKEN}", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "connection failed" in err and "RuntimeError: the gateway said no to [token]" in err
    assert "a library warns about [token]" in err
    assert TOKEN not in err


def test_no_voice_warnings_at_start_up(tmp_path, capsys, unreachable_discord):
    import discord

    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = True  # as a fresh process has them
    config = _config(tmp_path, '[bot]\ndata_dir = "data"\n[models]\ndefault = "debug"\n')
    assert main(["--config", str(config)]) == 1  # Discord cannot be reached
    err = capsys.readouterr().err
    assert "PyNaCl" not in err and "davey" not in err


def test_stem_separation_runs_on_the_models_device(tmp_path, monkeypatch):
    from bot.client import RestyleBot
    from tests.bot.conftest import make_config

    device = torch.device("cpu", 0)  # stands for the model's cuda:1: not the separator's default
    monkeypatch.setattr("generation.devices.pick_device", lambda name: device)
    bot = RestyleBot(make_config(tmp_path, models={"stems": True}), start_worker=False)
    assert bot._separator.load().device == device


def test_check_covers_both_families(tmp_path, capsys, unreachable_discord):
    settings = '[bot]\ndata_dir = "data"\n[models]\ndefault = "debug-ace"\navailable = ["debug"]\n'
    assert main(["--config", str(_config(tmp_path, settings)), "--check"]) == 0
    out = capsys.readouterr().out
    for checked in ("model debug-ace: built in-process", "model debug:", "loading: debug-ace loaded"):
        assert checked in out, checked
    assert "stems: the tiny" in out  # debug reads a melody: its separator is checked


def test_an_ace_step_bot_needs_no_stem_separator(tmp_path, capsys, debug_ace, unreachable_discord):
    """Only ACE-Step configured, offline, an empty cache: htdemucs is neither demanded nor loaded."""
    model = tmp_path / "my-cover-model"
    debug_ace.pipe.save_pretrained(model)
    settings = f'[models]\ndefault = "{model}"\noffline = true\ncache_dir = "{tmp_path / "cache"}"\n'
    assert main(["--config", str(_config(tmp_path, settings)), "--check"]) == 0
    out = capsys.readouterr().out
    assert "stems: not needed" in out and "loaded in" in out
