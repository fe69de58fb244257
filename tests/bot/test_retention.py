"""Old files go after the retention period; what still needs them stays."""

from __future__ import annotations

from pathlib import Path

from bot.replies import now
from tests.bot.conftest import seed_mp3, until


async def test_expired_files_are_removed_and_buttons_say_so(running):
    world = await running()
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="old", candidates=1
    )
    await until(world.env, lambda: world.results(), what="the results")
    job = await world.bot.store.job(1)
    results = world.bot.files.results / "1"
    assert results.is_dir() and Path(job.seed_path).is_file()

    maintenance = world.bot.get_cog("Maintenance")
    assert await maintenance.remove_expired(before=job.finished_at - 1) == 0  # not old enough yet
    assert await maintenance.remove_expired(before=now() + 1) == 1
    assert not results.exists() and not Path(job.seed_path).exists()
    assert (await world.bot.store.job(1)).files_deleted

    reply = await world.bob.click(world.results()[0], label="FLAC 1")
    assert reply.ephemeral and "expired" in reply.response.content
    reroll = await world.bob.click(world.results()[0], label="Reroll")
    assert "expired" in reroll.response.content


async def test_a_seed_still_queued_is_kept(running):
    world = await running(start_worker=False)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="one", candidates=1
    )
    await world.alice.click(world.status_of(1), label="Cancel")
    await world.bob.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="same seed", candidates=1
    )
    job = await world.bot.store.job(2)
    maintenance = world.bot.get_cog("Maintenance")
    assert await maintenance.remove_expired(before=now() + 1) == 1  # the cancelled job's files
    assert Path(job.seed_path).exists()  # the same seed file, still waiting to be used


async def test_a_seed_deleted_while_queued_fails_its_job_without_showing_a_path(running):
    world = await running(start_worker=False)
    await world.alice.slash(
        world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="gone", candidates=1
    )
    Path((await world.bot.store.job(1)).seed_path).unlink()  # an admin cleaning the data dir
    await world.bot.start_worker()
    await until(world.env, lambda: "❌" in world.status_of(1).content, what="the job to fail")
    status = world.status_of(1).content
    assert "The seed file is no longer available" in status
    assert str(world.bot.files.root) not in status and "seeds/" not in status
    assert (await world.bot.store.job(1)).status == "failed"
