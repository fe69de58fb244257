"""Crashes and restarts lose nothing: queued jobs run, an interrupted job runs again, results are
posted once, votes stay, and results Discord refused are posted later."""

from __future__ import annotations

from bot.client import RestyleBot
from bot.files import DataDir
from bot.store import Store
from bot.texts import NUMBERS
from tests.bot.conftest import make_config, seed_mp3, until


def _posted(world, job_id: int) -> int:
    return sum(f"Job #{job_id} is ready" in message.content for message in world.results())


async def test_restart_with_a_queued_and_a_running_job(running, tmp_path, shared_engine_loader):
    config = make_config(tmp_path, models={"backend": "reference"}, limits={"batch_rows": 1})
    world = await running(config)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="earlier", candidates=2
    )
    await until(
        world.env, lambda: world.results() and len(world.results()[0].reactions) == 2, what="a first poll"
    )
    await world.bob.react(world.results()[0], NUMBERS[1])

    await world.alice.slash(
        world.channel, "restyle", audio=("b.mp3", seed_mp3(30.0)), prompt="long", candidates=1
    )
    await world.bob.slash(
        world.channel, "restyle", audio=("c.mp3", seed_mp3(2.0)), prompt="waiting", candidates=1
    )
    await until(world.env, lambda: "step" in world.status_of(2).content, what="job 2 to run")
    assert (await world.bot.store.job(3)).status == "queued"

    await world.bot.close()  # the process stops mid-job
    store = await Store.open(DataDir(config.bot.data_dir).database)
    assert (await store.job(2)).status == "running"  # as a crash would leave it
    await store.close()
    again = RestyleBot(config, load_engine=shared_engine_loader)
    await world.env.restart_bot(again)
    await until(world.env, lambda: _posted(world, 2) and _posted(world, 3), timeout=120, what="both jobs")
    await world.env.settle()

    assert [_posted(world, job_id) for job_id in (1, 2, 3)] == [1, 1, 1]
    assert [(await again.store.job(job_id)).status for job_id in (1, 2, 3)] == ["done"] * 3
    assert await again.store.voters(1) == {(2, world.bob.id)}
    assert "Done" in world.status_of(2).content
    await again.close()


async def test_results_discord_failed_to_take_are_posted_later_once(running, tmp_path):
    world = await running(make_config(tmp_path), start_worker=False)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="shy", candidates=1
    )
    world.env.inject_error("POST", "/webhooks/*", status=503, message="Service Unavailable")
    await world.bot.start_worker()

    async def rendered() -> bool:
        return (await world.bot.store.job(1)).status == "rendered"

    await until(world.env, rendered, what="the job to be rendered")
    assert world.results() == []
    await world.env.advance_time(61)
    await until(world.env, lambda: world.results(), what="the retried results")
    await world.env.advance_time(120)
    assert _posted(world, 1) == 1
    assert (await world.bot.store.job(1)).status == "done"


async def test_buttons_keep_working_after_a_restart(running, tmp_path, shared_engine_loader):
    config = make_config(tmp_path)
    world = await running(config)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="bells", candidates=2
    )
    await until(world.env, lambda: world.results(), what="the results")
    await world.alice.slash(
        world.channel, "restyle", audio=("b.mp3", seed_mp3(2.0)), prompt="later", candidates=1
    )
    await world.bot.close()
    again = RestyleBot(config, load_engine=shared_engine_loader, start_worker=False)
    await world.env.restart_bot(again)
    download = await world.bob.click(world.results()[0], label="FLAC 2")
    assert download.response.attachments[0].filename == "restyle-1-2.flac"
    cancelled = await world.alice.click(world.status_of(2), label="Cancel")
    assert "Cancelled job #2" in cancelled.response.content
    await again.close()


async def test_a_restart_with_a_full_queue_keeps_every_job(running, tmp_path, shared_engine_loader):
    config = make_config(tmp_path, models={"backend": "reference"}, limits={"batch_rows": 1, "max_queue": 2})
    world = await running(config)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(30.0)), prompt="long", candidates=1
    )
    await until(world.env, lambda: "step" in world.status_of(1).content, what="job 1 to run")
    for actor, prompt in ((world.bob, "second"), (world.moderator, "third")):
        await actor.slash(
            world.channel, "restyle", audio=("b.mp3", seed_mp3(2.0)), prompt=prompt, candidates=1
        )
    assert len(world.bot.queue) == 2  # full, with job 1 running beside it
    await world.bot.close()

    again = await world.restart(config, shared_engine_loader, start_worker=False)
    assert [job.job_id for job in again.queue.ordered()] == [1, 2, 3]  # the interrupted job first
    await again.start_worker()
    await until(world.env, lambda: all(_posted(world, job_id) for job_id in (1, 2, 3)), timeout=120)
    assert [_posted(world, job_id) for job_id in (1, 2, 3)] == [1, 1, 1]


async def test_cancel_ends_a_queued_job_the_queue_does_not_hold(running):
    world = await running(start_worker=False)
    await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="lost")
    world.bot.queue.remove(1)  # as a job the queue refused at start-up was
    reply = await world.alice.click(world.status_of(1), label="Cancel")
    assert "Cancelled job #1" in reply.response.content
    assert (await world.bot.store.job(1)).status == "cancelled"
    assert "Cancelled by alice" in world.status_of(1).content
    assert await world.bot.store.active_count(world.alice.id) == 0  # the slot is free again
