"""The local engine: one checker in this process, batches checked in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..check import Checker
from ..loading import load_model
from ..run_folder import run_record
from .base import BatchResult, Engine, Job, check_jobs


class LocalEngine(Engine):
    """Loads the model here, once, and checks every batch in this process."""

    checker: Checker | None = None

    def start(self) -> dict:
        settings = self.settings
        self.checker = Checker(load_model(settings.spec), backend=settings.backend, options=settings.options)
        return run_record(self.checker, settings.spec)

    def run(self, batches: Iterable[Sequence[Job]]) -> Iterator[BatchResult]:
        for batch in batches:
            yield check_jobs(self.checker, batch)
