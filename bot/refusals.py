"""Discord's refusals, sorted: those that may pass if tried again later, and those that never will."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

# No answer at all (a dropped connection, a timeout): worth another try, like a 5xx.
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def is_permanent(error: discord.HTTPException) -> bool:
    """A 4xx other than 429 (too large, invalid form body, missing permissions, unknown channel)
    comes back the same way every time; 429 and 5xx may pass later."""
    return 400 <= error.status < 500 and error.status != 429


def describe(error: discord.HTTPException) -> str:
    """Discord's own words, on one short line."""
    text = " ".join((error.text or "").split()) or f"HTTP {error.status}"
    return text if len(text) <= 120 else text[:119] + "…"
