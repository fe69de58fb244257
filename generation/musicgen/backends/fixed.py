"""Fixed-shape decode steps: buffers kept per shape, and on CUDA one graph per span of cache.

A captured CUDA graph replays fixed kernels on fixed addresses, so it can only be reused over the
very buffers it was captured with. `ShapeCache` keeps one set of decode buffers per shape (rows,
slots, prefix, padding, guidance, sampling: all the step depends on besides contents) and the graphs
captured over them, so every window of a piece, and every later job of the same shape, replays the
same few graphs: a 300 s piece captures one graph per span of its two window shapes (about 7 each),
not one per span per window. The two most recent shapes are kept; older ones are let go.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
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


class FixedSpanLoop:
    """`_advance` with fixed shapes: one span of cache length per GRAPH_SPAN slots.

    On CUDA each span's step is captured once per shape and replayed; elsewhere (tests) the same
    fixed-shape step simply runs, so its arithmetic is checked where no GPU is.
    """

    def __init__(self, backend, state) -> None:
        self.backend = backend
        self.state = state
        self.device = backend.lm.device
        self.capture = self.device.type == "cuda"
        self.graphs = backend.shapes.graphs.setdefault(state.shape_key, {})

    def advance(self, position: int) -> None:
        state = self.state
        slots = state.tokens.shape[-1] + state.prefix_slots
        span = min(slots, (position + state.prefix_slots) // GRAPH_SPAN * GRAPH_SPAN + GRAPH_SPAN)
        state.step.fill_(position)
        if span not in self.graphs:
            self.backend.shapes.captures += 1
            self.graphs[span] = self._capture(span) if self.capture else None
        if self.capture:
            self.graphs[span].replay()
        else:
            self.backend._advance(state, state.step, span)

    def _capture(self, span: int):
        backend, state, device = self.backend, self.state, self.device
        saved = state.tokens.clone()  # the warm-up runs the step for real: undo its token write
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            backend._advance(state, state.step, span)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=backend.shapes.pool):
            backend._advance(state, state.step, span)
        backend.shapes.pool = graph.pool()
        state.tokens.copy_(saved)
        log.debug("captured a decode step for a span of %d slots on %s", span, device)
        return graph
