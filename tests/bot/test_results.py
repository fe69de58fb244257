"""Posting results: after the interaction expired, under a small upload limit, and the buttons on
them (reroll, remix, lossless)."""

from __future__ import annotations

import pytest

from generation.audio.decode import decode_audio
from tests.bot.conftest import make_config, seed_mp3, until


async def test_results_after_the_interaction_expired_reply_to_the_job(running):
    world = await running(start_worker=False)
    await world.alice.slash(world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="choir")
    await world.env.advance_time(16 * 60)  # the 15-minute token is gone before the job even starts
    await world.bot.start_worker()
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    assert posted.reference is not None and posted.reference.message_id == world.status_of(1).id
    assert len(posted.attachments) == 2
    assert (await world.bot.store.job(1)).result_message_id == posted.id
    (sent,) = [
        r
        for r in world.env.http_requests
        if r.path.startswith("/channels/") and "attachments" in (r.json or {})
    ]
    assert (sent.json["nonce"], sent.json["enforce_nonce"]) == ("restyle-1-1", True)  # Discord drops a repeat


async def test_files_are_fitted_to_the_upload_limit_and_it_is_said(running, discord_limits):
    discord_limits.upload = 150 * 1024  # a server whose limit is 150 KiB
    world = await running()
    await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(20.0)), prompt="lofi", candidates=2
    )
    await until(world.env, lambda: world.results(), what="the results")
    posted = world.results()[0]
    assert "kbps to fit this channel's 150.0 KiB upload limit" in posted.content
    for attachment in posted.attachments:
        data = await attachment.read()
        assert len(data) <= 150 * 1024
        assert decode_audio(data).duration_s == pytest.approx(20.0, abs=0.1)


async def test_lossless_download_reroll_and_remix(running):
    world = await running()
    await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(3.0)), prompt="harp", seed=100
    )
    await until(world.env, lambda: world.results(), what="the first results")
    first = world.results()[0]

    flac = await world.bob.click(first, label="FLAC 2")
    assert flac.ephemeral
    (download,) = flac.response.attachments
    assert download.filename == "restyle-1-2.flac"
    assert decode_audio(await download.read()).source.startswith("flac")

    reroll = await world.bob.click(first, label="Reroll")
    assert "Queued as job #2" in reroll.response.content
    await until(world.env, lambda: len(world.results()) == 2, what="the reroll")
    rerolled = await world.bot.store.job(2)
    assert (rerolled.kind, rerolled.parent_id, rerolled.prompt, rerolled.user_id) == (
        "reroll",
        1,
        "harp",
        world.bob.id,
    )
    assert rerolled.base_seed != 100

    form = await world.alice.click(first, label="Remix")
    assert form.modal is not None
    queued = await world.alice.submit_modal(form, {"candidate": "2", "prompt": "brass band"})
    assert "Queued as job #3" in queued.response.content
    await until(world.env, lambda: len(world.results()) == 3, what="the remix")
    remixed = await world.bot.store.job(3)
    candidates = await world.bot.store.candidates(1)
    assert remixed.kind == "remix" and remixed.prompt == "brass band"
    assert remixed.seed_path == candidates[1].lossless_path


async def test_a_bad_remix_choice_is_refused(running, tmp_path):
    world = await running(make_config(tmp_path))
    await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="harp", candidates=2
    )
    await until(world.env, lambda: world.results(), what="the results")
    for choice in ("7", "²", "x"):  # "²" is a digit to str.isdigit(), and no number to int()
        form = await world.alice.click(world.results()[0], label="Remix")
        refused = await world.alice.submit_modal(form, {"candidate": choice, "prompt": "brass"})
        assert refused.ephemeral and "Pick a candidate from 1 to 2" in refused.response.content, choice
    assert len(world.bot.queue) == 0


async def test_a_lossless_file_that_fits_only_without_its_message_is_refused_in_one_line(
    running, discord_limits
):
    world = await running()
    await world.alice.slash(world.channel, "restyle", audio=("theme.mp3", seed_mp3(2.0)), prompt="harp")
    await until(world.env, lambda: world.results(), what="the results")
    (first, _) = await world.bot.store.candidates(1)
    # The file alone is under the limit; with the message's JSON and the multipart overhead (what
    # Discord's limit covers) it is over.
    discord_limits.upload = (await world.bot.files.size(first.lossless_path)) + 10
    reply = await world.bob.click(world.results()[0], label="FLAC 1")
    assert reply.ephemeral and "upload limit" in reply.response.content
    assert "\n" not in reply.response.content and not reply.response.attachments


async def test_reroll_and_remix_keep_to_limits_lowered_since_the_job_ran(
    running, tmp_path, shared_engine_loader
):
    world = await running()
    await world.alice.slash(
        world.channel, "restyle", audio=("theme.mp3", seed_mp3(6.0)), prompt="harp", candidates=2
    )
    await until(world.env, lambda: world.results(), what="the results")
    lowered = make_config(
        tmp_path, limits={"max_output_seconds": 4, "max_candidates": 1, "default_candidates": 1}
    )
    again = await world.restart(lowered, shared_engine_loader)
    reroll = await world.bob.click(world.results()[0], label="Reroll")
    form = await world.alice.click(world.results()[0], label="Remix")
    remix = await world.alice.submit_modal(form, {"candidate": "1", "prompt": "brass band"})
    for reply in (reroll, remix):
        text = reply.response.content
        assert reply.ephemeral and "Queued" not in text and "\n" not in text, text
    assert len(again.queue) == 0
