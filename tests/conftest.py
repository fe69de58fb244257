"""Shared fixtures: the debug model (built once, in-process, no network) and test melodies."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

# Nothing in the tests may reach the network, and a half-configured hub must not try.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from generation.threads import apply_threads, plan_threads
from tests.audio_factory import melody

# The product's thread plan, not torch's one-per-core default: beside other busy processes (a shared
# CI machine, subprocesses of the tests themselves) the default ran a 3 s debug job in 15-21 s
# instead of 0.4-0.8 s here.
apply_threads(plan_threads())

MODEL_RATE = 32_000


@pytest.fixture(autouse=True)
def _logging_handlers_as_found():
    """The command line and the bot take over the process's logging, with a handler on the stderr
    of the moment: a test's capture. Left behind, it would write a later log record (an asyncio
    task of an earlier test collected mid-test, say) to that closed capture, and logging would
    print "--- Logging error ---" with a traceback into the next test's stderr."""
    root = logging.getLogger()
    found = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in found and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()


@pytest.fixture(scope="session")
def debug_lm():
    from generation.musicgen.models import load_model

    return load_model("debug", device="cpu")


@pytest.fixture(scope="session")
def debug_ace():
    """ACE-Step's debug pipeline (the bot's tests and the family's share it)."""
    from generation.acestep.loading import load_acestep

    return load_acestep("debug-ace", device="cpu")


@pytest.fixture(scope="session")
def fast_engine(debug_lm):
    from generation.musicgen.engine import MusicGenEngine

    return MusicGenEngine(debug_lm, backend="fast")


@pytest.fixture(scope="session")
def reference_engine(debug_lm):
    from generation.musicgen.engine import MusicGenEngine

    return MusicGenEngine(debug_lm, backend="reference")


@pytest.fixture(scope="session")
def rising_melody() -> np.ndarray:
    """C major scale up, at the model's rate: 4 s."""
    return melody([261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3], 0.5, MODEL_RATE)


@pytest.fixture(scope="session")
def falling_melody() -> np.ndarray:
    """A different tune of the same length: A minor arpeggio down."""
    return melody([880.0, 659.3, 523.3, 440.0, 329.6, 261.6, 220.0, 164.8], 0.5, MODEL_RATE)


@pytest.fixture
def online(monkeypatch):
    """The hub client as it is on a machine with a network (the test session runs offline)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def point_at(url: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )

    return point_at
