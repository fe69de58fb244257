"""`python -m bot`, unchanged, against the Discord that `tests/bot/offline_discord.py` serves.

Run as `python tests/bot/offline_bot.py --config config.toml` with RESTYLE_TEST_DISCORD set to that
Discord's `http://127.0.0.1:PORT`: discord.py's REST base and gateway point there, and everything
else is the bot's own entry point, in a process of its own.
"""

from __future__ import annotations

import os
import sys

import discord.gateway
import discord.http
import yarl

from bot.__main__ import main

if __name__ == "__main__":
    base = os.environ["RESTYLE_TEST_DISCORD"]
    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http", "ws", 1) + "/gateway")
    sys.exit(main())
