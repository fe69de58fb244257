"""All of the bot's queries: jobs, candidates and votes in one SQLite file (WAL); the tables and
their numbered migrations are in bot.schema, the rows it returns in bot.models.

The database is the source of truth; the in-memory queue is rebuilt from it at start-up. Times are
UNIX seconds passed in by the caller, so nothing here reads the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.models import CandidateRow, Delivery, JobRow, NewJob, Reservation, ResultPart
from bot.patience import BUSY_TIMEOUT_MS, patiently
from bot.schema import MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")


# What a person's share of the queue counts, what the queue's room counts, and when they last
# asked: jobs and reservations alike, so a request being decoded holds its place.
_ACTIVE = """(SELECT COUNT(*) FROM jobs WHERE user_id = :user AND status IN ('queued', 'running'))
    + (SELECT COUNT(*) FROM reservations WHERE user_id = :user)"""
_WAITING = "(SELECT COUNT(*) FROM jobs WHERE status = 'queued') + (SELECT COUNT(*) FROM reservations)"
_LAST_REQUEST = """(SELECT MAX(at) FROM (SELECT created_at AS at FROM jobs WHERE user_id = :user
    UNION ALL SELECT created_at FROM reservations WHERE user_id = :user))"""


def _job(row: aiosqlite.Row | dict) -> JobRow:
    values = dict(row)
    values["announced"] = bool(values["announced"])
    values["loop"] = bool(values["loop"])
    values["loop_layers"] = bool(values["loop_layers"])
    values["files_deleted"] = bool(values["files_deleted"])
    return JobRow(**values)


class Store:
    """One connection, used from the event loop only."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.closed = False
        # One write unit at a time on the shared connection: a retry's rollback never undoes
        # another coroutine's statements, and a job replacing its reservation (two statements)
        # is never seen half done by a reservation checked meanwhile.
        self._writing = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        store = cls(db)
        for pragma in ("journal_mode = WAL", "foreign_keys = ON", f"busy_timeout = {BUSY_TIMEOUT_MS}"):
            await store._one(f"PRAGMA {pragma}")  # read the answer, or the statement stays open
        await store.migrate()
        return store

    async def close(self) -> None:
        if not self.closed:  # closing twice is harmless
            self.closed = True
            await self.db.close()

    async def migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            (version,) = await cursor.fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
            log.info("database migrated to version %d", number)

    async def _one(self, sql: str, *args: Any, **named: Any) -> aiosqlite.Row | None:
        async with self.db.execute(sql, named or args) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, *args: Any) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def _write(self, sql: str, *args: Any) -> int:
        async def statement() -> int:
            cursor = await self.db.execute(sql, args)
            return cursor.rowcount

        return await self._transaction(statement)

    async def _transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work`'s statements, committed as one unit, waiting out another process's lock."""
        async with self._writing:
            return await patiently(self.db, work)

    # -- jobs ------------------------------------------------------------------------------

    async def add_job(self, job: NewJob, reservation: Reservation | None = None) -> int:
        """Record a queued job, in place of `reservation` if it was reserved."""
        names = [f.name for f in fields(NewJob)]
        sql = (
            f"INSERT INTO jobs ({', '.join(names)}, status) VALUES ({', '.join('?' * len(names))}, 'queued')"
        )

        async def insert() -> int:
            cursor = await self.db.execute(sql, [getattr(job, name) for name in names])
            if reservation is not None:
                await self.db.execute("DELETE FROM reservations WHERE id = ?", (reservation.id,))
            return int(cursor.lastrowid)

        return await self._transaction(insert)

    async def reserve(
        self, user_id: int, now: float, *, max_queue: int, max_jobs: int, cooldown_s: float
    ) -> Reservation | None:
        """Take a place for `user_id`'s request if the queue has room, their share allows one more
        and their cooldown is over: checked and taken in one statement, so requests arriving
        together cannot all pass the check. None if refused."""
        sql = f"""INSERT INTO reservations (user_id, created_at) SELECT :user, :now
                  WHERE {_WAITING} < :max_queue AND {_ACTIVE} < :max_jobs
                  AND COALESCE({_LAST_REQUEST} <= :now - :cooldown, 1)"""
        values = {"user": user_id, "now": now, "max_queue": max_queue, "max_jobs": max_jobs}

        async def take() -> Reservation | None:
            cursor = await self.db.execute(sql, values | {"cooldown": cooldown_s})
            return Reservation(int(cursor.lastrowid), now) if cursor.rowcount == 1 else None

        return await self._transaction(take)

    async def release(self, reservation: Reservation) -> None:
        """A reserved request that will not become a job (its seed was refused, or it failed)."""
        await self._write("DELETE FROM reservations WHERE id = ?", reservation.id)

    async def drop_reservations(self) -> int:
        """At start-up: requests a crash or restart interrupted before they became jobs."""
        return await self._write("DELETE FROM reservations")

    async def job(self, job_id: int) -> JobRow | None:
        row = await self._one("SELECT * FROM jobs WHERE id = ?", job_id)
        return _job(row) if row else None

    async def jobs_with_status(self, *statuses: str) -> list[JobRow]:
        marks = ", ".join("?" * len(statuses))
        return [
            _job(r)
            for r in await self._all(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY id", *statuses)
        ]

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        await self._write("UPDATE jobs SET status_message_id = ? WHERE id = ?", message_id, job_id)

    async def mark_running(self, job_id: int, now: float) -> bool:
        """True if the job was waiting (and now runs)."""
        sql = "UPDATE jobs SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'"
        return await self._write(sql, now, job_id) == 1

    async def requeue_running(self) -> int:
        """Jobs a crash or restart interrupted go back to the queue."""
        return await self._write(
            "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'"
        )

    async def mark_rendered(self, job_id: int, candidates: list[CandidateRow], now: float) -> None:
        async def record() -> None:
            await self.db.executemany(
                "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (c.job_id, c.idx, c.seed, c.adherence, c.audio_path, c.lossless_path, c.bitrate)
                    for c in candidates
                ],
            )
            await self.db.execute(
                "UPDATE jobs SET status = 'rendered', finished_at = ? WHERE id = ?", (now, job_id)
            )

        await self._transaction(record)

    async def rendered_due(self, now: float) -> list[JobRow]:
        """Rendered jobs whose results may be posted now (not waiting out a retry pause)."""
        sql = """SELECT jobs.* FROM jobs LEFT JOIN deliveries ON deliveries.job_id = jobs.id
                 WHERE status = 'rendered' AND COALESCE(next_attempt_at, 0) <= ? ORDER BY id"""
        return [_job(row) for row in await self._all(sql, now)]

    async def delivery(self, job_id: int) -> Delivery:
        row = await self._one(
            "SELECT attempts, last_attempt_at, next_attempt_at FROM deliveries WHERE job_id = ?", job_id
        )
        return Delivery(*row) if row else Delivery()

    async def note_post_attempt(self, job_id: int, now: float) -> None:
        """Recorded before each send, so that a restart knows to look for what may have gone out."""
        await self._write(
            """INSERT INTO deliveries (job_id, attempts, last_attempt_at) VALUES (?, 1, ?)
               ON CONFLICT (job_id) DO UPDATE SET attempts = attempts + 1, last_attempt_at = ?""",
            job_id,
            now,
            now,
        )

    async def post_later(self, job_id: int, at: float) -> None:
        await self._write(
            """INSERT INTO deliveries (job_id, next_attempt_at) VALUES (?, ?)
               ON CONFLICT (job_id) DO UPDATE SET next_attempt_at = ?""",
            job_id,
            at,
            at,
        )

    async def mark_post_failed(self, job_id: int, now: float, error: str) -> bool:
        """A rendered job Discord will never take; True if this call ended it."""
        sql = """UPDATE jobs SET status = 'failed', finished_at = ?, error = ?
                 WHERE id = ? AND status = 'rendered'"""
        return await self._write(sql, now, error, job_id) == 1

    async def add_result_part(self, part: ResultPart) -> None:
        await self._write(
            "INSERT OR REPLACE INTO result_messages VALUES (?, ?, ?, ?, ?, ?, ?)",
            *(getattr(part, f.name) for f in fields(ResultPart)),
        )

    async def result_parts(self, job_id: int) -> list[ResultPart]:
        rows = await self._all("SELECT * FROM result_messages WHERE job_id = ? ORDER BY part", job_id)
        return [ResultPart(**dict(row)) for row in rows]

    async def set_reactions(self, message_id: int, reactions: int) -> None:
        sql = """UPDATE result_messages SET reactions = ?, reaction_tries = reaction_tries + 1
                 WHERE message_id = ?"""
        await self._write(sql, reactions, message_id)

    async def parts_missing_reactions(self, since: float, max_tries: int) -> list[ResultPart]:
        """Result messages of recent, open polls that lack some of the bot's vote reactions."""
        rows = await self._all(
            """SELECT result_messages.* FROM result_messages JOIN jobs ON jobs.id = job_id
               WHERE jobs.status = 'done' AND jobs.finished_at >= ? AND reaction_tries < ?
               AND reactions != ((1 << (last_idx + 1)) - (1 << (first_idx - 1)))
               ORDER BY message_id""",
            since,
            max_tries,
        )
        return [ResultPart(**dict(row)) for row in rows]

    async def mark_done(self, job_id: int, result_message_id: int, votes_close_at: float | None) -> None:
        await self._write(
            "UPDATE jobs SET status = 'done', result_message_id = ?, votes_close_at = ? WHERE id = ?",
            result_message_id,
            votes_close_at,
            job_id,
        )

    async def mark_ended(self, job_id: int, status: str, now: float, error: str | None = None) -> bool:
        """Failed or cancelled, unless the job already ended; True if this call ended it."""
        changed = await self._write(
            """UPDATE jobs SET status = ?, finished_at = ?, error = ?
               WHERE id = ? AND status IN ('queued', 'running')""",
            status,
            now,
            error,
            job_id,
        )
        return changed == 1

    async def active_count(self, user_id: int) -> int:
        """The person's jobs waiting or running, and their requests being decoded."""
        row = await self._one(f"SELECT {_ACTIVE}", user=user_id)
        return int(row[0])

    async def waiting_count(self) -> int:
        """Queued jobs and reserved requests: what the queue's room is measured against."""
        return int((await self._one(f"SELECT {_WAITING}"))[0])

    async def last_request_at(self, user_id: int) -> float | None:
        row = await self._one(f"SELECT {_LAST_REQUEST}", user=user_id)
        return row[0]

    async def latest_result_in_channel(self, channel_id: int) -> JobRow | None:
        row = await self._one(
            """SELECT * FROM jobs WHERE channel_id = ? AND status = 'done'
               ORDER BY finished_at DESC, id DESC LIMIT 1""",
            channel_id,
        )
        return _job(row) if row else None

    async def poll_part(self, message_id: int) -> tuple[JobRow, ResultPart] | None:
        """The job whose results `message_id` carries, and which of its candidates."""
        part_row = await self._one("SELECT * FROM result_messages WHERE message_id = ?", message_id)
        if part_row is None:
            return None
        part = ResultPart(**dict(part_row))
        job = await self.job(part.job_id)
        return (job, part) if job is not None else None

    async def candidates(self, job_id: int) -> list[CandidateRow]:
        rows = await self._all("SELECT * FROM candidates WHERE job_id = ? ORDER BY idx", job_id)
        return [CandidateRow(**dict(row)) for row in rows]

    # -- votes -----------------------------------------------------------------------------

    async def add_vote(self, job_id: int, idx: int, user_id: int, now: float) -> bool:
        """One vote per person and candidate: the primary key makes a repeat a no-op."""
        return (
            await self._write("INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?)", job_id, idx, user_id, now)
            == 1
        )

    async def remove_vote(self, job_id: int, idx: int, user_id: int) -> bool:
        sql = "DELETE FROM votes WHERE job_id = ? AND idx = ? AND user_id = ?"
        return await self._write(sql, job_id, idx, user_id) == 1

    async def tallies(self, job_id: int) -> dict[int, int]:
        rows = await self._all("SELECT idx, COUNT(*) FROM votes WHERE job_id = ? GROUP BY idx", job_id)
        return {int(idx): int(count) for idx, count in rows}

    async def voters(self, job_id: int) -> set[tuple[int, int]]:
        return {
            (int(i), int(u))
            for i, u in await self._all("SELECT idx, user_id FROM votes WHERE job_id = ?", job_id)
        }

    async def set_votes(self, job_id: int, votes: set[tuple[int, int]], now: float) -> tuple[int, int]:
        """Make the stored votes exactly `votes` (idx, user); returns (added, removed)."""

        async def replace() -> tuple[int, int]:
            current = await self.voters(job_id)
            added, removed = votes - current, current - votes
            await self.db.executemany(
                "INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?)", [(job_id, i, u, now) for i, u in added]
            )
            await self.db.executemany(
                "DELETE FROM votes WHERE job_id = ? AND idx = ? AND user_id = ?",
                [(job_id, i, u) for i, u in removed],
            )
            return len(added), len(removed)

        return await self._transaction(replace)

    async def open_polls(self, now: float, since: float, limit: int) -> list[JobRow]:
        """Polls still open, posted since `since`: the newest `limit` of them, newest first."""
        sql = """SELECT * FROM jobs WHERE status = 'done' AND finished_at >= ?
                 AND (votes_close_at IS NULL OR votes_close_at > ?) ORDER BY id DESC LIMIT ?"""
        return [_job(row) for row in await self._all(sql, since, now, limit)]

    async def polls_to_announce(self, now: float) -> list[JobRow]:
        sql = "SELECT * FROM jobs WHERE status = 'done' AND announced = 0 AND votes_close_at <= ? ORDER BY id"
        return [_job(row) for row in await self._all(sql, now)]

    async def mark_announced(self, job_id: int) -> None:
        await self._write("UPDATE jobs SET announced = 1 WHERE id = ?", job_id)

    async def leaderboard(self, guild_id: int, limit: int) -> list[tuple[JobRow, int, int]]:
        """The guild's most-voted candidates: (job, candidate, votes), best first."""
        rows = await self._all(
            """SELECT jobs.*, votes.idx AS voted_idx, COUNT(*) AS voted FROM votes
               JOIN jobs ON jobs.id = votes.job_id WHERE jobs.guild_id = ?
               GROUP BY votes.job_id, votes.idx ORDER BY voted DESC, jobs.id DESC LIMIT ?""",
            guild_id,
            limit,
        )
        result = []
        for row in rows:
            values = dict(row)
            idx, votes = values.pop("voted_idx"), values.pop("voted")
            result.append((_job(values), int(idx), int(votes)))
        return result

    # -- retention ---------------------------------------------------------------------------

    async def expired_jobs(self, before: float) -> list[JobRow]:
        sql = """SELECT * FROM jobs WHERE files_deleted = 0 AND status IN ('done', 'failed', 'cancelled')
                 AND COALESCE(finished_at, created_at) < ? ORDER BY id"""
        return [_job(row) for row in await self._all(sql, before)]

    async def seed_in_use(self, seed_path: str, before: float) -> bool:
        """Whether a job that is not expired still reads this seed file."""
        sql = """SELECT 1 FROM jobs WHERE seed_path = ? AND files_deleted = 0
                 AND (status IN ('queued', 'running', 'rendered')
                      OR COALESCE(finished_at, created_at) >= ?)"""
        return await self._one(sql, seed_path, before) is not None

    async def mark_files_deleted(self, job_id: int) -> None:
        await self._write("UPDATE jobs SET files_deleted = 1 WHERE id = ?", job_id)
