"""The graph-ready loop on the CPU: buffers kept per shape across windows and jobs, the thread's
device set before streams and graphs, and progress that trails the device by a bounded lag."""

from __future__ import annotations

import pytest
import torch

from generation.errors import GenerationCancelled
from generation.interface import CancelToken
from generation.musicgen.backends.device import StepLag, device_scope
from generation.musicgen.backends.fast import FastBackend
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.params import SamplingParams
from tests.audio_factory import melody

TUNE = melody([261.6, 329.6, 392.0, 329.6], 2.5, 32_000)


def _fixed(lm) -> MusicGenEngine:
    engine = MusicGenEngine(lm, "fast")
    engine.backend = FastBackend(lm, fixed_spans=True)
    return engine


def _windows(backend, prompt: str, seed: int) -> list[torch.Tensor]:
    """Three short windows the way the engine chains them: 300 frames, 300 with 100 carried, 200."""
    from generation.audio.chroma import conditioning_chroma
    from generation.musicgen.backends import WindowBatch
    from generation.musicgen.windows import Window

    chroma = conditioning_chroma(TUNE, offset_s=0.0, single_window=True, frames=235)[None]
    outputs, carried = [], None
    for window in (Window(0, 0, 0, 300), Window(1, 200, 100, 300), Window(2, 400, 100, 200)):
        batch = WindowBatch([prompt], chroma, carried, [seed], window, SamplingParams(top_k=50))
        codes = backend.generate_window(batch, lambda: None)
        outputs.append(codes)
        carried = codes[:, :, -100:]
    return outputs


def test_windows_and_jobs_of_one_shape_reuse_buffers_and_steps(debug_lm):
    fixed = FastBackend(debug_lm, fixed_spans=True)
    codes = _windows(fixed, "orchestral", 3)
    shapes = fixed.shapes
    assert shapes.allocations == 2  # two windows of 300 frames share one set of buffers
    captured = shapes.captures
    assert 0 < captured <= 2 * 3  # one step per span of 256 slots per shape, not per window
    _windows(fixed, "symphonies", 4)  # another job, as long a prompt: the same shapes again
    assert (shapes.allocations, shapes.captures) == (2, captured)
    eager = _windows(FastBackend(debug_lm, fixed_spans=False), "orchestral", 3)
    assert all(torch.equal(a, b) for a, b in zip(codes, eager, strict=True))


class FakeGraphs:
    """Stands in for `CudaGraphs` where no GPU is: a capture runs the step once (the real one's
    warm-up) and keeps it; a replay runs it again. Counts both."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.captured = self.replays = 0
        self.fail_at = fail_at

    def capture(self, step, pool):
        if self.captured + 1 == self.fail_at:
            raise RuntimeError("operation not permitted when stream is capturing")
        step()
        self.captured += 1
        return _Replay(self, step), pool


class _Replay:
    def __init__(self, graphs: FakeGraphs, step) -> None:
        self.graphs, self.step = graphs, step

    def replay(self) -> None:
        self.graphs.replays += 1
        self.step()


def test_a_prompt_of_another_length_replays_the_captured_graphs(debug_lm):
    # The shape once held the prefix's exact length (235 + the prompt's tokens; the debug tokenizer
    # reads characters): every new prompt length allocated a cache and captured every span again.
    backend = FastBackend(debug_lm, fixed_spans=True)
    backend.graphs = graphs = FakeGraphs()
    short = _windows(backend, "lofi", 3)
    captured = graphs.captured
    assert captured == backend.shapes.captures > 0 and graphs.replays > 0
    long = _windows(backend, "lofi with tape hiss", 4)
    assert (graphs.captured, backend.shapes.allocations) == (captured, 2)
    eager = FastBackend(debug_lm, fixed_spans=False)
    for prompt, seed, codes in (("lofi", 3, short), ("lofi with tape hiss", 4, long)):
        assert all(torch.equal(a, b) for a, b in zip(codes, _windows(eager, prompt, seed), strict=True))


def test_a_failed_capture_drops_the_shape_and_the_job_still_finishes(debug_lm, rising_melody):
    engine = _fixed(debug_lm)
    engine.backend.graphs = FakeGraphs(fail_at=2)
    failed = engine.backend
    codes = engine.generate_codes(melody_job("lofi", rising_melody, (5,), 8.0))
    assert codes.shape == (1, 4, 400) and (codes >= 0).all()
    assert engine.backend.name == "reference"  # the engine's own fallback took over
    assert not failed.shapes.states and not failed.shapes.graphs  # nothing half captured is kept


def test_only_the_latest_shapes_are_kept(debug_lm, rising_melody):
    engine = _fixed(debug_lm)
    for seconds in (1.0, 2.0, 3.0):
        engine.generate_codes(melody_job("a", rising_melody, (1,), seconds))
    assert len(engine.backend.shapes.states) == 2 and engine.backend.shapes.allocations == 3


def test_the_models_device_is_made_current_for_the_generating_thread():
    scope = device_scope(torch.device("cuda:1"))
    assert isinstance(scope, torch.cuda.device) and scope.idx == 1
    assert not isinstance(device_scope(torch.device("cpu")), torch.cuda.device)


class FakeEvent:
    """Stands in for torch.cuda.Event: the 'device' finishes a step when the host waits on it."""

    log: list[str]

    def record(self) -> None:
        self.log.append("record")

    def synchronize(self) -> None:
        self.log.append("wait")


def _fake_events() -> tuple[type, list[str]]:
    log: list[str] = []
    return type("Event", (FakeEvent,), {"log": log}), log


def test_progress_trails_the_queue_by_less_than_three_event_intervals():
    event, log = _fake_events()
    reported: list[int] = []
    lag = StepLag(torch.device("cuda"), lambda: reported.append(len(reported) + 1), every=4, make_event=event)
    for queued in range(1, 31):
        lag.step_queued()
        assert queued - 3 * 4 < len(reported) <= queued
    lag.finish()
    assert reported == list(range(1, 31))
    assert log.count("record") == 30 // 4 + 1 and log.count("wait") == log.count("record")


def test_on_the_cpu_every_step_is_reported_as_it_finishes():
    reported: list[int] = []
    lag = StepLag(torch.device("cpu"), lambda: reported.append(1))
    for queued in range(1, 6):
        lag.step_queued()
        assert len(reported) == queued


def test_cancel_lands_within_the_lag_on_the_real_loop(debug_lm, rising_melody):
    engine = _fixed(debug_lm)
    engine.backend.make_event, _ = _fake_events()
    engine.backend.lag_steps = 4
    token, seen, queued = CancelToken(), [], []
    advance = engine.backend._advance

    def counting(*args, **kwargs):
        queued.append(1)
        return advance(*args, **kwargs)

    engine.backend._advance = counting

    def on_progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 20:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        engine.generate_codes(melody_job("lofi", rising_melody, (1,), 3.0), on_progress, token)
    assert seen[-1] == 20 and len(queued) < 20 + 3 * 4


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_graphs_on_a_second_gpu_match_eager_steps(rising_melody):
    from generation.musicgen.models import load_model

    lm = load_model("debug", device="cuda:1", dtype="float32")
    job = melody_job("music box", rising_melody, (61, 62), 12.0)
    eager = MusicGenEngine(lm, "fast")
    eager.backend = FastBackend(lm, fixed_spans=False)
    graphs = MusicGenEngine(lm, "fast")
    codes = graphs.generate_codes(job)
    assert (codes >= 0).all() and torch.equal(codes, eager.generate_codes(job))
    assert graphs.generate(job).shape == (2, 1, 12 * 32_000)
