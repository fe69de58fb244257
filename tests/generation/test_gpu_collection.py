"""The GPU check lands first time: its pytest run collects every GPU test on the device image.

The lent GPU machines' image (the device tool's package list, read 2026-11-17) has torch, numpy,
scipy, transformers (5.17: gpu_check.sh carries a newer wheel), pytest and more, but none of the
packages below. A test module that imports one at collection (`tests/audio_factory.py` imported
PyAV at the top) made the first GPU run collect zero tests. Here an import hook blocks them in a
fresh interpreter, as on the device, and pytest collects what benchmarks/gpu_check.sh asks for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
# Top-level import names of the project's dependencies that the device image lacks.
MISSING_ON_DEVICE = (
    "av",
    "demucs",
    "discord",
    "aiosqlite",
    "simcord",
    "ray",
    "pyloudnorm",
    "diffusers",
    "pytest_asyncio",
)
COLLECT = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the device image)", name=name)
        return None

sys.meta_path.insert(0, Missing())
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


def _gpu_test_paths() -> list[str]:
    """The paths gpu_check.sh hands pytest (its GPU_TESTS line)."""
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    return re.search(r'^GPU_TESTS="([^"]+)"', script, re.MULTILINE).group(1).split()


def _collect(paths: list[str], blocked: tuple[str, ...]) -> tuple[int, list[str], str]:
    """pytest's `-m gpu --collect-only` in a fresh interpreter: exit code, test ids, output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    args = ["-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *paths]
    done = subprocess.run(
        [sys.executable, "-c", COLLECT, ",".join(blocked) or "-", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    return done.returncode, ids, done.stdout + done.stderr


def test_the_gpu_check_collects_every_gpu_test_without_the_packages_the_device_lacks():
    # GPU tests live under tests/generation (the bot never touches a device itself): a cheap check
    # that none went elsewhere, then everything collected here, where every package is installed.
    elsewhere = [p for p in (ROOT / "tests").rglob("test_*.py") if "mark.gpu" in p.read_text()]
    assert all("generation" in p.parts for p in elsewhere), elsewhere
    code, everywhere, output = _collect(["tests/generation"], ())
    assert code == 0, output
    assert len(everywhere) >= 4, output  # the GPU tests exist (a wrong marker would collect none)
    code, on_device, output = _collect(_gpu_test_paths(), MISSING_ON_DEVICE)
    assert code == 0, output
    assert "error" not in output.lower(), output
    assert sorted(on_device) == sorted(everywhere)


def test_the_hook_does_block_what_the_device_lacks():
    # Without this, a hook that blocked nothing would pass the test above for the wrong reason.
    code, _, output = _collect(["tests/bot/test_store.py"], MISSING_ON_DEVICE)  # the bot needs discord
    assert code != 0 and "not on the device image" in output, output


SETUP_S = 30  # installing the carried wheels and the version check, before the first timeout
BUDGET_S = 7 * 60  # what a lent GPU call can give the whole script


def test_the_gpu_check_fits_its_budget_and_runs_the_planned_rows():
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    timeouts = [int(t) for t in re.findall(r"^timeout (\d+) ", script, re.MULTILINE)]
    assert len(timeouts) == 2 and SETUP_S + sum(timeouts) <= BUDGET_S, timeouts
    arguments = re.search(r'^BENCHMARK="([^"]+)"', script, re.MULTILINE).group(1).split()
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    # melody fast at batches 1 and 8, reference at batch 1 only, and a deadline that leaves the
    # benchmark's own timeout time to print and write what it has.
    assert options["--configs"] == "melody" and options["--batches"] == "1,8"
    assert options["--reference-batches"] == "1"
    assert float(options["--deadline-s"]) <= timeouts[1] - 20


def test_the_benchmark_takes_the_scripts_arguments(tmp_path):
    # Here (no GPU) the melody config does not run: this checks the script's arguments parse and
    # the JSON is written, not the figures.
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    arguments = re.search(r'^BENCHMARK="([^"]+)"', script, re.MULTILINE).group(1).split()
    out = tmp_path / "gpu-benchmark.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments, "--json", str(out)],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "machine" in json.loads(out.read_text())


def test_a_benchmark_cut_short_keeps_the_rows_it_finished(tmp_path):
    # The JSON was written once at the very end: a run stopped by its time limit brought back
    # nothing. Here the run is killed as soon as its first row is printed.
    out = tmp_path / "figures.json"
    arguments = ["--only", "decode", "--configs", "debug", "--window-s", "0.5", "--batches", "1,2"]
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks", *arguments, "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as run:
        for line in run.stdout:
            if line.startswith("| debug | fast | 1 |"):
                run.kill()
                break
        else:
            raise AssertionError("no row was printed")
    rows = json.loads(out.read_text())["decode"]
    assert [(row["backend"], row["batch"]) for row in rows] == [("fast", 1)]
