"""A newcomer's first commands, run as the installed `restyle` with a real environment: no weights,
no network (or HF_HUB_OFFLINE), typos. Each answer is one line with exit code 2, and quick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio_factory import encode_format, melody
from tests.fake_hub import closed_port, dropping_server


@pytest.fixture(scope="module")
def seed_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "theme.wav"
    path.write_bytes(encode_format("wav16", melody([392.0, 440.0], 0.5, 44_100)))
    return path


def restyle(*argv: str, home: Path, endpoint: str | None = None, offline: bool = False):
    """Run the console script with an empty Hugging Face cache; HF_HUB_OFFLINE only if asked."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HOME"] = str(home)
    env["HF_ENDPOINT"] = endpoint or f"http://127.0.0.1:{closed_port()}"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    script = str(Path(sys.executable).with_name("restyle"))
    return subprocess.run([script, *argv], capture_output=True, text=True, env=env, timeout=120, check=False)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_download_without_network_is_one_line(tmp_path):
    line = one_line(restyle("download", "melody", home=tmp_path))
    assert "cannot reach the Hugging Face hub" in line


def test_download_tries_the_hub_once(tmp_path):
    with dropping_server() as (accepted, port):
        one_line(restyle("download", "melody", home=tmp_path, endpoint=f"http://127.0.0.1:{port}"))
    assert len(accepted) == 1


def test_download_offline_says_offline(tmp_path):
    assert "offline" in one_line(restyle("download", "melody", home=tmp_path, offline=True))


def test_generate_without_weights_names_the_fetch_command_and_the_debug_model(tmp_path, seed_wav):
    line = one_line(restyle("generate", str(seed_wav), "lofi", "-o", str(tmp_path / "out"), home=tmp_path))
    assert "restyle download facebook/musicgen-melody" in line and "--model debug" in line
    offline = one_line(
        restyle("generate", str(seed_wav), "lofi", "-o", str(tmp_path / "out"), home=tmp_path, offline=True)
    )
    assert "offline" in offline and "could not be downloaded" not in offline
    assert "restyle download facebook/musicgen-melody. To try" in offline  # two sentences, not one
    assert not (tmp_path / "out").exists()


def test_a_typo_lists_the_aliases_without_the_hub(tmp_path, seed_wav):
    with dropping_server() as (accepted, port):
        line = one_line(
            restyle(
                "generate",
                str(seed_wav),
                "lofi",
                "--model",
                "melodyy",
                home=tmp_path,
                endpoint=f"http://127.0.0.1:{port}",
            )
        )
    assert accepted == []
    assert "Did you mean melody?" in line and "stereo-melody-large" in line and "debug" in line


def test_help_names_the_models():
    done = subprocess.run(
        [str(Path(sys.executable).with_name("restyle")), "generate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for name in ("debug", "melody-large", "stereo-melody", "--revision", "--threads", "--no-stems"):
        assert name in text, name


PROBE = """
import sys
from generation.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["generate", "--help"],
        ["batch", "--help"],
        ["generate", "seed.wav"],  # the prompt is missing
        ["generate", "seed.wav", "lofi", "--lufs", "-100"],
        ["generate", "seed.wav", "lofi", "--name", "a/b"],
        ["generate", "seed.wav", "lofi", "--device", "gpu"],
        ["generate", "seed.wav", "lofi", "--threads", "0"],
        # refused once parsed, before the seed is read: still no torch (a refusal answers at once)
        ["generate", "seed.wav", "lofi", "--model", "debug", "--strength", "0.5"],
        ["generate", "seed.wav", "lofi", "--model", "debug-ace", "--loop"],
        ["generate", "seed.wav", "lofi", "--model", "debug", "--loop", "--format", "mp3"],
    ],
)
def test_help_and_argument_errors_do_not_import_torch(argv):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode in (0, 2), done.stderr
    assert "torch imported: False" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "argv", [["-v", "generate", "s.wav", "lofi"], ["generate", "s.wav", "lofi", "-v"], ["download", "-v"]]
)
def test_verbose_goes_before_or_after_the_command(argv):
    from generation.cli import build_parser

    assert build_parser().parse_args(argv).verbose is True
