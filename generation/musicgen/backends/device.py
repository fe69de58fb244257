"""The generating thread's device, and how far the host may run ahead of it.

CUDA streams and graph capture use the calling thread's current device, cuda:0 unless set: a model
on cuda:1 would capture an empty graph. `device_scope` makes the model's device current for the
thread that generates.

Graph replays are queued without waiting, so without a bound the host runs far ahead of the GPU:
progress would count queued steps and a cancel would land seconds late. `StepLag` records an event
every `every` steps and, once step n is queued, waits for the events of steps up to n - 2 * every:
progress reports finished steps only, and the host is less than 3 * every steps ahead (a cancel
lands within that many steps), with one wait per `every` steps rather than a sync per step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

LAG_STEPS = 8


def device_scope(device: torch.device) -> AbstractContextManager:
    """Make `device` the thread's current CUDA device for the block (nothing elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    return nullcontext()


class StepLag:
    """Reports each finished step once, in order; on CUDA fewer than `3 * every` steps late."""

    def __init__(
        self,
        device: torch.device,
        on_step: Callable[[], None],
        every: int = LAG_STEPS,
        make_event: Callable[[], object] | None = None,
    ) -> None:
        self.on_step = on_step
        self.every = every
        if make_event is None and device.type == "cuda":
            make_event = torch.cuda.Event
        self.make_event = make_event  # None: the host waits on every step anyway (the CPU)
        self.queued = 0
        self.reported = 0
        self.events: deque[tuple[int, object]] = deque()

    def step_queued(self) -> None:
        self.queued += 1
        if self.make_event is None:
            self._report(self.queued)
            return
        if self.queued % self.every == 0:
            event = self.make_event()
            event.record()
            self.events.append((self.queued, event))
        while self.events and self.events[0][0] <= self.queued - 2 * self.every:
            self._wait_for_oldest()

    def finish(self) -> None:
        """Wait for the device to finish every queued step and report them."""
        while self.events:
            self._wait_for_oldest()
        if self.make_event is not None and self.reported < self.queued:
            event = self.make_event()
            event.record()
            event.synchronize()
        self._report(self.queued)

    def _wait_for_oldest(self) -> None:
        step, event = self.events.popleft()
        event.synchronize()
        self._report(step)

    def _report(self, step: int) -> None:
        while self.reported < step:
            self.reported += 1
            self.on_step()
