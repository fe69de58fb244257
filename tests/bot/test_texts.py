"""Every message the bot writes fits Discord's 2,000 characters, whatever a member sends."""

from __future__ import annotations

import pytest

from bot import texts
from bot.store import CandidateRow, JobRow

MAX = 2000
HOSTILE_PROMPT = "*_`~|>@" * 143  # 1,001 characters that each escape to two
HOSTILE_NAME = "_" * 1900 + ".mp3"


@pytest.fixture
def job() -> JobRow:
    return JobRow(
        1, 2, 3, HOSTILE_PROMPT, "facebook/musicgen-melody", 4, 120.0, 10**9, "/data/seeds/x.mp3",
        HOSTILE_NAME, "0" * 64, 120.0, 10 * 2**20, 0.0, "remix", 99_999, id=123_456,
    )  # fmt: skip


def test_status_messages_fit(job):
    link = "https://discord.com/channels/" + "9" * 19 + "/" + "9" * 19 + "/" + "9" * 19
    for text in (
        texts.queued(job, 20, 7200.0),
        texts.running(job, 1234, 6012, 3600.0),
        texts.done(job, link),
        texts.failed(job, texts.unsaved(OSError(28, "No space left on device"))),
        texts.cancelled(job, "m" * 32),
    ):
        assert len(text) <= MAX
        assert "…" in text  # the member's text was cut, not Discord's message refused


def test_results_and_tallies_fit(job):
    candidates = [CandidateRow(1, idx, 10**9 + idx, 0.5, "a.mp3", "a.flac", 32_000) for idx in range(1, 5)]
    assert len(texts.results(job, candidates, 10 * 2**20, 2e9)) <= MAX
    assert len(texts.tallies(job, {1: 10**6, 2: 3})) <= MAX
