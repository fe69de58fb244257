"""Votes by reaction: counted once, withdrawn, ignored from bots and outside the poll, closed on time,
caught up after the bot was away."""

from __future__ import annotations

import dataclasses

import pytest

from bot.client import RestyleBot
from bot.texts import NUMBERS
from tests.bot.conftest import make_config, post_poll, until
from tests.bot.test_store import new_job


async def test_votes_are_added_withdrawn_and_counted_once(running):
    world = await running()
    poll = await post_poll(world)
    assert await world.bot.store.tallies(1) == {}  # the bot's own reactions are not votes
    await world.alice.react(poll, NUMBERS[0])
    await world.bob.react(poll, NUMBERS[0])
    await world.bob.react(poll, NUMBERS[1])
    await world.bob.unreact(poll, NUMBERS[0])
    await world.bob.react(poll, NUMBERS[0])  # back again: still one vote
    await world.alice.unreact(poll, NUMBERS[0])
    assert await world.bot.store.tallies(1) == {1: 1, 2: 1}
    assert await world.bot.store.voters(1) == {(1, world.bob.id), (2, world.bob.id)}


async def test_what_is_not_a_vote(running):
    world = await running()
    poll = await post_poll(world)
    helper = world.guild.add_member(world.env.create_user("otherbot", bot=True))
    await helper.react(poll, NUMBERS[0])  # another bot
    await world.alice.react(poll, "🎉")  # not a number
    await world.alice.react(poll, NUMBERS[3])  # a number, but there are only two candidates
    status = world.status_of(1)
    await world.alice.react(status, NUMBERS[0])  # not the results message
    assert await world.bot.store.tallies(1) == {}


async def test_the_window_closes_and_the_winner_is_announced(running, tmp_path):
    world = await running(make_config(tmp_path, voting={"window_minutes": 1}))
    poll = await post_poll(world, candidates=3)
    assert "voting closes <t:" in poll.content
    await world.alice.react(poll, NUMBERS[2])
    await world.bob.react(poll, NUMBERS[2])
    await world.moderator.react(poll, NUMBERS[0])
    await world.env.advance_time(95)
    announcement = next(m for m in world.bot_messages() if "has closed" in m.content)
    assert "candidate 3️⃣ wins with 2 votes" in announcement.content
    assert announcement.reference.message_id == poll.id
    await world.moderator.react(poll, NUMBERS[1])  # too late
    assert await world.bot.store.tallies(1) == {3: 2, 1: 1}
    await world.env.advance_time(60)
    assert sum("has closed" in m.content for m in world.bot_messages()) == 1  # announced once


async def test_leaderboard_ranks_the_servers_candidates(running):
    world = await running()
    first = await post_poll(world)
    second = await post_poll(world)
    await world.alice.react(second, NUMBERS[1])
    await world.bob.react(second, NUMBERS[1])
    await world.bob.react(first, NUMBERS[0])
    board = await world.bob.slash(world.channel, "leaderboard")
    lines = board.response.content.splitlines()
    assert lines[1].startswith("1. job #2 2️⃣ · 2 votes")
    assert lines[2].startswith("2. job #1 1️⃣ · 1 vote")


async def test_a_leaderboard_of_long_prompts_fits_one_message(running):
    world = await running(start_worker=False)
    store = world.bot.store
    for index in range(1, 11):
        prompt = f"{index} " + "a sweeping cinematic score with choirs " * 7
        job_id = await store.add_job(dataclasses.replace(new_job(guild=world.guild.id), prompt=prompt))
        await store.mark_done(job_id, result_message_id=1000 + index, votes_close_at=None)
        await store.add_vote(job_id, 1, world.alice.id, 1.0)
    board = await world.bob.slash(world.channel, "leaderboard")
    lines = board.response.content.splitlines()
    assert len(lines) == 11 and len(board.response.content) <= 2000
    assert lines[1].startswith("1. job #10 1️⃣ · 1 vote") and lines[1].endswith("…*")


@pytest.mark.parametrize("kind", ["add", "remove"])
async def test_votes_cast_while_the_bot_was_away_are_caught_up(running, tmp_path, shared_engine_loader, kind):
    config = make_config(tmp_path)
    world = await running(config)
    poll = await post_poll(world)
    await world.alice.react(poll, NUMBERS[0])
    await world.bot.close()
    world.env.backend.subscribers.remove(world.env._gateway_feed)  # the gateway is down: no events reach it
    if kind == "add":
        await world.bob.react(poll, NUMBERS[1])
        expected = {(1, world.alice.id), (2, world.bob.id)}
    else:
        await world.alice.unreact(poll, NUMBERS[0])
        expected = set()
    again = RestyleBot(config, load_engine=shared_engine_loader)
    await world.env.restart_bot(again)
    await until(world.env, lambda: again.is_ready(), what="the restart")
    await world.env.settle()
    assert await again.store.voters(1) == expected
    await again.close()


async def test_the_catch_up_reads_only_recent_polls_and_a_bounded_number(
    running, tmp_path, shared_engine_loader
):
    ten_minutes = 10 / (24 * 60)
    config = make_config(tmp_path, voting={"catch_up_days": ten_minutes, "catch_up_polls": 2})
    world = await running(config)
    polls = [await post_poll(world)]
    await world.env.advance_time(20 * 60)  # the first poll is now too old to read back
    polls += [await post_poll(world), await post_poll(world), await post_poll(world)]
    await world.bot.close()
    world.env.backend.subscribers.remove(world.env._gateway_feed)
    for poll in polls:
        await world.bob.react(poll, NUMBERS[0])
    await world.restart(config, shared_engine_loader)
    await until(world.env, lambda: world.bot.is_ready(), what="the restart")
    await world.env.settle()
    caught_up = [bool(await world.bot.store.voters(job_id)) for job_id in (1, 2, 3, 4)]
    assert caught_up == [False, False, True, True]  # the newest two
