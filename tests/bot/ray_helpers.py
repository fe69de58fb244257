"""What the Ray tests send to their workers: importable without pytest, picklable by value."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import ModelsSection
from bot.worker.loading import EngineLoader
from generation.interface import Engine


@dataclass(frozen=True)
class HoldingLoader:
    """The configured engines, but a job holds at its first step while a file named after its
    prompt exists in `holds`, until the file goes or the job is cancelled. A file, because the
    engine runs in a worker process: the test and the worker share nothing else."""

    models: ModelsSection
    holds: Path

    def __call__(self, model: str) -> Engine:
        engine = EngineLoader(self.models)(model)
        generate_many = engine.generate_many

        def held(jobs, reporters, tokens):
            holding = [
                self._hold(job.prompt, r, t) for job, r, t in zip(jobs, reporters, tokens, strict=True)
            ]
            return generate_many(jobs, holding, tokens)

        engine.generate_many = held
        return engine

    def _hold(self, prompt: str, report, token) -> Callable[[int, int], None]:
        def hold(done: int, total: int) -> None:
            report(done, total)
            while (self.holds / prompt).exists() and not token.cancelled:
                time.sleep(0.05)

        return hold

    def hold(self, prompt: str) -> None:
        self.holds.mkdir(parents=True, exist_ok=True)
        (self.holds / prompt).touch()

    def release(self, prompt: str) -> None:
        (self.holds / prompt).unlink(missing_ok=True)
