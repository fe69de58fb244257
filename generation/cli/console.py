"""What `restyle` shows while it works: one line per phase, and a progress bar for generation.

The bar knows its total from the start (the steps of every window) and smooths its rate over many
steps, so the time left does not swing with each window's first, slower steps. Phases that take no
steps (decoding the seed, separating stems, decoding audio, writing) say what runs while they run
(on a terminal) and how long they took once done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# tqdm's default (0.3) follows the latest steps: a window's slow prefill swings the ETA by minutes.
ETA_SMOOTHING = 0.05
CLEAR_LINE = "\r\033[K"


class Console:
    """Phase lines and bars on stderr, kept clear of each other."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr

    def say(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"{self.label}: {text}", file=self.stream)

    def result(self, text: str) -> None:
        """A finished file: on stdout, for scripts to read."""
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A line once the phase is done; on a terminal, a transient one while it runs. A phase
        that fails leaves nothing behind, so a refusal stays the one line it is."""
        started = time.perf_counter()
        live = self.stream.isatty()
        if live:
            self.stream.write(f"{self.label}: {name}...\r")
            self.stream.flush()
        try:
            yield
        finally:
            if live:
                self.stream.write(CLEAR_LINE)
        self.say(f"{name}: {time.perf_counter() - started:.1f} s")

    @contextmanager
    def steps(self, total: int) -> Iterator[Callable[[int, int], None]]:
        """A bar for `total` generation steps; yields the engine's progress callback."""
        from tqdm import tqdm

        with tqdm(
            total=total,
            desc=f"{self.label}: generating",
            unit="step",
            dynamic_ncols=True,
            smoothing=ETA_SMOOTHING,
            file=self.stream,
        ) as bar:

            def advance(done: int, _total: int) -> None:
                bar.update(done - bar.n)

            yield advance
