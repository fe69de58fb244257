"""`python -m bot --config config.toml` (or `restyle-bot`): run the Discord bot.

The token is read from DISCORD_TOKEN and from nowhere else; it never reaches a log line.
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


class RedactToken(logging.Filter):
    """Defence in depth: whatever a library logs, the token is replaced before it is written."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "[token]"), None
        return True


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="restyle-bot", description="Run Restyle's Discord bot.")
    parser.add_argument(
        "--config", type=Path, default=Path("config.toml"), help="TOML settings (see config.example.toml)"
    )
    parser.add_argument(
        "--check", action="store_true", help="check the config and the token's presence, then exit"
    )
    return parser.parse_args(argv)


def _configure_logging(level: str, token: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactToken(token))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    from bot.config import ConfigError, load_config

    args = _arguments(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"restyle-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        print(
            "restyle-bot: set DISCORD_TOKEN to the bot's token (Discord developer portal > Bot).",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.check:
        print(f"restyle-bot: {args.config} is valid; data in {config.bot.data_dir}")
        return 0
    _configure_logging(config.bot.log_level, token)
    return _run(config, token)


def _run(config, token: str) -> int:
    import aiohttp
    import discord

    from bot.client import RestyleBot
    from generation.errors import RestyleError

    try:
        RestyleBot(config).run(token, log_handler=None)
    except discord.LoginFailure:
        print("restyle-bot: Discord refused the token in DISCORD_TOKEN.", file=sys.stderr)
        return EXIT_CONFIG
    except RestyleError as exc:  # e.g. the model is not in the cache and the host is offline
        print(f"restyle-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (aiohttp.ClientConnectionError, OSError) as exc:
        print(
            f"restyle-bot: cannot reach Discord ({type(exc).__name__}); check the network.", file=sys.stderr
        )
        return EXIT_RUNTIME
    return 0


if __name__ == "__main__":
    sys.exit(main())
