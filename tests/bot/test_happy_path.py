"""The whole flow a game team sees: command, acknowledgement, progress, results, votes, /results."""

from __future__ import annotations

import time

import discord
import pytest

from bot.texts import NUMBERS
from generation.audio.decode import decode_audio
from tests.bot.conftest import seed_mp3, until


async def test_restyle_from_command_to_votes(running, monkeypatch):
    acknowledged: list[float] = []
    defer = discord.InteractionResponse.defer

    async def timed_defer(self, *args, **kwargs):
        await defer(self, *args, **kwargs)
        acknowledged.append(time.perf_counter())

    monkeypatch.setattr(discord.InteractionResponse, "defer", timed_defer)
    world = await running()
    started = time.perf_counter()
    result = await world.alice.slash(
        world.channel,
        "restyle",
        audio=("level-theme.mp3", seed_mp3(4.0)),
        prompt="serene ambient piano",
        candidates=3,
    )
    assert acknowledged[0] - started < 3.0  # Discord drops interactions not acknowledged in 3 s
    assert result.ephemeral
    assert "Queued as job #1" in result.response.content
    status = world.status_of(1)
    assert "serene ambient piano" in status.content and "level-theme.mp3" in status.content

    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    assert len(posted.attachments) == 3
    for attachment in posted.attachments:
        audio = decode_audio(await attachment.read())
        assert audio.duration_s == pytest.approx(4.0, abs=0.05)
        assert attachment.filename.endswith(".mp3")
    assert "Done" in world.status_of(1).content
    assert posted.components  # reroll, remix and the lossless downloads

    await until(world.env, lambda: len(world.results()[0].reactions) == 3, what="the vote reactions")
    assert [str(r.emoji) for r in world.results()[0].reactions] == list(NUMBERS[:3])

    await world.alice.react(posted, NUMBERS[1])
    await world.bob.react(posted, NUMBERS[1])
    await world.bob.react(posted, NUMBERS[0])
    tallies = await world.bot.store.tallies(1)
    assert tallies == {1: 1, 2: 2}
    shown = await world.alice.slash(world.channel, "results")
    assert "2 votes 👑" in shown.response.content and "1 vote" in shown.response.content
