"""The local engine: one checker in this process, batches checked in order, each batch's files read while the
batch before it is checked."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..check import Checker
from ..run_folder import run_record
from .base import BatchResult, Engine, Job, check_read
from .reading import StudyReader


class LocalEngine(Engine):
    """Loads the model here, once, and checks every batch in this process."""

    checker: Checker | None = None

    def start(self) -> dict:
        self.checker = self.settings.load_checker()
        return run_record(self.checker, self.settings.spec)

    def run(self, batches: Iterable[Sequence[Job]]) -> Iterator[BatchResult]:
        with StudyReader() as reader:
            waiting = None  # the batch read ahead, checked once the one before it is written
            for batch in batches:
                readings = reader.read(batch)
                if waiting is not None:
                    yield check_read(self.checker, waiting)
                waiting = readings
            if waiting is not None:
                yield check_read(self.checker, waiting)
