"""Fixtures for the command line's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if anything loads a model: refusals must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr("generation.musicgen.models.load_model", refuse)
    monkeypatch.setattr("generation.acestep.loading.load_acestep", refuse)
