"""Failures injected at a real step of the real loop: one decoder layer of the debug model raises
the way a GPU would, and the engine recovers where it can and says so where it cannot."""

from __future__ import annotations

import pytest
import torch

from generation.errors import DeviceFailedError
from generation.musicgen.engine import MusicGenEngine, melody_job
from generation.musicgen.models import load_model


@pytest.fixture
def lm():
    return load_model("debug", device="cpu")  # its own copy: the tests patch a layer


def _fail_in_layer(lm, monkeypatch, error, when) -> list[int]:
    """Make the second layer's fc1 raise `error` on the calls where `when(call, rows)` holds."""
    fc1 = lm.model.decoder.model.decoder.layers[1].fc1
    calls = [0]
    forward = fc1.forward

    def failing(hidden):
        calls[0] += 1
        if when(calls[0], hidden.shape[0]):
            raise error
        return forward(hidden)

    monkeypatch.setattr(fc1, "forward", failing)
    return calls


def _progress(engine, jobs):
    reports = [[] for _ in jobs]
    hooks = [lambda d, t, r=r: r.append(d) for r in reports]
    return engine.generate_latents(jobs, hooks, [None] * len(jobs)), reports


def test_out_of_memory_retries_with_fewer_rows_and_changes_nothing(lm, debug_lm, rising_melody, monkeypatch):
    job = melody_job("harp", rising_melody, (1, 2, 3), 2.0)
    expected = MusicGenEngine(debug_lm, "fast").generate_codes(job)
    # More than one candidate (two rows with guidance) at once does not fit.
    _fail_in_layer(lm, monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), lambda n, rows: rows > 2)
    engine = MusicGenEngine(lm, "fast")
    (codes,), (reports,) = _progress(engine, [job])
    assert torch.equal(codes, expected)
    assert engine.backend.name == "fast" and not engine.broken
    total = engine.total_steps(2.0)
    assert reports[-1] == total and reports == sorted(set(reports))


def test_out_of_memory_for_one_candidate_fails_the_job_clearly(lm, rising_melody, monkeypatch):
    _fail_in_layer(lm, monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), lambda n, rows: True)
    engine = MusicGenEngine(lm, "fast")
    with pytest.raises(DeviceFailedError, match="out of memory"):
        engine.generate_codes(melody_job("harp", rising_melody, (1,), 1.0))
    assert not engine.broken


def test_a_sticky_device_error_fails_the_job_and_marks_the_engine_broken(lm, rising_melody, monkeypatch):
    error = RuntimeError("CUDA error: device-side assert triggered")
    _fail_in_layer(lm, monkeypatch, error, lambda n, rows: n >= 30)
    engine = MusicGenEngine(lm, "fast")
    with pytest.raises(DeviceFailedError, match="unrecoverable"):
        engine.generate_codes(melody_job("harp", rising_melody, (1, 2), 1.0))
    assert engine.broken and engine.backend.name == "fast"  # no silent switch to another backend


def test_another_failure_falls_back_to_generate_for_each_job_of_a_mixed_batch(
    lm, debug_lm, rising_melody, falling_melody, monkeypatch
):
    first = melody_job("serene ambient piano", rising_melody, (1, 2), 2.0)
    second = melody_job("a much longer prompt: heroic brass with timpani", falling_melody, (3,), 2.0)
    reference = MusicGenEngine(debug_lm, "reference")
    expected = [reference.generate_codes(first), reference.generate_codes(second)]
    _fail_in_layer(lm, monkeypatch, RuntimeError("graph capture is not supported"), lambda n, rows: n == 40)
    engine = MusicGenEngine(lm, "fast")
    outcomes, reports = _progress(engine, [first, second])
    assert engine.backend.name == "reference" and not engine.broken
    assert all(torch.equal(got, want) for got, want in zip(outcomes, expected, strict=True))
    assert all(r[-1] == engine.total_steps(2.0) and r == sorted(set(r)) for r in reports)
