"""How the bot answers: the clock, who a message may ping, how many bytes a message may carry,
and a refusal in one ephemeral line. Small, with no state: every module that talks to Discord
may import it. The words themselves are in bot.texts."""

from __future__ import annotations

import discord

NO_PINGS = discord.AllowedMentions.none()
# Discord's upload limit covers a whole request: this much of it stays free for the message's
# JSON and the multipart overhead; the files of one message share the rest.
UPLOAD_MARGIN = 64 * 1024


def upload_budget(upload_limit: int) -> int:
    """Bytes of files one message may carry under `upload_limit`."""
    return max(1, upload_limit - UPLOAD_MARGIN)


def now() -> float:
    """Wall-clock seconds, through discord.py's clock (which tests can drive)."""
    return discord.utils.utcnow().timestamp()


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """One ephemeral line, whether or not the interaction was acknowledged yet."""
    if interaction.response.is_done():
        await interaction.edit_original_response(content=message, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)
