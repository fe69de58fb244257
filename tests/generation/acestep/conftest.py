"""The debug ACE-Step pipeline (built once, in-process, no network) and stereo 48 kHz sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.audio_factory import melody

RATE = 48_000
SECONDS = 1.0  # the debug model takes short pieces; the real one starts at 10 s


def stereo(notes_hz: list[float]) -> np.ndarray:
    tune = melody(notes_hz, 0.25, RATE)
    return np.stack([tune, 0.8 * tune])


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """The debug pipeline's layers are a few channels wide: a second thread only adds hand-offs, and
    on a busy machine those cost more than the work (8x here with other jobs running)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ace_engine(debug_ace):
    from generation.acestep.engine import AceStepEngine

    return AceStepEngine(debug_ace)


@pytest.fixture(scope="session")
def rising() -> np.ndarray:
    """C major scale up, 2 s of stereo (longer than SECONDS: it is cut) at 48 kHz."""
    return stereo([261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3])


@pytest.fixture(scope="session")
def falling() -> np.ndarray:
    """A different tune of the same length: A minor arpeggio down."""
    return stereo([880.0, 659.3, 523.3, 440.0, 329.6, 261.6, 220.0, 164.8])
