"""Counting the steps of one batch: progress for each of its jobs, and the cancels among them.

Every family's engine runs a batch of jobs as one and counts its steps here. A job whose token is
cancelled stops hearing of progress at once; the batch itself stops once every job is cancelled
(how it stops is the family's business: MusicGen raises, ACE-Step interrupts diffusers' loop).
Steps may be counted in shares (a batch run in parts after running out of memory counts each
part as its share of a step), so progress reaches the total once and never goes back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from generation.interface import CancelToken, ProgressFn


class StepWatch:
    def __init__(
        self, total: int, on_progress: Sequence[ProgressFn | None], cancels: Sequence[CancelToken | None]
    ) -> None:
        self.total = total
        self.done = 0.0
        self.reported = 0
        self.on_progress = list(on_progress)
        self.cancels = list(cancels)
        self.stopped = [False] * len(self.cancels)

    @property
    def all_cancelled(self) -> bool:
        return all(self.stopped)

    def check_cancels(self) -> bool:
        """Notice new cancels; True once every job is cancelled."""
        for index, token in enumerate(self.cancels):
            if token is not None and token.cancelled:
                self.stopped[index] = True
        return self.all_cancelled

    def advance(self, share: float = 1.0) -> None:
        """Count a step (or a share of one) and tell the jobs still running, in whole steps."""
        self.done += share
        if self.check_cancels():
            return
        done = min(self.total, math.floor(self.done + 1e-9))  # shares sum to whole steps
        if done <= self.reported:
            return
        self.reported = done
        for index, report in enumerate(self.on_progress):
            if report is not None and not self.stopped[index]:
                report(done, self.total)
