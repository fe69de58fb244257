"""Discord refusing the bot's requests: the status message, the results, the vote reactions.
Nobody is told "Something went wrong" while a job runs on, nothing is retried forever, and a
refusal that passes is made up for later."""

from __future__ import annotations

import bot.lifecycle
from bot.texts import NUMBERS
from tests.bot.conftest import seed_mp3, until


async def _queued(world, actor, filename: str = "a.mp3", prompt: str = "calm"):
    return await actor.slash(world.channel, "restyle", audio=(filename, seed_mp3(2.0)), prompt=prompt)


async def test_a_very_long_filename_still_gets_a_status_message(running, discord_limits):
    world = await running(start_worker=False)
    reply = await _queued(world, world.alice, filename="x" * 1900 + ".mp3", prompt="*" * 300)
    assert "Queued as job #1" in reply.response.content
    status = world.status_of(1)
    assert len(status.content) <= 2000 and "…" in status.content
    assert status.components  # the Cancel button
    await world.bot.start_worker()
    await until(world.env, lambda: world.results(), what="the results")
    assert "Done" in world.status_of(1).content
    assert discord_limits.refused == []


async def test_a_status_message_discord_fails_leaves_cancel_with_the_member(running):
    world = await running(start_worker=False)
    world.env.inject_error("POST", "/channels/*/messages", status=503, message="Service Unavailable")
    reply = await _queued(world, world.alice)
    assert reply.ephemeral and "Queued as job #1" in reply.response.content
    assert "Something went wrong" not in reply.response.content
    cancelled = await world.alice.click(reply.response, label="Cancel")
    assert "Cancelled job #1" in cancelled.response.content
    assert (await world.bot.store.job(1)).status == "cancelled"


async def test_a_channel_that_refuses_the_status_message_gets_no_job(running):
    world = await running(start_worker=False)
    world.env.inject_error(
        "POST", "/channels/*/messages", status=403, code=50013, message="Missing Permissions"
    )
    reply = await _queued(world, world.alice)
    assert reply.ephemeral and "was not queued" in reply.response.content
    assert "Missing Permissions" in reply.response.content
    assert len(world.bot.queue) == 0
    assert await world.bot.store.active_count(world.alice.id) == 0


async def _job_status(world, job_id: int = 1) -> str:
    return (await world.bot.store.job(job_id)).status


def _uploads(world) -> int:
    """Requests that carried the results (a follow-up or a channel message with files)."""
    return sum(
        1
        for request in world.env.http_requests
        if request.method == "POST" and "attachments" in (request.json or {})
    )


async def test_files_that_cannot_share_one_upload_go_in_several_messages(running, discord_limits):
    discord_limits.upload = 64 * 1024 + 40 * 1024  # 40 KiB of files per message: one 8 s file, not two
    world = await running()
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(8.0)), prompt="split", candidates=2
    )
    await until(world.env, lambda: len(world.bot_messages()) >= 3 and "Done" in world.status_of(1).content)
    first, second = [m for m in world.bot_messages() if m.attachments]
    assert [a.filename for a in first.attachments + second.attachments] == [
        "restyle-1-1.mp3",
        "restyle-1-2.mp3",
    ]
    assert "more than one message" in first.content and "part 2 of 2" in second.content
    assert discord_limits.refused == []
    await until(world.env, lambda: len(first.reactions) == 1 and len(second.reactions) == 1)
    await world.bob.react(second, NUMBERS[1])
    await world.bob.react(second, NUMBERS[0])  # candidate 1 is voted on its own message
    await world.moderator.react(first, NUMBERS[0])
    assert await world.bot.store.voters(1) == {(2, world.bob.id), (1, world.moderator.id)}


async def test_results_refused_for_good_fail_once_and_say_so(running, discord_limits):
    world = await running(start_worker=False)
    await _queued(world, world.alice)
    for path in ("/webhooks/*", "/channels/*/messages"):
        world.env.inject_error(
            "POST", path, status=413, code=40005, message="Request entity too large", times=None
        )
    await world.bot.start_worker()

    async def failed() -> bool:
        return await _job_status(world) == "failed"

    await until(world.env, failed, what="the job to fail")
    assert "Discord refused the results (Request entity too large)" in world.status_of(1).content
    tries = _uploads(world)
    await world.env.advance_time(30 * 60)
    assert _uploads(world) == tries == 1  # never tried again


async def test_results_discord_keeps_failing_are_given_up_after_a_few_tries(running, monkeypatch):
    monkeypatch.setattr(bot.lifecycle, "MAX_POST_ATTEMPTS", 3)
    world = await running(start_worker=False)
    await _queued(world, world.alice)
    for path in ("/webhooks/*", "/channels/*/messages"):
        world.env.inject_error("POST", path, status=502, message="Bad Gateway", times=None)
    await world.bot.start_worker()
    await until(world.env, lambda: _uploads(world) == 1, what="a first try")
    await world.env.advance_time(10 * 60)  # tries after 1 and 2 minutes, then no more
    assert await _job_status(world) == "failed"
    assert _uploads(world) == 3
    assert "Discord kept failing to take the results (Bad Gateway; 3 tries)" in world.status_of(1).content
    await world.env.advance_time(20 * 60)
    assert _uploads(world) == 3


async def test_vote_reactions_refused_are_added_later_and_votes_count_meanwhile(running):
    world = await running(start_worker=False)
    await _queued(world, world.alice)
    world.env.inject_error(
        "PUT",
        "/channels/*/messages/*/reactions/*",
        status=403,
        code=50013,
        message="Missing Permissions",
        times=2,
    )
    await world.bot.start_worker()
    await until(
        world.env, lambda: world.results() and "Done" in world.status_of(1).content, what="the results"
    )
    poll = world.results()[0]
    assert poll.reactions == []
    await world.bob.react(poll, NUMBERS[1])  # members can vote without the bot's reactions
    assert await world.bot.store.voters(1) == {(2, world.bob.id)}
    await world.env.advance_time(61)  # refused once more
    await world.env.advance_time(61)
    reactions = {str(r.emoji): r.count for r in world.results()[0].reactions}
    assert reactions == {NUMBERS[0]: 1, NUMBERS[1]: 2}  # the bot's own, and bob's vote
    assert (await world.bot.store.result_parts(1))[0].reactions == 0b11
