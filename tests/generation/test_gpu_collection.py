"""The GPU check lands first time: its pytest run collects every GPU test on the device image.

The lent GPU machines' image (the device tool's package list, read 2026-11-17) has torch, numpy,
scipy, transformers (5.17: gpu_check.sh carries a newer wheel), pytest and more, but none of the
packages below. A test module that imports one at collection (`tests/audio_factory.py` imported
PyAV at the top) made the first GPU run collect zero tests. Here an import hook blocks them in a
fresh interpreter, as on the device, and pytest collects what benchmarks/gpu_check.sh asks for.
"""

from __future__ import annotations

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
