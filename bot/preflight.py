"""Everything the bot can check before it connects to Discord, so a bad setting stops start-up at once
with one line (and Docker or systemd restart it) instead of failing after the login, or never.

`restyle-bot --check` runs the same checks, loads the default model too, and lists what it checked.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import BotConfig
from bot.worker.loading import EngineLoader, Separator
from generation.errors import RestyleError
from generation.interface import LoadOptions

DATABASE_NAME = "restyle.sqlite3"  # as bot.files.DataDir names it
ON_WORKERS = "loaded and checked by each Ray worker"


class PreflightError(Exception):
    """A start-up check failed; the message is one line, for the person running the bot."""


def preflight(config: BotConfig) -> list[str]:
    """Run every check in order (none loads a model); one line per check passed, or the first failure."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("log level", config.bot.log_level.upper),
        ("data dir", lambda: check_data_dir(config.bot.data_dir)),
        ("database", lambda: check_database(config.bot.data_dir / DATABASE_NAME)),
        *_engine_checks(config),
    ]
    return [_run_check(what, check) for what, check in checks]


def _engine_checks(config: BotConfig) -> list[tuple[str, Callable[[], str]]]:
    """The device, models and separator: here for the local worker; on Ray, the GPU nodes load
    (and check) them, so this machine needs neither their GPU nor their weights."""
    from generation.devices import pick_device

    models = config.models
    threads = ("threads", lambda: _threads(config))
    if config.workers.backend == "ray":
        on_workers = [(f"model {name}", lambda: ON_WORKERS) for name in models.choices]
        return [("device", lambda: f"{models.device}, on each Ray worker"), threads, *on_workers]
    return [
        ("device", lambda: str(pick_device(models.device))),
        ("dtype", lambda: _dtype(config)),
        threads,
        *((f"model {name}", _model_check(config, name)) for name in models.choices),
        ("stems", lambda: _stems(config)),
    ]


def load_check(config: BotConfig) -> str:
    """What `--check` adds: the default model (and its separator) really loaded, once."""
    if config.workers.backend == "ray":
        return f"loading: {ON_WORKERS}, at start-up"
    return _run_check("loading", lambda: _load(config))


def _run_check(what: str, check: Callable[[], str]) -> str:
    try:
        return f"{what}: {check()}"
    except RestyleError as exc:
        raise PreflightError(str(exc)) from None


def check_data_dir(root: Path) -> str:
    """Created if missing, and written to once: a read-only or impossible folder is found now."""
    from generation.outputs import write_probe

    try:
        write_probe(root)
    except OSError as exc:
        raise PreflightError(
            f"bot.data_dir {root} cannot be used ({exc.strerror or type(exc).__name__}): "
            "point it at a folder the bot may create and write."
        ) from None
    return f"{root} (writable)"


def check_database(path: Path) -> str:
    """Opens, is SQLite, passes `PRAGMA quick_check`, and is not from a newer Restyle."""
    from bot.schema import MIGRATIONS

    if not path.exists():
        return f"{path} (new)"
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            (version,) = db.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise PreflightError(
            f"the database {path} cannot be read ({exc}): restore a backup, or move it aside to start afresh."
        ) from None
    if verdict != "ok":
        raise PreflightError(
            f"the database {path} is damaged (quick_check: {verdict.splitlines()[0]}): restore a backup, "
            "or move it aside to start afresh."
        )
    if version > len(MIGRATIONS):
        raise PreflightError(
            f"the database {path} was written by a newer Restyle (version {version}): upgrade the bot."
        )
    return f"{path} (quick_check ok, version {version})"


def _dtype(config: BotConfig) -> str:
    from generation.devices import pick_device
    from generation.families import offered_family

    models = config.models
    family = offered_family(models.default)
    return family.dtype_name(models.default, models.dtype, pick_device(models.device))


def _threads(config: BotConfig) -> str:
    from generation.threads import plan_threads

    plan = plan_threads(config.models.threads or None, finishing=True)
    return f"{plan.torch_threads} for the model, 1 finishing, {plan.decode_workers} decoding uploads"


def _load_options(config: BotConfig, name: str) -> LoadOptions:
    """How the bot loads `name`: the configured revision applies to the default model only."""
    return EngineLoader(config.models).options(name)


def _model_check(config: BotConfig, name: str) -> Callable[[], str]:
    def check() -> str:
        from generation.families import offered_family

        found = offered_family(name).locate(name, _load_options(config, name))
        if found.kind == "random":
            return "built in-process (random weights)"
        if found.folder is None:
            return f"not cached; fetched at {found.revision} on first load"
        return f"{found.folder}"

    return check


def _stems(config: BotConfig) -> str:
    from generation.audio.stems import check_stems
    from generation.families import family_for

    models = config.models
    if not models.stems:
        return "off (the melody is read from the whole mix)"
    if not any(family_for(name).reads_melody for name in models.choices):
        return "not needed (no configured model reads a melody from stems)"
    random = family_for(models.default).is_random(models.default)
    check_stems(random=random, offline=models.offline, cache_dir=models.cache_dir or None)
    return "the tiny in-process separator (debug model)" if random else "htdemucs"


def _load(config: BotConfig) -> str:
    from generation.families import offered_family

    models = config.models
    family = offered_family(models.default)
    started = time.perf_counter()
    described = family.load(models.default, _load_options(config, models.default)).describe()
    if models.stems and family.reads_melody:
        Separator(models).load()
    seconds = time.perf_counter() - started
    return f"{models.default} loaded in {seconds:.1f} s ({described['revision']}, {described['device']})"
