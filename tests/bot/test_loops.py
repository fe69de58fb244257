"""/restyle loop:True end to end: planned at admission, whole bars, the seam as its figures say in
the results, the WAV loop with its points one button away, and loop options kept over a restart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.client import RestyleBot
from bot.store import Store
from generation.audio.decode import decode_audio
from generation.game_music import SeamVerdict, loop_verdict
from generation.musicgen.family import MUSICGEN
from tests.audio_factory import encode
from tests.bot.conftest import make_config, until
from tests.generation.audio.loop_audio import click_track, smpl_loops, tags_and_length

NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")

RATE = 32_000
BAR_120 = 2 * RATE


def wav(samples: np.ndarray) -> bytes:
    return encode(samples, RATE, "wav", "pcm_s16le", sample_format="s16", channels=1)


def groove_wav(seconds: float = 6.0) -> bytes:
    return wav(click_track(seconds, RATE))


def seam_verdicts(world, job_id: int) -> dict[int, SeamVerdict]:
    """Each candidate's verdict, from the seam figures in the sidecar the worker wrote."""
    folder = world.bot.files.results / str(job_id)
    return {
        int(path.stem): loop_verdict(json.loads(path.read_text())["loop"])
        for path in sorted(folder.glob("[0-9].json"))
    }


def assert_seams_said(content: str, verdicts: dict[int, SeamVerdict], shape: str) -> None:
    """ "loops seamlessly" only where the figures say so; otherwise what they say, in words."""
    assert verdicts and shape in content
    if all(verdict.seamless for verdict in verdicts.values()):
        assert "🔁 loops seamlessly" in content
        return
    assert "🔁 loops seamlessly" not in content
    for idx, verdict in verdicts.items():
        said = "loops seamlessly" if verdict.seamless else verdict.words
        assert f"{NUMBERS[idx - 1]} {said}" in content


async def _loop_job(world, **options):
    options.setdefault("audio", ("groove.wav", groove_wav()))
    options.setdefault("prompt", "chiptune")
    return await world.alice.slash(world.channel, "restyle", loop=True, duration=4.0, **options)


async def test_a_loop_from_command_to_the_lossless_loop(running):
    world = await running(start_worker=False)
    reply = await _loop_job(world, candidates=2)
    assert "Queued as job #1" in reply.response.content
    job = await world.bot.store.job(1)
    assert (job.loop, job.loop_bars, job.loop_tempo, job.duration_s) == (True, 2, 120.0, 4.0)
    assert job.generated_s > job.duration_s  # the overhang the seam is made of
    queued = world.bot.queue.ordered()[0]
    assert queued.steps == MUSICGEN.total_steps(job.generated_s)
    assert "loop of 2 bars" in world.status_of(1).content

    await world.bot.start_worker()
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    assert_seams_said(posted.content, seam_verdicts(world, 1), "2 bars at 120 BPM")
    for attachment in posted.attachments:  # the mp3 previews, for listening
        assert attachment.filename.endswith(".mp3")
        assert decode_audio(await attachment.read()).duration_s == pytest.approx(4.0, abs=0.06)
    download = await world.bob.click(posted, label="Loop 2")
    assert download.ephemeral and "loop points" in download.response.content
    (file,) = download.response.attachments  # the WAV, whose loop points Godot's import reads
    assert file.filename == "restyle-1-2-loop.wav"
    data = await file.read()
    _, samples, rate = tags_and_length(data)
    assert (samples, rate) == (2 * BAR_120, RATE)  # two bars, to the sample
    assert smpl_loops(data) == [(0, 0, 2 * BAR_120 - 1, 0)]  # forward, the whole file, forever


async def test_a_loop_job_shows_its_true_step_count(running):
    world = await running()
    await _loop_job(world)
    job = await world.bot.store.job(1)
    steps = MUSICGEN.total_steps(job.generated_s)
    assert steps > MUSICGEN.total_steps(job.duration_s)
    await until(world.env, lambda: world.results(), what="the results")
    edits = [
        (r.json or {}).get("content") or ""
        for r in world.env.http_requests
        if r.method == "PATCH" and str(world.status_of(1).id) in r.path
    ]
    shown = [text for text in edits if "· step " in text]
    assert shown and all(f"/{steps} ·" in text for text in shown), shown


async def test_a_restart_keeps_a_queued_loop(running, tmp_path, shared_engine_loader):
    config = make_config(tmp_path)
    world = await running(config, start_worker=False)
    await _loop_job(world, bpm=100.0)
    before = await world.bot.store.job(1)
    await world.bot.close()
    again = RestyleBot(config, load_engine=shared_engine_loader, start_worker=False)
    await world.env.restart_bot(again)
    job = await again.store.job(1)
    assert (job.loop, job.loop_bpm, job.loop_bars, job.generated_s) == (
        True,
        100.0,
        before.loop_bars,
        before.generated_s,
    )
    assert again.queue.ordered()[0].steps == MUSICGEN.total_steps(job.generated_s)
    await again.start_worker()
    await until(world.env, lambda: world.results(), what="the results after the restart")
    assert_seams_said(world.results()[0].content, seam_verdicts(world, 1), f"{job.loop_bars} bars at 100 BPM")
    await again.close()


async def test_a_reroll_of_a_loop_is_a_loop(running):
    world = await running()
    await _loop_job(world)
    await until(world.env, lambda: world.results(), what="the results")
    reroll = await world.bob.click(world.results()[0], label="Reroll")
    assert "Queued as job #2" in reroll.response.content
    rerolled = await world.bot.store.job(2)
    assert (rerolled.loop, rerolled.loop_bars, rerolled.duration_s) == (True, 2, 4.0)
    await until(world.env, lambda: len(world.results()) == 2, what="the reroll")
    form = await world.alice.click(world.results()[0], label="Remix")
    queued = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    assert "Queued as job #3" in queued.response.content
    remixed = await world.bot.store.job(3)  # its seed is the loop: its tempo is known, not guessed
    assert (remixed.loop, remixed.loop_bpm, remixed.loop_bars) == (True, 120.0, 2)
    await until(world.env, lambda: len(world.results()) == 3, what="the remix")
    assert_seams_said(world.results()[2].content, seam_verdicts(world, 3), "2 bars at 120 BPM")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"audio": ("hiss.wav", None)}, "no clear beat"),
        ({"audio": ("short.wav", groove_wav(1.5)), "bpm": 120.0}, "less than one whole bar"),
    ],
    ids=["no-beat", "shorter-than-a-bar"],
)
async def test_loops_that_cannot_be_made_are_refused_at_admission(running, options, expected):
    if options["audio"][1] is None:
        hiss = (0.2 * np.random.default_rng(0).standard_normal(6 * RATE)).astype(np.float32)
        options["audio"] = ("hiss.wav", wav(hiss))
    world = await running(start_worker=False)
    reply = await _loop_job(world, **options)
    text = reply.response.content
    assert reply.ephemeral and expected in text and "\n" not in text
    assert len(world.bot.queue) == 0
    assert await world.bot.store.jobs_with_status("queued") == []
    assert await world.bot.store.active_count(world.alice.id) == 0  # the place went back


async def test_a_tempo_without_a_loop_is_refused(running):
    world = await running(start_worker=False)
    reply = await world.alice.slash(
        world.channel, "restyle", audio=("groove.wav", groove_wav()), prompt="x", bpm=120.0
    )
    assert reply.ephemeral and "loop:True" in reply.response.content
    assert len(world.bot.queue) == 0


async def test_a_database_from_before_loops_is_migrated(tmp_path):
    import sqlite3

    from bot.models import NewJob
    from bot.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:3], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.execute(
            "INSERT INTO jobs (channel_id, user_id, prompt, model, candidates, duration_s, base_seed,"
            " seed_path, seed_name, seed_sha256, seed_duration_s, upload_limit, status, created_at)"
            " VALUES (1, 2, 'old', 'debug', 1, 3.0, 5, 's', 'n', 'h', 3.0, 100, 'queued', 0)"
        )
    store = await Store.open(path)
    old = await store.job(1)
    assert (old.loop, old.loop_bars, old.generated_s) == (False, None, 3.0)
    assert isinstance(old, NewJob)
    await store.close()
