"""Each refusal: one ephemeral line, before any work, and nothing queued or recorded."""

from __future__ import annotations

import dataclasses

import discord
import pytest

from bot.config import AccessSection
from tests.bot.conftest import make_config, seed_mp3


async def _refused(world, actor=None, **options) -> str:
    options.setdefault("audio", ("theme.mp3", seed_mp3(2.0)))
    options.setdefault("prompt", "lofi beats")
    result = await (actor or world.alice).slash(world.channel, "restyle", **options)
    assert result.ephemeral
    text = result.response.content
    assert "\n" not in text and "Traceback" not in text
    return text


async def _nothing_recorded(world) -> None:
    assert len(world.bot.queue) == 0
    assert await world.bot.store.jobs_with_status("queued", "running", "done") == []
    assert world.bot_messages() == []


@pytest.mark.parametrize(
    ("limits", "options", "expected"),
    [
        ({"max_upload_mb": 0.01}, {}, "the limit is 10.2 KiB"),
        ({}, {"audio": ("notes.txt", b"remember the milk\n" * 50)}, "not audio"),
        ({}, {"audio": ("song.mp3", b"this is no mp3 at all\n" * 500)}, "not audio Restyle can read"),
        ({}, {"audio": ("empty.mp3", b"")}, "The file is empty."),
        ({"max_seed_seconds": 5}, {"audio": ("long.mp3", seed_mp3(12.0))}, "the limit is 5.0 s"),
        ({"max_prompt_chars": 40}, {"prompt": "a" * 41}, "41 characters; the limit is 40"),
        ({"max_candidates": 2}, {"candidates": 3}, "Ask for 1 to 2 candidates"),
        ({"max_output_seconds": 30}, {"duration": 45.0}, "between 1 s and 30.0 s"),
        ({}, {"prompt": "\u200b\u200d\u2060\ufeff"}, "The style prompt is empty"),
    ],
    ids=[
        "too-large",
        "not-audio-type",
        "not-audio-content",
        "empty",
        "too-long",
        "prompt-too-long",
        "candidates",
        "duration",
        "invisible-prompt",
    ],
)
async def test_bad_requests(running, tmp_path, limits, options, expected):
    world = await running(make_config(tmp_path, limits=limits))
    assert expected in await _refused(world, **options)
    await _nothing_recorded(world)


def _reconfigure(world, **changes) -> None:
    """New settings for the running bot, as a restart with them would give (the client hands its
    config to admission when it wires it)."""
    world.bot.config = world.bot.admission.config = dataclasses.replace(world.bot.config, **changes)


async def test_wrong_channel_and_wrong_role(running):
    world = await running()
    elsewhere = world.guild.create_text_channel("announcements")
    composers = world.guild.create_role("Composers")
    _reconfigure(world, access=AccessSection(channels=(elsewhere.id,)))
    assert f"<#{elsewhere.id}>" in await _refused(world)
    _reconfigure(world, access=AccessSection(roles=(composers.id,)))
    assert f"<@&{composers.id}>" in await _refused(world)
    await _nothing_recorded(world)


async def test_a_channel_where_the_bot_cannot_attach_files(running):
    world = await running()
    muted = world.guild.create_text_channel(
        "no-files", overwrites={world.bot.user: discord.PermissionOverwrite(attach_files=False)}
    )
    result = await world.alice.slash(muted, "restyle", audio=("t.mp3", seed_mp3(2.0)), prompt="jazz")
    assert result.ephemeral and "Attach Files" in result.response.content


async def test_a_full_queue(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"max_queue": 1}), start_worker=False)
    first = await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="jazz")
    assert "Queued as job #1" in first.response.content
    assert "queue is full" in await _refused(world, world.bob)
    assert len(world.bot.queue) == 1


async def test_one_person_cannot_take_the_whole_queue(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"max_jobs_per_user": 2}), start_worker=False)
    for _ in range(2):
        await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="jazz")
    assert "the limit is 2" in await _refused(world)
    other = await world.bob.slash(world.channel, "restyle", audio=("b.mp3", seed_mp3(2.0)), prompt="funk")
    assert "Queued as job #3" in other.response.content


async def test_cooldown_between_requests(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"cooldown_seconds": 60}), start_worker=False)
    await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="jazz")
    assert "Please wait 60 s" in await _refused(world)
    await world.env.advance_time(61)
    again = await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="jazz")
    assert "Queued as job #2" in again.response.content
