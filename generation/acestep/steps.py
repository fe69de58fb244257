"""The step-end hook: progress for every job of a batch, cancels, and the planned stop.

diffusers calls `callback_on_step_end(pipe, step, timestep, tensors)` after every denoising step and
stops its loop once the callback sets `pipe._interrupt`. That stop serves two purposes here: every
job of the batch was cancelled, or the last step that hears the source is done (`stop_after`).
The counting itself is every family's (`generation.progress`).
"""

from __future__ import annotations

from generation.progress import StepWatch


class CoverWatch(StepWatch):
    """Counts steps across the pipeline calls of one batch; stops a call where it must."""

    stop_after: int | None = None  # steps done after which the current call stops

    def __call__(self, pipe, step: int, timestep: float, tensors: dict) -> dict:
        self.advance()
        if self.all_cancelled or self.done == self.stop_after:
            pipe._interrupt = True
        return tensors
