"""The bot's settings: read once from TOML at start-up, typed, checked, then passed in.

Nothing here reads the environment; the token is read in `__main__` and never stored in a config.
Every setting and its default is documented in `config.example.toml`.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_type_hints

from generation.catalog import MAX_LUFS, MAX_PROMPT_CHARS, MIN_LUFS
from generation.tomlfile import read_toml


class ConfigError(Exception):
    """A setting is missing, misspelt or out of range. The message is one line, and never repeats
    the value (a token pasted into the wrong setting must not end up in a log)."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class BotSection:
    data_dir: Path = Path("data")
    sync_guilds: tuple[int, ...] = ()
    log_level: str = "INFO"


@dataclass(frozen=True)
class ModelsSection:
    default: str = "facebook/musicgen-melody"
    available: tuple[str, ...] = ()  # extra choices for /restyle's model option
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    offline: bool = False
    cache_dir: str = ""
    stems: bool = True  # the melody from vocals + other (htdemucs), as MusicGen-melody was trained
    revision: str = ""  # the default model's commit; empty: its pinned one
    threads: int = 0  # CPU threads for the model; 0: the cores less one (finishing runs beside it)

    @property
    def choices(self) -> tuple[str, ...]:
        return (self.default, *(name for name in self.available if name != self.default))


@dataclass(frozen=True)
class LimitsSection:
    max_upload_mb: float = 25.0
    max_seed_seconds: float = 300.0
    max_output_seconds: float = 120.0
    max_prompt_chars: int = 300
    max_candidates: int = 4
    default_candidates: int = 2
    max_jobs_per_user: int = 3
    max_queue: int = 20
    cooldown_seconds: float = 30.0
    batch_rows: int = 8  # candidates generated together across queued jobs (fast backend)


@dataclass(frozen=True)
class AccessSection:
    channels: tuple[int, ...] = ()  # empty: every channel the bot can see
    roles: tuple[int, ...] = ()  # empty: everyone


@dataclass(frozen=True)
class VotingSection:
    window_minutes: float = 0.0  # 0: polls stay open
    catch_up_days: float = 7.0  # after a restart, votes are read back from polls this recent...
    catch_up_polls: int = 50  # ...at most this many, newest first


@dataclass(frozen=True)
class OutputSection:
    format: str = "mp3"
    bitrate_kbps: int = 192
    loudness_lufs: float | None = -14.0
    true_peak_db: float = -1.0
    retention_days: float = 30.0  # 0 keeps files forever


@dataclass(frozen=True)
class ProgressSection:
    edit_interval_seconds: float = 5.0
    # For ETAs until a model's first job has been timed: None (the default) lets each model's family
    # guess for the device and the job's length; a number is used for every model.
    seconds_per_step_guess: float | None = None


@dataclass(frozen=True)
class WorkersSection:
    backend: str = "local"  # local: one worker thread in the bot; ray: workers on a Ray cluster
    address: str = ""  # ray: the cluster ("auto" on a node started with `ray start`); empty: local Ray
    count: int = 0  # ray: workers to run; 0: one per GPU the cluster has, growing as GPUs join
    gpus_per_worker: float = 1.0  # ray: 0 runs workers on CPUs (trials, tests)


@dataclass(frozen=True)
class BotConfig:
    bot: BotSection = field(default_factory=BotSection)
    models: ModelsSection = field(default_factory=ModelsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    access: AccessSection = field(default_factory=AccessSection)
    voting: VotingSection = field(default_factory=VotingSection)
    output: OutputSection = field(default_factory=OutputSection)
    progress: ProgressSection = field(default_factory=ProgressSection)
    workers: WorkersSection = field(default_factory=WorkersSection)


def load_config(path: Path) -> BotConfig:
    """Read and check a TOML config; a relative data_dir is taken from the config file's folder."""
    if not path.exists():
        raise ConfigError(
            f"there is no config at {path}: start from the example (cp config.example.toml {path}), "
            "or name yours with --config"
        )
    try:
        raw = read_toml(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    config = parse_config(raw)
    data_dir = config.bot.data_dir
    if not data_dir.is_absolute():
        config = replace(config, bot=replace(config.bot, data_dir=(path.parent / data_dir).resolve()))
    return config


def parse_config(raw: dict[str, Any]) -> BotConfig:
    sections = {}
    hints = get_type_hints(BotConfig)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; sections are {', '.join(sorted(hints))}")
    for name, kind in hints.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        sections[name] = _section(name, kind, table)
    config = BotConfig(**sections)
    _check(config)
    return config


def _section(name: str, kind: type, table: dict[str, Any]):
    hints = get_type_hints(kind)
    unknown = sorted(set(table) - set(hints))
    if unknown:
        raise ConfigError(f"unknown setting {name}.{unknown[0]}; [{name}] has {', '.join(sorted(hints))}")
    values = {key: _coerce(f"{name}.{key}", hints[key], value) for key, value in table.items()}
    return kind(**values)


def _coerce(where: str, hint: Any, value: Any) -> Any:  # noqa: PLR0911 - a return per kind of setting
    text = str(hint)
    if "None" in text and value in ("off", "none", False):
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is Path:
        return Path(_typed(where, value, str, "a path"))
    if "tuple[int" in text:
        items = _typed(where, value, list, "a list of IDs")
        return tuple(_typed(where, item, int, "a list of whole-number IDs") for item in items)
    if "tuple[str" in text:
        return tuple(
            _typed(where, item, str, "a list of names") for item in _typed(where, value, list, "a list")
        )
    if hint is int:
        return _typed(where, value, int, "a whole number")
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {_kind_of(value)}")
        return float(value)
    return _typed(where, value, str, "text")


def _typed(where: str, value: Any, kind: type, description: str) -> Any:
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ConfigError(f"{where} must be {description}, not {_kind_of(value)}")
    return value


def _kind_of(value: Any) -> str:
    """What a TOML value is, said without the value itself."""
    kinds = (
        (bool, "true/false"),
        (int, "a whole number"),
        (float, "a number"),
        (str, "text"),
        (list, "a list"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), "a table")


def _check(config: BotConfig) -> None:
    limits, output, guess = config.limits, config.output, config.progress.seconds_per_step_guess
    rules = [
        (0 < limits.max_upload_mb <= 500, "limits.max_upload_mb must be between 0 and 500"),
        (limits.max_seed_seconds > 0, "limits.max_seed_seconds must be positive"),
        (1 <= limits.max_output_seconds <= 600, "limits.max_output_seconds must be between 1 and 600"),
        (1 <= limits.max_candidates <= 4, "limits.max_candidates must be between 1 and 4"),
        (1 <= limits.default_candidates <= limits.max_candidates, "limits.default_candidates must be 1..max"),
        (
            1 <= limits.max_prompt_chars <= MAX_PROMPT_CHARS,  # the engine refuses longer ones
            f"limits.max_prompt_chars must be between 1 and {MAX_PROMPT_CHARS}",
        ),
        (limits.max_jobs_per_user >= 1 and limits.max_queue >= 1, "queue limits must be at least 1"),
        (limits.cooldown_seconds >= 0, "limits.cooldown_seconds must not be negative"),
        (limits.batch_rows >= 1, "limits.batch_rows must be at least 1"),
        (output.format in ("mp3", "ogg"), "output.format must be mp3 or ogg (Discord plays both inline)"),
        (32 <= output.bitrate_kbps <= 320, "output.bitrate_kbps must be between 32 and 320"),
        (output.retention_days >= 0, "output.retention_days must not be negative"),
        (config.voting.window_minutes >= 0, "voting.window_minutes must not be negative"),
        (
            config.voting.catch_up_days >= 0 and config.voting.catch_up_polls >= 0,
            "voting.catch_up_days and voting.catch_up_polls must not be negative",
        ),
        (config.progress.edit_interval_seconds > 0, "progress.edit_interval_seconds must be positive"),
        (
            guess is None or (math.isfinite(guess) and guess > 0),
            'progress.seconds_per_step_guess must be positive (or "off": each model\'s own first guess)',
        ),
        (
            config.models.backend in ("auto", "fast", "reference"),
            "models.backend must be auto, fast or reference",
        ),
        (config.bot.log_level.upper() in LOG_LEVELS, f"bot.log_level must be one of {', '.join(LOG_LEVELS)}"),
        (config.models.threads >= 0, "models.threads must be 0 (automatic) or more"),
        (
            output.loudness_lufs is None or MIN_LUFS <= output.loudness_lufs <= MAX_LUFS,
            f'output.loudness_lufs must be between {MIN_LUFS:g} and {MAX_LUFS:g} (or "off")',
        ),
        (-20 <= output.true_peak_db <= 0, "output.true_peak_db must be between -20 and 0"),
    ]
    for ok, message in [*rules, *_worker_rules(config.workers)]:
        if not ok:
            raise ConfigError(message)


def _worker_rules(workers: WorkersSection) -> list[tuple[bool, str]]:
    ray = workers.backend == "ray"
    return [
        (workers.backend in ("local", "ray"), "workers.backend must be local or ray"),
        (workers.count >= 0, "workers.count must not be negative (0: one worker per GPU)"),
        (workers.gpus_per_worker >= 0, "workers.gpus_per_worker must not be negative"),
        (
            not ray or workers.count > 0 or workers.gpus_per_worker > 0,
            "workers.count must be 1 or more when workers.gpus_per_worker is 0 (no GPUs to count)",
        ),
        (
            workers.address in ("", "auto") or _host_and_port(workers.address),
            f"workers.address must be host:port (the head node's), auto or empty, not {workers.address!r}",
        ),
        (
            not ray or importlib.util.find_spec("ray") is not None,
            'workers.backend = "ray" needs Ray: pip install "restyle[ray]"',
        ),
    ]


def _host_and_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and 0 < int(port) < 65536
