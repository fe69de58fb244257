"""The house's shape, read from the imports: top-down, nothing running back up.

cli -> pipeline -> families -> a family -> interface + audio -> errors. The bot is a front over
the interface, the families registry and the shared modules, never a family's internals; the
engine never imports discord, asyncio or the bot. Every import counts, lazy ones inside functions
and those under TYPE_CHECKING included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FAMILIES = ("generation.musicgen", "generation.acestep")
# What sits above the families: a family, or the shared code under them, importing one of these
# would run back up the house.
ABOVE_FAMILIES = (
    "generation.cli",
    "generation.pipeline",
    "generation.render",
    "generation.sidecar",
    "generation.outputs",
    "generation.families",
    "bot",
)
# Shared code every family stands on: it knows no family.
FOUNDATIONS = (
    "generation/audio",
    "generation/interface.py",
    "generation/progress.py",
    "generation/devices.py",
    "generation/results.py",
    "generation/errors.py",
    "generation/hub.py",
    "generation/catalog.py",
    "generation/humanize.py",
)


def imported(path: Path) -> set[str]:
    """Every module `path` imports, absolute names (relative imports are not used here)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(where: str) -> list[Path]:
    target = ROOT / where
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


def offending(paths: list[Path], prefixes: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in sorted(imported(path))
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
    ]


def test_the_reader_sees_what_it_reads():
    """The walker itself: a lazy import inside a function is found."""
    assert "generation.families.load_engine" in imported(ROOT / "bot" / "worker" / "loading.py")
    assert "discord" in imported(ROOT / "bot" / "client.py")


def test_the_bot_reaches_families_only_through_the_interface():
    assert offending(sources("bot"), FAMILIES) == []


def test_the_engine_knows_nothing_of_discord_or_event_loops():
    assert offending(sources("generation"), ("discord", "asyncio", "aiosqlite", "aiofiles", "bot")) == []


@pytest.mark.parametrize("where", FOUNDATIONS)
def test_shared_code_knows_no_family(where):
    assert offending(sources(where), FAMILIES + ABOVE_FAMILIES) == []


@pytest.mark.parametrize("family", ["generation/musicgen", "generation/acestep"])
def test_a_family_never_reaches_up_or_across(family):
    others = tuple(name for name in FAMILIES if name != family.replace("/", "."))
    assert offending(sources(family), ABOVE_FAMILIES + others) == []


FRONT_FACING = ("pipeline", "loops", "render", "sidecar", "outputs")


def test_the_pipeline_and_the_command_line_use_no_family_internals():
    paths = [*sources("generation/cli"), *(ROOT / "generation" / f"{name}.py" for name in FRONT_FACING)]
    assert offending(paths, FAMILIES) == []
