"""The local engine: one checker in this process, batches checked in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..check import Checker
from ..run_folder import run_record
from .base import BatchResult, Engine, Job, check_jobs


class LocalEngine(Engine):
    """Loads the model here, once, and checks every batch in this process."""

    checker: Checker | None = None

    def start(self) -> dict:
        self.checker = self.settings.load_checker()
        return run_record(self.checker, self.settings.spec)

    def run(self, batches: Iterable[Sequence[Job]]) -> Iterator[BatchResult]:
        for batch in batches:
            yield check_jobs(self.checker, batch)
