"""Writing to SQLite while another process holds the file (a backup, an admin's sqlite3 shell):
wait and try again, for minutes if need be, so a vote or a job's state is delayed, never lost."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosqlite

log = logging.getLogger(__name__)

T = TypeVar("T")
# SQLite waits this long for another process's lock before a statement fails...
BUSY_TIMEOUT_MS = 5000
# ...and a write is then tried again until this much time has passed.
WRITE_PATIENCE_S = 300.0
RETRY_GAP_S = 0.5  # tries at least this far apart


async def patiently(db: aiosqlite.Connection, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`'s statements and commit them. While the database is locked, roll back and run
    it again (SQLite's busy handler waits `BUSY_TIMEOUT_MS` in each try, on aiosqlite's thread),
    for up to `WRITE_PATIENCE_S`; then the error is raised. The caller keeps other writes out
    meanwhile, so the rollback undoes nobody else's statements."""
    deadline = time.perf_counter() + WRITE_PATIENCE_S  # a real clock, even where tests fake time
    while True:
        tried = time.perf_counter()
        try:
            result = await work()
            await db.commit()
            return result
        except sqlite3.OperationalError as exc:
            await db.rollback()
            pause = max(0.0, RETRY_GAP_S - (time.perf_counter() - tried))
            if not is_busy(exc) or time.perf_counter() + pause > deadline:
                raise
            log.warning("the database is locked by another process; trying again")
        if pause:  # refused at once: wait a little, off the event loop
            await asyncio.to_thread(time.sleep, pause)


def is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (with their extended codes): another connection holds the file."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)
