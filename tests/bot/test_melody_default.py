"""The bot's default path keeps the melody: /restyle with stems on (the default) and nothing but a
seed number set gives different conditioning and different audio for two different tunes.

The debug separator once turned every seed into one constant pitch class, so two melodies gave the
same audio and every stems-on bot test proved nothing about the melody.
"""

from __future__ import annotations

import numpy as np

import generation.musicgen.engine as engine_module
from generation.audio.chroma import chroma
from generation.audio.decode import decode_audio
from tests.audio_factory import melody
from tests.bot.conftest import seed_mp3, until

TUNES = {"rising": (261.6, 329.6, 392.0, 523.3), "falling": (880.0, 698.5, 587.3, 493.9)}


async def test_two_melodies_give_different_conditioning_and_audio_by_default(running, monkeypatch):
    seen: list[np.ndarray] = []
    real = engine_module.conditioning_chroma

    def spy(*args, **kwargs):  # the real function runs; what it gave the decoder is kept
        frames = real(*args, **kwargs)
        seen.append(frames.numpy().copy())
        return frames

    monkeypatch.setattr(engine_module, "conditioning_chroma", spy)
    world = await running()
    assert world.bot.config.models.stems  # the default under test
    for count, notes in enumerate(TUNES.values(), start=1):
        audio = ("theme.mp3", seed_mp3(3.0, notes))
        await world.alice.slash(world.channel, "restyle", audio=audio, prompt="lofi", candidates=1, seed=7)
        await until(world.env, lambda count=count: len(world.results()) == count, what="the results")
    posted = [decode_audio(await m.attachments[0].read()).samples for m in world.results()]
    assert len(seen) == 2 and not np.array_equal(seen[0], seen[1])
    assert not np.array_equal(posted[0], posted[1])
    for notes, frames in zip(TUNES.values(), seen, strict=True):
        expected = set(chroma(melody(list(notes), 0.75, 32_000)).argmax(-1).tolist())
        assert set(frames.argmax(-1).tolist()) == expected
