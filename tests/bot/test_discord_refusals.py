"""Discord refusing the bot's requests: the status message, the results, the vote reactions.
Nobody is told "Something went wrong" while a job runs on, nothing is retried forever, and a
refusal that passes is made up for later."""

from __future__ import annotations

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
