"""The step-end hook: progress for every job of a batch, cancels, and the planned stop.

diffusers calls `callback_on_step_end(pipe, step, timestep, tensors)` after every denoising step and
stops its loop once the callback sets `pipe._interrupt`. That stop serves two purposes here: every
job of the batch was cancelled, or the last step that hears the source is done (`stop_after`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

ProgressFn = Callable[[int, int], None]


class StepWatch:
    """Counts steps across the pipeline calls of one batch; reports progress, notices cancels."""

    def __init__(self, total: int, on_progress: Sequence[ProgressFn | None], cancels: Sequence) -> None:
        self.total = total
        self.done = 0
        self.on_progress = list(on_progress)
        self.cancels = list(cancels)
        self.stopped = [False] * len(self.cancels)
        self.stop_after: int | None = None  # steps done after which the current call stops

    @property
    def all_cancelled(self) -> bool:
        return all(self.stopped)

    def check_cancels(self) -> bool:
        for index, token in enumerate(self.cancels):
            if token is not None and token.cancelled:
                self.stopped[index] = True
        return self.all_cancelled

    def __call__(self, pipe, step: int, timestep: float, tensors: dict) -> dict:
        self.done += 1
        if self.check_cancels() or self.done == self.stop_after:
            pipe._interrupt = True
        if not self.all_cancelled:
            for index, report in enumerate(self.on_progress):
                if report is not None and not self.stopped[index]:
                    report(self.done, self.total)
        return tensors
