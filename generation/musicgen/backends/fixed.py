"""Fixed-shape decode steps: buffers kept per shape, and on CUDA one graph per span of cache.

A captured CUDA graph replays fixed kernels on fixed addresses, so it can only be reused over the
very buffers it was captured with. `ShapeCache` keeps one set of decode buffers per shape (rows,
slots, prefix, padding, guidance, sampling: all the step depends on besides contents) and the graphs
captured over them, so every window of a piece, and every later job of the same shape, replays the
same few graphs: a 300 s piece captures one graph per span of its two window shapes (about 7 each),
not one per span per window. The two most recent shapes are kept; older ones are let go. The prefix
is bucketed (`fast.PREFIX_BUCKET`), so prompts of different lengths share a shape too.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

log = logging.getLogger(__name__)

# Cache-length spans one CUDA graph covers: attention reads the whole span, masked past the present.
GRAPH_SPAN = 256
KEPT_SHAPES = 2


class ShapeCache:
    """Decode buffers and captured graphs by shape, least recently used let go first."""

    def __init__(self, kept: int = KEPT_SHAPES) -> None:
        self.kept = kept
        self.states: OrderedDict[tuple, Any] = OrderedDict()
        self.graphs: dict[tuple, dict[int, Any]] = {}
        self.pool = None
        self.allocations = 0  # buffer sets allocated (tests and benchmarks count them)
        self.captures = 0  # steps captured (on the CPU: distinct fixed-span steps first run)
        self.capture_s = 0.0  # seconds spent capturing (warm-up runs included), for benchmarks

    def reuse(self, fresh, allocate):
        """The kept buffers for `fresh`'s shape, refilled with its contents; else `fresh` itself,
        given its cache by `allocate`, and kept."""
        key = fresh.shape_key
        state = self.states.get(key)
        if state is not None:
            self.states.move_to_end(key)
            state.refill(fresh)
            return state
        while len(self.states) >= self.kept:
            old, _ = self.states.popitem(last=False)
            self.graphs.pop(old, None)
        self.allocations += 1
        state = allocate(fresh)
        self.states[key] = state
        self.graphs[key] = {}
        return state

    def clear(self) -> None:
        self.states.clear()
        self.graphs.clear()
        self.pool = None


class CudaGraphs:
    """Captures decode steps as CUDA graphs, on a capture stream of the model's device.

    `torch.cuda.graph` left to itself captures on one stream per process, made on whichever device
    was current at its first use: a model on cuda:1 in a process that first captured on cuda:0
    would capture on the wrong device's stream. Each backend holds one of these for its device.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream: torch.cuda.Stream | None = None

    def capture(self, step: Callable[[], None], pool) -> tuple[Any, Any]:
        """Run `step` once on the capture stream (warm-up), then capture it: `(graph, pool)`."""
        if self.stream is None:
            self.stream = torch.cuda.Stream(device=self.device)
        stream, current = self.stream, torch.cuda.current_stream(self.device)
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            step()
        current.wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=pool, stream=stream):
                step()
        except BaseException:
            self._abandon(graph, current)
            raise
        return graph, graph.pool()

    def _abandon(self, graph, current: torch.cuda.Stream) -> None:
        """After a capture failed part-way: `torch.cuda.graph` skips restoring the thread's stream
        when ending the capture raises, and the capture stream may still be capturing, which makes
        every later launch on it fail. End the capture, restore the stream, drop the graph and the
        stream, and wait for the device, so eager steps (the fallback) can run on it."""
        stream, self.stream = self.stream, None
        with torch.cuda.stream(stream):
            if torch.cuda.is_current_stream_capturing():
                try:
                    graph.capture_end()
                except RuntimeError as exc:  # an invalidated capture ends with an error: expected
                    log.debug("ending a failed capture: %s", exc)
        torch.cuda.set_stream(current)
        try:
            graph.reset()
            torch.cuda.synchronize(self.device)
        except RuntimeError as exc:  # a sticky error: the engine's own recovery decides
            log.warning("the device after a failed graph capture: %s", exc)


class FixedSpanLoop:
    """`_advance` with fixed shapes: one span of cache length per GRAPH_SPAN slots.

    With a capturer (`backend.graphs`: CUDA graphs on CUDA, a stand-in in tests) each span's step
    is captured once per shape and replayed; without (the CPU) the same fixed-shape step simply
    runs, so its arithmetic is checked where no GPU is.
    """

    def __init__(self, backend, state) -> None:
        self.backend = backend
        self.state = state
        self.capturer = backend.graphs
        self.graphs = backend.shapes.graphs.setdefault(state.shape_key, {})

    def advance(self, position: int) -> None:
        state = self.state
        slots = state.tokens.shape[-1] + state.prefix_slots
        span = min(slots, (position + state.prefix_slots) // GRAPH_SPAN * GRAPH_SPAN + GRAPH_SPAN)
        state.step.fill_(position)
        if span not in self.graphs:
            self.backend.shapes.captures += 1
            self.graphs[span] = self._capture(span) if self.capturer is not None else None
        if self.capturer is not None:
            self.graphs[span].replay()
        else:
            self.backend._advance(state, state.step, span)

    def _capture(self, span: int):
        backend, state, shapes = self.backend, self.state, self.backend.shapes
        saved = state.tokens.clone()  # the warm-up runs the step for real: undo its token write
        clock = time.perf_counter()
        try:
            graph, shapes.pool = self.capturer.capture(
                partial(backend._advance, state, state.step, span), shapes.pool
            )
        except BaseException:
            shapes.clear()  # graphs of this shape may be half made: capture them afresh next time
            raise
        state.tokens.copy_(saved)
        shapes.capture_s += time.perf_counter() - clock
        log.debug("captured a decode step for a span of %d slots on %s", span, backend.lm.device)
        return graph
