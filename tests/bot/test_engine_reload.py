"""The worker's engines: one marked broken by a device error is loaded afresh before the next job."""

from __future__ import annotations

from bot.worker.runner import Engines
from generation.musicgen.engine import MusicGenEngine


def test_a_broken_engine_is_reloaded_and_a_sound_one_kept(debug_lm):
    loads: list[MusicGenEngine] = []

    def load(model: str) -> MusicGenEngine:
        loads.append(MusicGenEngine(debug_lm, "fast"))
        return loads[-1]

    engines = Engines(load)
    first = engines.get("debug")
    assert engines.get("debug") is first and len(loads) == 1
    first.broken = True
    second = engines.get("debug")
    assert second is not first and not second.broken and len(loads) == 2
