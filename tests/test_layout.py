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


# -- the bot: one way round -----------------------------------------------------------------------

BOT = ROOT / "bot"
# Only these may name the bot itself: the client is the wiring, __main__ starts it, and a cog is
# handed it by discord.py's `setup(bot)`. Everything else is passed its collaborators.
MAY_NAME_THE_BOT = ("bot/client.py", "bot/__main__.py", "bot/cogs/")
# The bottom of the bot's house: records and replies know no other bot module.
BOTTOM = ("bot/models.py", "bot/replies.py", "bot/schema.py", "bot/refusals.py")
# The worker pool never talks to Discord or the database: orders in, events out.
WORKER_MAY_IMPORT = ("bot.worker", "bot.fair_queue", "bot.config")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bot_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sources("bot")}


def bot_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The bot modules `path` imports (`from bot.x import Y` counts as bot.x, or bot.x.Y if that is
    a module), every import counted, under TYPE_CHECKING and inside functions too."""
    found = set()
    for name in imported(path):
        module = name
        while module and module not in modules:
            module = module.rpartition(".")[0]
        if module and module not in {"bot", module_name(path)}:
            found.add(module)
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle in `graph`, as the modules along it (the first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_cycles():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_only_the_client_main_and_the_cogs_name_the_bot():
    """Everything else is handed what it works with, so it can be read (and tested) on its own."""
    names = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("bot")
        if not path.relative_to(ROOT).as_posix().startswith(MAY_NAME_THE_BOT)
        for name in sorted(imported(path))
        if name == "bot.client" or name.startswith("bot.client.")
    ]
    assert names == []


def test_the_bot_has_no_import_cycle():
    """Dependencies run one way (client -> cogs -> admission, lifecycle -> jobs, posting -> store,
    files, texts, views -> models, replies), even for imports only a type checker reads."""
    modules = bot_modules()
    graph = {name: bot_imports(path, modules) for name, path in modules.items()}
    assert import_cycle(graph) == []


@pytest.mark.parametrize("where", BOTTOM)
def test_records_and_replies_know_no_other_bot_module(where):
    assert offending(sources(where), ("bot",)) == []


def test_the_worker_knows_neither_discord_nor_the_database():
    outside = [
        line
        for line in offending(sources("bot/worker"), ("bot", "discord", "aiosqlite"))
        if not any(line.endswith(f" {allowed}") or f" {allowed}." in line for allowed in WORKER_MAY_IMPORT)
    ]
    assert outside == []
