"""Another process holds the database (a backup, an admin's sqlite3 shell): writes wait for it and
nothing is lost, neither a vote nor a job's state."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import bot.patience
from bot.texts import NUMBERS
from tests.bot.conftest import post_poll, seed_mp3, until

SHORT_BUSY_TIMEOUT = "PRAGMA busy_timeout = 200"  # the lock below outlasts it many times over


def hold_database(path: Path, seconds: float) -> threading.Thread:
    """Another process's connection holding the write lock for `seconds` (from a thread of ours)."""
    locked = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(5)
    return holder


async def _vote_while_locked(running):
    """Bob votes while another process holds the database for 1.5 s; the world once it let go."""
    world = await running()
    poll = await post_poll(world)
    await world.bot.store.db.execute(SHORT_BUSY_TIMEOUT)
    holder = hold_database(world.bot.files.database, 1.5)
    await world.bob.react(poll, NUMBERS[1])
    await until(world.env, lambda: not holder.is_alive(), what="the other process to let go")
    return world


async def test_a_vote_cast_while_the_database_is_locked_is_kept(running):
    world = await _vote_while_locked(running)
    assert await world.bot.store.voters(1) == {(2, world.bob.id)}


async def test_a_vote_the_database_refused_for_too_long_is_read_back(running, monkeypatch):
    monkeypatch.setattr(bot.patience, "WRITE_PATIENCE_S", 0.3)
    world = await _vote_while_locked(running)
    assert await world.bot.store.voters(1) == set()  # given up on, for now
    await world.env.advance_time(61)  # the catch-up reads the poll's reactions
    assert await world.bot.store.voters(1) == {(2, world.bob.id)}


async def test_a_job_runs_through_a_locked_database(running):
    world = await running(start_worker=False)
    await world.alice.slash(world.channel, "restyle", audio=("a.mp3", seed_mp3(2.0)), prompt="waits")
    await world.bot.store.db.execute(SHORT_BUSY_TIMEOUT)
    holder = hold_database(world.bot.files.database, 2.0)
    await world.bot.start_worker()  # started, progress, rendered: each write meets the lock
    await until(world.env, lambda: not holder.is_alive(), what="the other process to let go")

    async def done() -> bool:
        return (await world.bot.store.job(1)).status == "done"

    await until(world.env, done, what="the job to be done")
    assert len(world.results()) == 1
    assert "Done" in world.status_of(1).content
