"""The disk fills up (or the data dir turns read-only) while a job's results are saved: that job
fails with a clear line, nothing is left half-written, and the bot goes on with the next one."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

import bot.files
from tests.bot.conftest import seed_mp3, until


@pytest.mark.parametrize(
    ("code", "said"),
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the data folder is read-only")],
)
async def test_a_job_whose_results_cannot_be_saved_fails_and_the_next_runs(running, monkeypatch, code, said):
    world = await running(start_worker=False)
    for actor, prompt in ((world.alice, "first"), (world.bob, "second")):
        await actor.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt=prompt)
    first_results = world.bot.files.results / "1"
    write = bot.files._write

    async def refusing_write(path, data):
        if path.is_relative_to(first_results):
            raise OSError(code, os.strerror(code), str(path))
        await write(path, data)

    monkeypatch.setattr(bot.files, "_write", refusing_write)
    await world.bot.start_worker()

    async def settled() -> bool:
        jobs = [await world.bot.store.job(job_id) for job_id in (1, 2)]
        return [job.status for job in jobs] == ["failed", "done"]

    await until(world.env, settled, what="job 1 to fail and job 2 to be done")
    status = world.status_of(1)
    assert f"The results could not be saved: {said}." in status.content
    assert not status.components  # no Cancel button on an ended job
    assert not first_results.exists()  # nothing half-written left behind
    assert [m.content.split("**")[1] for m in world.results()] == ["Job #2 is ready"]


async def test_results_files_gone_before_posting_fail_the_job_once(running):
    world = await running(start_worker=False)
    await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="gone")
    world.env.inject_error("POST", "/webhooks/*", status=503, message="Service Unavailable")
    await world.bot.start_worker()

    async def status_is(wanted: str) -> bool:
        return (await world.bot.store.job(1)).status == wanted

    await until(world.env, lambda: status_is("rendered"), what="a first try that failed")
    shutil.rmtree(world.bot.files.results / "1")  # deleted by hand before the next try
    await world.env.advance_time(61)
    assert await status_is("failed")
    assert "The results files are missing" in world.status_of(1).content
    await world.env.advance_time(120)  # the retry loop lives on
    assert world.bot.get_cog("Maintenance").retry_posting.is_running()
