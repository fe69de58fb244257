"""The SQLite store on a real file: migrations, WAL, one vote per person and candidate, retention."""

from __future__ import annotations

import sqlite3

import pytest

from bot.models import CandidateRow, NewJob, ResultPart
from bot.schema import MIGRATIONS
from bot.store import Store


def new_job(user: int = 1, channel: int = 10, guild: int = 100, at: float = 1000.0) -> NewJob:
    return NewJob(
        channel_id=channel,
        guild_id=guild,
        user_id=user,
        prompt="lofi",
        model="debug",
        candidates=2,
        duration_s=30.0,
        base_seed=7,
        seed_path="/seeds/a.mp3",
        seed_name="a.mp3",
        seed_sha256="ab" * 32,
        seed_duration_s=31.0,
        upload_limit=10_000_000,
        created_at=at,
    )


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "db" / "restyle.sqlite3")
    yield opened
    await opened.close()


async def test_a_new_file_is_migrated_and_in_wal_mode(store, tmp_path):
    path = tmp_path / "db" / "restyle.sqlite3"
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = await Store.open(path)  # opening again migrates nothing and keeps the data
    await again.close()


async def test_job_lifecycle(store):
    job_id = await store.add_job(new_job())
    assert (await store.job(job_id)).status == "queued"
    await store.mark_running(job_id, 1001.0)
    assert await store.active_count(1) == 1
    assert await store.requeue_running() == 1
    assert (await store.job(job_id)).status == "queued"
    await store.mark_running(job_id, 1002.0)
    rows = [CandidateRow(job_id, i, 7 + i, 0.5, f"/r/{i}.mp3", f"/r/{i}.flac", 192_000) for i in (1, 2)]
    await store.mark_rendered(job_id, rows, 1003.0)
    assert await store.candidates(job_id) == rows
    await store.add_result_part(ResultPart(555, job_id, 1, 1, 2))
    await store.mark_done(job_id, result_message_id=555, votes_close_at=None)
    job, part = await store.poll_part(555)
    assert (job.id, part.indices) == (job_id, range(1, 3))
    assert (await store.latest_result_in_channel(10)).id == job_id
    assert not await store.mark_ended(job_id, "cancelled", 1004.0)  # a finished job stays finished
    assert (await store.job(job_id)).seeds == (7, 8)


async def test_a_vote_is_unique_per_person_and_candidate(store):
    job_id = await store.add_job(new_job())
    assert await store.add_vote(job_id, 1, 42, 1.0)
    assert not await store.add_vote(job_id, 1, 42, 2.0)
    assert await store.add_vote(job_id, 2, 42, 3.0)
    assert await store.tallies(job_id) == {1: 1, 2: 1}
    assert await store.remove_vote(job_id, 1, 42) and not await store.remove_vote(job_id, 1, 42)
    with pytest.raises(sqlite3.IntegrityError):  # the constraint itself, not just our INSERT OR IGNORE
        await store.db.execute("INSERT INTO votes VALUES (?, 2, 42, 4.0)", (job_id,))


async def test_set_votes_reconciles_both_ways(store):
    job_id = await store.add_job(new_job())
    await store.add_vote(job_id, 1, 1, 1.0)
    await store.add_vote(job_id, 2, 2, 1.0)
    assert await store.set_votes(job_id, {(1, 1), (2, 3)}, 2.0) == (1, 1)
    assert await store.voters(job_id) == {(1, 1), (2, 3)}


async def test_leaderboard_and_quotas(store):
    first, second = (
        await store.add_job(new_job(user=1, at=10.0)),
        await store.add_job(new_job(user=2, at=20.0)),
    )
    other_guild = await store.add_job(new_job(guild=999))
    for voter in (1, 2, 3):
        await store.add_vote(second, 2, voter, 1.0)
    await store.add_vote(first, 1, 1, 1.0)
    await store.add_vote(other_guild, 1, 1, 1.0)
    board = await store.leaderboard(100, limit=10)
    assert [(job.id, idx, votes) for job, idx, votes in board] == [(second, 2, 3), (first, 1, 1)]
    assert await store.last_request_at(2) == 20.0 and await store.last_request_at(9) is None


async def test_expired_jobs_and_seeds_in_use(store):
    old = await store.add_job(new_job(at=100.0))
    await store.mark_ended(old, "failed", 150.0, "boom")
    recent = await store.add_job(new_job(at=900.0))
    assert [job.id for job in await store.expired_jobs(before=500.0)] == [old]
    assert await store.seed_in_use("/seeds/a.mp3", before=500.0)  # the recent job still reads it
    await store.mark_ended(recent, "cancelled", 950.0)
    await store.mark_files_deleted(recent)
    assert not await store.seed_in_use("/seeds/a.mp3", before=500.0)


async def test_a_reservation_holds_a_place_until_it_becomes_a_job_or_goes(store):
    quota = {"max_queue": 2, "max_jobs": 1, "cooldown_s": 0.0}
    first = await store.reserve(1, 100.0, **quota)
    assert first is not None and await store.active_count(1) == 1
    assert await store.reserve(1, 100.0, **quota) is None  # their share is taken
    second = await store.reserve(2, 100.0, **quota)
    assert await store.reserve(3, 100.0, **quota) is None  # the queue's room is taken
    await store.release(first)
    assert await store.waiting_count() == 1 and await store.active_count(1) == 0
    job_id = await store.add_job(new_job(user=2, at=second.at), second)
    assert await store.waiting_count() == 1 and await store.active_count(2) == 1  # counted once
    assert (await store.job(job_id)).created_at == 100.0
    assert await store.drop_reservations() == 0


async def test_the_cooldown_counts_reservations_and_jobs(store):
    quota = {"max_queue": 10, "max_jobs": 5, "cooldown_s": 10.0}
    reservation = await store.reserve(1, 100.0, **quota)
    assert await store.reserve(1, 105.0, **quota) is None  # still being decoded
    await store.add_job(new_job(user=1, at=reservation.at), reservation)
    assert await store.reserve(1, 109.0, **quota) is None and await store.last_request_at(1) == 100.0
    assert await store.reserve(1, 110.0, **quota) is not None
    assert await store.drop_reservations() == 1
