"""The database's tables, as numbered migrations: `PRAGMA user_version` says how many have run.
A new column is a new migration at the end (and a field in bot.models); never edit one that shipped."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, their candidates, and the votes on them
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL DEFAULT 'restyle',
        parent_id INTEGER REFERENCES jobs(id),
        guild_id INTEGER,
        channel_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        prompt TEXT NOT NULL,
        model TEXT NOT NULL,
        candidates INTEGER NOT NULL,
        duration_s REAL NOT NULL,
        base_seed INTEGER NOT NULL,
        seed_path TEXT NOT NULL,
        seed_name TEXT NOT NULL,
        seed_sha256 TEXT NOT NULL,
        seed_duration_s REAL NOT NULL,
        upload_limit INTEGER NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'rendered', 'done', 'failed', 'cancelled')),
        status_message_id INTEGER,
        result_message_id INTEGER,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        votes_close_at REAL,
        announced INTEGER NOT NULL DEFAULT 0,
        files_deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_status ON jobs (status, id);
    CREATE INDEX jobs_by_user ON jobs (user_id, created_at);
    CREATE INDEX jobs_by_channel ON jobs (channel_id, status, id);
    CREATE UNIQUE INDEX jobs_by_result_message ON jobs (result_message_id);
    CREATE TABLE candidates (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        idx INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        adherence REAL NOT NULL,
        audio_path TEXT NOT NULL,
        lossless_path TEXT NOT NULL,
        bitrate INTEGER,
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE votes (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        idx INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        cast_at REAL NOT NULL,
        PRIMARY KEY (job_id, idx, user_id)
    );
    """,
)
# A request's place, taken in one statement before its seed is downloaded and decoded; it becomes
# a job, or goes. A table of its own, so the jobs table and its status check stay as they are.
MIGRATIONS += (
    """
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX reservations_by_user ON reservations (user_id, created_at);
    """,
)
# Each message a job's results went out in (more than one when the files need several uploads),
# the vote reactions the bot has put on each (bit i-1: candidate i), and how posting has gone, so
# a crash between sending and recording is found again instead of posted twice.
MIGRATIONS += (
    """
    CREATE TABLE result_messages (
        message_id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        part INTEGER NOT NULL,
        first_idx INTEGER NOT NULL,
        last_idx INTEGER NOT NULL,
        reactions INTEGER NOT NULL DEFAULT 0,
        reaction_tries INTEGER NOT NULL DEFAULT 0,
        UNIQUE (job_id, part)
    );
    INSERT INTO result_messages (message_id, job_id, part, first_idx, last_idx, reactions)
        SELECT result_message_id, id, 1, 1, candidates, (1 << candidates) - 1
        FROM jobs WHERE result_message_id IS NOT NULL;
    CREATE TABLE deliveries (
        job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        next_attempt_at REAL
    );
    """,
)
# A job's loop (loop:True): the tempo asked (NULL: detected), and what was planned when it was
# admitted: its bars, its tempo, and the length generated for it (the loop and its overhang).
MIGRATIONS += (
    """
    ALTER TABLE jobs ADD COLUMN loop INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN loop_bpm REAL;
    ALTER TABLE jobs ADD COLUMN loop_bars INTEGER;
    ALTER TABLE jobs ADD COLUMN loop_tempo REAL;
    ALTER TABLE jobs ADD COLUMN loop_generated_s REAL;
    """,
)
# A loop's intro (bars played once before the loop, in the same file; 0: none) and whether its
# layers were asked (the loop as drums, bass, other and vocals that sum to it): /restyle intro:, layers:.
MIGRATIONS += (
    """
    ALTER TABLE jobs ADD COLUMN loop_intro_bars INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN loop_layers INTEGER NOT NULL DEFAULT 0;
    """,
)
# ACE-Step's cover strength as asked (/restyle strength:, 0 to 1; NULL: the family's default), kept
# by Reroll and Remix and handed to the engine with the job.
MIGRATIONS += (
    """
    ALTER TABLE jobs ADD COLUMN strength REAL;
    """,
)
