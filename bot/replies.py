"""How the bot answers: the clock, who a message may ping, how many bytes a message may carry,
and a refusal in one ephemeral line. Small, with no state: every module that talks to Discord
may import it. The words themselves are in bot.texts."""

from __future__ import annotations

import re

import discord

NO_PINGS = discord.AllowedMentions.none()
# An absolute path on a server (POSIX, home-relative or a Windows drive's) of two parts or more, not
# inside a web address or a fraction ("https://a/b", "24/7", "AC/DC" and "/restyle" do not match).
SERVER_PATH = re.compile(r"(?<![\w.:/~\\-])(?:~?/|[A-Za-z]:\\)(?:[^\s/\\`'\"<>|]+[/\\])+[^\s/\\`'\"<>|]*")
# Discord's upload limit covers a whole request: this much of it stays free for the message's
# JSON and the multipart overhead; the files of one message share the rest.
UPLOAD_MARGIN = 64 * 1024


def upload_budget(upload_limit: int) -> int:
    """Bytes of files one message may carry under `upload_limit`."""
    return max(1, upload_limit - UPLOAD_MARGIN)


def now() -> float:
    """Wall-clock seconds, through discord.py's clock (which tests can drive)."""
    return discord.utils.utcnow().timestamp()


def without_paths(text: str) -> str:
    """`text` with every server path cut out: an error's words may carry one (a file that is gone,
    a model's folder), and no member ever sees where the bot keeps its files."""
    return SERVER_PATH.sub(_cut, text)


def _cut(path: re.Match[str]) -> str:
    """A path as "…", the sentence's punctuation after it kept."""
    return "…" + path[0][len(path[0].rstrip(".,:;!?)")) :]


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """One ephemeral line, whether or not the interaction was acknowledged yet (and never a path)."""
    message = without_paths(message)
    if interaction.response.is_done():
        await interaction.edit_original_response(content=message, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)
