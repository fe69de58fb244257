"""/restyle intro: and layers: end to end: an intro + loop WAV whose loop points are read back from
the posted bytes, layers that sum to it, files split over private messages to fit the upload limit
(or refused in a line), the seam said as its figures say, and both options kept by Reroll, Remix
and a database of the previous schema."""

from __future__ import annotations

import sqlite3

import numpy as np

import generation.game_music
from bot.replies import UPLOAD_MARGIN
from bot.schema import MIGRATIONS
from bot.store import Store
from tests.bot.conftest import make_config, until
from tests.bot.test_loops import BAR_120, _loop_job, assert_seams_said, seam_verdicts
from tests.generation.audio.loop_audio import riff_chunks, smpl_loops

LAYERS = ("drums", "bass", "other", "vocals")


def pcm(data: bytes) -> np.ndarray:
    """A 16-bit WAV's samples, read straight from its `data` chunk."""
    return np.frombuffer(riff_chunks(data)[b"data"], dtype="<i2").astype(np.int32)


async def _attachments(reply) -> list:
    """Every file of a button's private reply: its response, then its follow-ups."""
    messages = [reply.response, *reply.followups]
    return [attachment for message in messages for attachment in message.attachments]


async def test_an_intro_and_layers_reach_the_member_as_a_wav_that_loops_after_the_intro(running):
    world = await running()
    reply = await _loop_job(world, candidates=1, intro=1, layers=True)
    assert "Queued as job #1" in reply.response.content
    job = await world.bot.store.job(1)
    assert (job.loop_bars, job.loop_intro_bars, job.loop_layers, job.duration_s) == (2, 1, True, 6.0)
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    assert_seams_said(posted.content, seam_verdicts(world, 1), "2 bars at 120 BPM, after an intro of 1 bar")
    assert "layers" in posted.content

    download = await world.bob.click(posted, label="Loop 1")
    assert download.ephemeral and "loop points" in download.response.content
    files = {file.filename: await file.read() for file in await _attachments(download)}
    names = ["restyle-1-1-loop.wav", *(f"restyle-1-1-loop-{layer}.wav" for layer in LAYERS)]
    assert list(files) == names  # the WAV and its four layers, in one message (they fit)
    loop = files[names[0]]
    for data in files.values():  # intro then loop: the loop starts after one bar, ends on the last sample
        assert smpl_loops(data) == [(0, BAR_120, 3 * BAR_120 - 1, 0)]
        assert len(pcm(data)) == 3 * BAR_120
    layers = sum(pcm(files[name]) for name in names[1:])
    assert np.array_equal(layers, pcm(loop))  # they add up to the loop, sample for sample
    assert np.abs(pcm(loop)).max() > 0

    reroll = await world.bob.click(posted, label="Reroll")
    assert "Queued as job #2" in reroll.response.content
    rerolled = await world.bot.store.job(2)
    assert (rerolled.loop_bars, rerolled.loop_intro_bars, rerolled.loop_layers, rerolled.duration_s) == (
        2,
        1,
        True,
        6.0,
    )
    form = await world.alice.click(posted, label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    assert "Queued as job #3" in remix.response.content
    remixed = await world.bot.store.job(3)
    assert (remixed.loop_bars, remixed.loop_intro_bars, remixed.loop_layers) == (2, 1, True)


async def test_layers_split_over_messages_to_fit_the_limit_or_are_refused_in_a_line(
    running, discord_limits, tmp_path, shared_engine_loader
):
    config = make_config(tmp_path)
    world = await running(config)
    await _loop_job(world, candidates=1, layers=True)
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    wav_size = (world.bot.files.results / "1" / "1-loop.wav").stat().st_size

    discord_limits.upload = UPLOAD_MARGIN + 2 * wav_size + 1024  # two files a message
    split = await world.bob.click(posted, label="Loop 1")
    messages = [split.response, *split.followups]
    assert [len(message.attachments) for message in messages] == [2, 2, 1]
    assert all(message.flags.ephemeral for message in messages)
    assert "3 messages" in messages[0].content
    names = [file.filename for file in await _attachments(split)]
    assert names == ["restyle-1-1-loop.wav", *(f"restyle-1-1-loop-{layer}.wav" for layer in LAYERS)]

    discord_limits.upload = UPLOAD_MARGIN + wav_size - 1  # not even one file fits a message
    refused = await world.bob.click(posted, label="Loop 1")
    text = refused.response.content
    assert refused.ephemeral and "upload limit" in text and "\n" not in text
    assert not refused.response.attachments and not refused.followups
    assert not discord_limits.refused  # nothing was sent that Discord would refuse

    await world.bot.close()  # the buttons outlive the bot: after a restart, the files still come
    await world.restart(config, shared_engine_loader, start_worker=False)
    discord_limits.upload = 25 * 1024 * 1024
    again = await world.bob.click(posted, label="Loop 1")
    assert [file.filename for file in await _attachments(again)] == names


async def test_the_results_say_what_the_seam_figures_say(running, monkeypatch):
    # Thresholds no real seam passes: every candidate's figures now say "not quite seamless".
    monkeypatch.setattr(generation.game_music, "SEAMLESS_FLUX", 0.0)
    monkeypatch.setattr(generation.game_music, "SEAMLESS_JUMP", 0.0)
    world = await running()
    await _loop_job(world, candidates=2)
    await until(world.env, lambda: world.results(), what="the results")
    content = world.results()[0].content
    verdicts = seam_verdicts(world, 1)
    assert not any(verdict.seamless for verdict in verdicts.values())
    assert "loops seamlessly" not in content
    assert_seams_said(content, verdicts, "2 bars at 120 BPM")
    assert "times as much as at its other bar lines" in content
    download = await world.bob.click(world.results()[0], label="Loop 2")
    assert verdicts[2].words in download.response.content  # the figures in full, with its file


async def test_intro_and_layers_need_a_loop_and_an_intro_must_fit_the_limit(running, tmp_path):
    world = await running(make_config(tmp_path, limits={"max_output_seconds": 10.0}), start_worker=False)
    for options, expected in (
        ({"intro": 1}, "intro adds bars"),
        ({"layers": True}, "layers split a loop"),
    ):
        reply = await world.alice.slash(
            world.channel, "restyle", audio=("a.wav", b"RIFF"), prompt="x", **options
        )
        assert (
            reply.ephemeral
            and expected in reply.response.content
            and "add loop:True" in reply.response.content
        )
    reply = await _loop_job(world, intro=5)  # 5 bars of intro (10 s) leave no room for a loop
    text = reply.response.content
    assert reply.ephemeral and "longer than the maximum duration" in text and "\n" not in text
    assert len(world.bot.queue) == 0


async def test_a_database_of_the_previous_schema_gains_intro_and_layers(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:5], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        db.execute(
            "INSERT INTO jobs (channel_id, user_id, prompt, model, candidates, duration_s, base_seed,"
            " seed_path, seed_name, seed_sha256, seed_duration_s, upload_limit, status, created_at,"
            " loop, loop_bars, loop_tempo, loop_generated_s)"
            " VALUES (1, 2, 'old', 'debug', 1, 4.0, 5, 's', 'n', 'h', 4.0, 100, 'done', 0, 1, 2, 120, 6.3)"
        )
    store = await Store.open(path)
    old = await store.job(1)
    assert (old.loop, old.loop_bars, old.loop_intro_bars, old.loop_layers) == (True, 2, 0, False)
    version = await store._one("PRAGMA user_version")
    assert version[0] == len(MIGRATIONS)
    await store.close()
