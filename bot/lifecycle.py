"""A job's life after the queue: the worker's events, handled on the event loop, in order.

The worker thread calls `LoopBridge`; each call becomes a task on the loop. The job board's per-job
lock keeps a job's events in the order they happened (a late progress edit never overwrites
"done"). Only this module moves a recorded job's status (running, rendered, done, failed,
cancelled); admission records it queued, and asks here to withdraw it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot import refusals, texts
from bot.config import BotConfig
from bot.files import DataDir
from bot.jobs import JobBoard
from bot.models import ACTIVE, JobRow
from bot.posting import Poster
from bot.replies import NO_PINGS, now
from bot.store import Store
from bot.worker.runner import Finished
from generation.families import family_for

log = logging.getLogger(__name__)

# Results Discord refused for now are tried again after 1, 2, 4... minutes (at most an hour
# apart), and given up on after this many sends.
FIRST_POST_RETRY_S = 60.0
LONGEST_POST_RETRY_S = 3600.0
MAX_POST_ATTEMPTS = 12


class LoopBridge:
    """The worker's `WorkerEvents`: each call is handed to the event loop, never run on the thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lifecycle: Lifecycle) -> None:
        self.loop = loop
        self.lifecycle = lifecycle
        self._tasks: set[asyncio.Task] = set()
        # The worker thread has a context of its own; handlers must run in the loop's, where
        # discord.py keeps per-client state (its webhook adapter, for one).
        self.context = contextvars.copy_context()

    def started(self, job_id: int) -> None:
        self._post(self.lifecycle.on_started, job_id)

    def progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None:
        self._post(self.lifecycle.on_progress, job_id, done, total, seconds_left)

    def finished(self, outcome: Finished) -> None:
        self._post(self.lifecycle.on_finished, outcome)

    def failed(self, job_id: int, message: str) -> None:
        self._post(self.lifecycle.on_failed, job_id, message)

    def cancelled(self, job_id: int) -> None:
        self._post(self.lifecycle.on_cancelled, job_id)

    def _post(self, handler: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._spawn, handler, args, context=self.context)
        except RuntimeError:  # the loop has closed: the database still knows where the job stood
            log.warning("event %s for %s dropped: the event loop is closed", handler.__name__, args[:1])

    def _spawn(self, handler: Callable[..., Awaitable[None]], args: tuple) -> None:
        task = asyncio.ensure_future(handler(*args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every event handed over so far has been handled (at shutdown, before the
        database closes under them)."""
        await asyncio.sleep(0)  # hand-overs already scheduled become tasks
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class Lifecycle:
    def __init__(
        self,
        config: BotConfig,
        store: Store,
        files: DataDir,
        board: JobBoard,
        poster: Poster,
        *,
        stop_running: Callable[[int], bool],
    ) -> None:
        self.config = config
        self.store = store
        self.files = files
        self.board = board
        self.poster = poster
        self._stop_running = stop_running  # asks the worker pool to stop a job it holds

    def _lock(self, job_id: int) -> asyncio.Lock:
        return self.board.lock(job_id)

    # -- asked by the bot ------------------------------------------------------------------------

    async def cancel(self, job_id: int, who: str) -> bool:
        """Cancel an active job for `who`: True if it is running and stops within a step (the
        worker's `cancelled` event ends it), False if it ended here (or had already ended).

        Under the job's lock, and only while the database still has it active: two presses at
        once (a double-click, the owner and a moderator) would otherwise both find it gone from
        the queue, and the second would hand the worker a cancel for a job it will never take."""
        async with self._lock(job_id):
            job = await self.store.job(job_id)
            if job is None or job.status not in ("queued", "running"):
                return False
            self.board.cancelling(job_id, who)
            if not self.board.dequeue(job_id) and self._stop_running(job_id):
                return True
            # Waiting, or known to neither the queue nor the GPU (a job its results could not be
            # saved for, say): the database row ends here. Should the worker have just taken it,
            # the cancel it was handed stops it as it starts.
            who = self.board.cancelled_by(job_id)
            await self._end_locked(job_id, "cancelled", lambda job: texts.cancelled(job, who))
        self.board.drop_lock(job_id)
        return False

    async def withdraw(self, job_id: int, why: str) -> None:
        """Take back a job admission recorded (its status message was refused for good)."""
        if not self.board.dequeue(job_id):
            self._stop_running(job_id)
        await self.on_failed(job_id, why)

    # -- the worker's events -----------------------------------------------------------------------

    async def on_started(self, job_id: int) -> None:
        async with self._lock(job_id):
            started = await self.store.mark_running(job_id, now())
            job = await self.store.job(job_id)
            if started and job is not None:  # not cancelled just before the GPU took it
                total = family_for(job.model).total_steps(job.generated_s)
                self.board.progress(job_id, 0, total)
                await self.edit_status(job, texts.running(job, 0, total, None))

    async def on_progress(self, job_id: int, done: int, total: int, seconds_left: float | None) -> None:
        async with self._lock(job_id):
            job = await self.store.job(job_id)
            if job is None or job.status != "running":
                return
            self.board.progress(job_id, done, total)
            await self.edit_status(job, texts.running(job, done, total, seconds_left))

    async def on_finished(self, outcome: Finished) -> None:
        job_id = outcome.job_id
        async with self._lock(job_id):
            job = await self.store.job(job_id)
            if job is None or job.status not in ACTIVE:  # still 'queued' if marking it running failed
                return
            try:
                rows = await self.files.save_results(job_id, outcome.rendered, outcome.game)
            except OSError as exc:  # a full disk, a read-only data dir: this job fails, the bot goes on
                log.error("job %d: the results could not be saved: %s", job_id, exc)
                await asyncio.to_thread(self.files.remove_results, job_id)
                unsaved = texts.unsaved(exc)
            else:
                await self.store.mark_rendered(job_id, rows, now())
                unsaved = None
        if unsaved is not None:
            await self.on_failed(job_id, unsaved)
            return
        await self.publish(job_id)

    async def publish_pending(self) -> None:
        """Post what was rendered but not yet posted (a restart, or Discord refused it for now)."""
        for job in await self.store.rendered_due(now()):
            await self.publish(job.id)

    async def publish(self, job_id: int) -> None:
        """Post a rendered job's results, add the vote reactions, and record it as done.
        Refused for now (5xx, 429, no connection): the job stays rendered and `publish_pending`
        tries again after a growing pause, a bounded number of times. Refused for good (too
        large, invalid, no permission, no channel): the job fails, and its status says so."""
        async with self._lock(job_id):
            try:
                await self._publish(job_id)
            except discord.HTTPException as exc:
                if not refusals.is_permanent(exc):
                    if await self._post_later(job_id, refusals.describe(exc)):
                        return
                else:
                    await self._give_up_posting(job_id, texts.refused(refusals.describe(exc)))
            except refusals.NETWORK_ERRORS as exc:
                if await self._post_later(job_id, type(exc).__name__):
                    return
            except OSError as exc:  # the files are gone (deleted by hand, say): never postable
                log.error("job %d: the results files cannot be read: %s", job_id, exc)
                await self._give_up_posting(job_id, texts.RESULTS_MISSING)
            except sqlite3.OperationalError as exc:  # the database stayed locked: next round
                log.warning("job %d: posting waits for the database: %s", job_id, exc)
                return
        self.board.drop_lock(job_id)  # posted or given up on: the job's story is over, no lock to keep

    async def _publish(self, job_id: int) -> None:
        store = self.store
        job = await store.job(job_id)
        if job is None or job.status != "rendered":
            return
        candidates = await store.candidates(job_id)
        window = self.config.voting.window_minutes
        close_at = now() + window * 60 if window > 0 else None
        parts = await self.poster.post_results(job, candidates, close_at)
        # Status first: a crash after it finds the parts recorded and ends the job again.
        link = self._channel(job).get_partial_message(parts[0].message_id).jump_url
        await self.edit_status(job, texts.done(job, link), view=None)
        await store.mark_done(job_id, parts[0].message_id, close_at)
        self.board.forget(job_id)
        for part in parts:  # a refused one is tried again by the maintenance loop
            await self.poster.add_vote_reactions(job, part)

    async def _post_later(self, job_id: int, why: str) -> bool:
        """Try again after a pause (True), or give up after too many tries (False)."""
        attempts = (await self.store.delivery(job_id)).attempts
        if attempts >= MAX_POST_ATTEMPTS:
            await self._give_up_posting(job_id, texts.refused(why, attempts))
            return False
        pause = min(FIRST_POST_RETRY_S * 2 ** max(0, attempts - 1), LONGEST_POST_RETRY_S)
        await self.store.post_later(job_id, now() + pause)
        log.warning("job %d: posting the results failed (%s); trying again in %d s", job_id, why, pause)
        return True

    async def _give_up_posting(self, job_id: int, message: str) -> None:
        """The job ends as failed; its status message says why, or, without one, a line in the channel."""
        log.error("job %d: %s", job_id, message)
        if not await self.store.mark_post_failed(job_id, now(), message):
            return
        self.board.forget(job_id)
        job = await self.store.job(job_id)
        if job.status_message_id is not None:
            await self.edit_status(job, texts.failed(job, message), view=None)
            return
        try:
            await self._channel(job).send(f"❌ Job #{job.id}: {message}", allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.warning("job %d: could not say so either: %s", job_id, refusals.describe(exc))

    def _channel(self, job: JobRow) -> discord.PartialMessageable:
        return self.poster.channel(job)

    async def on_failed(self, job_id: int, message: str) -> None:
        await self._end(job_id, "failed", lambda job: texts.failed(job, message), error=message)

    async def on_cancelled(self, job_id: int) -> None:
        who = self.board.cancelled_by(job_id)
        await self._end(job_id, "cancelled", lambda job: texts.cancelled(job, who))

    async def _end(
        self, job_id: int, status: str, text: Callable[[JobRow], str], error: str | None = None
    ) -> None:
        async with self._lock(job_id):
            await self._end_locked(job_id, status, text, error)
        self.board.drop_lock(job_id)

    async def _end_locked(
        self, job_id: int, status: str, text: Callable[[JobRow], str], error: str | None = None
    ) -> None:
        ended = await self.store.mark_ended(job_id, status, now(), error)
        self.board.forget(job_id)
        job = await self.store.job(job_id)
        if ended and job is not None:
            await self.edit_status(job, text(job), view=None)

    async def edit_status(self, job: JobRow, content: str, **changes: Any) -> None:
        """Edit the job's public status message; a deleted message is not an error."""
        if job.status_message_id is None:
            return
        try:
            await (
                self._channel(job)
                .get_partial_message(job.status_message_id)
                .edit(content=content, allowed_mentions=NO_PINGS, **changes)
            )
        except discord.HTTPException as exc:
            log.warning("could not edit the status of job %d: %s", job.id, exc.text or exc.status)
