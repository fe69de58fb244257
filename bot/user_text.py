"""User text (prompts, filenames, display names) made safe to show inside the bot's messages: one
line, without control characters or bidi overrides, without markdown or pings, with links that do
not unfurl; and listings trimmed to one Discord message. The wording itself is bot.texts'."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import discord

MESSAGE_LIMIT = 2000  # characters in one Discord message
NAME_SHOWN = 80  # characters of a filename shown

# Bidi embeddings, overrides, isolates and marks: they turn the rest of the bot's line around.
BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
# A web address, or a Discord invite typed without one (Discord unfurls both), in optional <>.
LINK = re.compile(
    r"<?((?:https?://|(?:www\.)?(?:discord\.gg/|discord(?:app)?\.com/invite/))[^\s<>]+)>?", re.IGNORECASE
)


def clean(text: str) -> str:
    """User text as one line of visible characters: line breaks and tabs become spaces; NUL and
    other control characters and bidi overrides go."""
    kept = (
        " " if char.isspace() else char
        for char in text.translate(BIDI_CONTROLS)
        if char.isspace() or unicodedata.category(char) != "Cc"
    )
    return " ".join("".join(kept).split())


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quiet_link(match: re.Match[str]) -> str:
    link = match[1] if match[1].lower().startswith(("http://", "https://")) else f"https://{match[1]}"
    return f"<{link}>"  # Discord shows no preview of a link in angle brackets


def safe(text: str, limit: int | None = None) -> str:
    """User text shown inside our messages: one line, no markdown tricks, no pings, no unfurls;
    cut to `limit` characters (before escaping, which only adds backslashes) if given."""
    text = clean(text)
    text = LINK.sub(_quiet_link, shorten(text, limit) if limit else text)
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def code(text: str, limit: int = NAME_SHOWN) -> str:
    """User text (a filename) as an inline code span, shown exactly: markdown, mentions and links
    are inert inside one, so nothing is escaped; only a backtick, which would end it, is swapped
    for a look-alike."""
    return f"`{shorten(clean(text), limit).replace('`', 'ˋ') or '?'}`"


def fit(lines: list[str], more: Callable[[int], str], limit: int = MESSAGE_LIMIT) -> str:
    """As many of `lines` as fit in one message, then `more(how many were left out)` if any were."""
    whole = "\n".join(lines)
    if len(whole) <= limit:
        return whole
    kept: list[str] = []
    size = 0  # of the kept lines, each with its line break
    for line in lines:
        if size + len(line) + 1 + len(more(len(lines) - len(kept) - 1)) > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, more(len(lines) - len(kept))])
