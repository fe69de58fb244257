"""`python -m bot --config config.toml` (or `restyle-bot`): run the Discord bot.

Start-up checks everything it can before connecting (see `bot.preflight`) and stops with one line
and a non-zero code on the first problem. The token is read from DISCORD_TOKEN and from nowhere
else; it never reaches a log line, an error message or a warning.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def redact(text: str, token: str) -> str:
    return text.replace(token, "[token]") if token else text


class RedactingFormatter(logging.Formatter):
    """Defence in depth: whatever a library logs (message, arguments, traceback, a warning caught
    by logging), the token is replaced in the finished line before it is written."""

    def __init__(self, fmt: str, token: str) -> None:
        super().__init__(fmt)
        self.token = token

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.token)


class RedactToken(logging.Filter):
    """For handlers Restyle does not format itself: the message and its arguments, redacted."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = redact(message, self.token), None
        return True


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="restyle-bot", description="Run Restyle's Discord bot.")
    parser.add_argument(
        "--config", type=Path, default=Path("config.toml"), help="TOML settings (see config.example.toml)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config, the token's presence, the data dir, the database, the device and the "
        "model (loading it) without connecting to Discord; list what was checked, then exit",
    )
    return parser.parse_args(argv)


def _configure_logging(level: str, token: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", token))
    handler.addFilter(RedactToken(token))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)  # warnings go through the handler, so through the redaction
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from generation.hub import prepare_environment

    prepare_environment()
    for library in ("transformers", "huggingface_hub"):
        logging.getLogger(library).setLevel(max(logging.WARNING, logging.getLogger().level))


def _fail(message: str, token: str, code: int) -> int:
    print(f"restyle-bot: {redact(message, token)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    from bot.config import ConfigError, load_config
    from bot.preflight import PreflightError, load_check, preflight

    args = _arguments(argv)
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc), token, EXIT_CONFIG)
    if not token:
        return _fail(
            "set DISCORD_TOKEN to the bot's token (Discord developer portal > Bot).", token, EXIT_CONFIG
        )
    _configure_logging(config.bot.log_level, token)
    from generation.threads import apply_threads, plan_threads

    try:
        checked = preflight(config)
        apply_threads(plan_threads(config.models.threads or None, finishing=True))  # before the model loads
        if args.check:
            checked.append(load_check(config))
    except PreflightError as exc:
        return _fail(str(exc), token, EXIT_CONFIG)
    if args.check:
        print(
            f"restyle-bot: {args.config} is ready (DISCORD_TOKEN is set; Discord itself was not contacted):"
        )
        for line in checked:
            print(f"  ok  {redact(line, token)}")
        return 0
    return _run(config, token)


def _run(config, token: str) -> int:
    import socket
    import sqlite3

    import aiohttp
    import discord

    from bot.client import RestyleBot
    from generation.errors import RestyleError

    try:
        RestyleBot(config).run(token, log_handler=None)
    except discord.LoginFailure:
        return _fail("Discord refused the token in DISCORD_TOKEN.", token, EXIT_CONFIG)
    except RestyleError as exc:  # e.g. the model could not be loaded on the GPU thread
        return _fail(str(exc), token, EXIT_CONFIG)
    except (aiohttp.ClientConnectionError, ConnectionError, socket.gaierror, TimeoutError) as exc:
        return _fail(f"cannot reach Discord ({type(exc).__name__}); check the network.", token, EXIT_RUNTIME)
    except (OSError, sqlite3.Error) as exc:  # the data dir or the database, after the checks passed
        return _fail(f"start-up failed: {exc}", token, EXIT_RUNTIME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
