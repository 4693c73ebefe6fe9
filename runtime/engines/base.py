"""The engine interface: where an evaluation's checks run. `quadrant evaluate` has one writing loop; an engine
only turns batches of manifest rows into verdict records, in whatever order its batches finish.

An engine is built from what the user asked for (ModelSpec, CheckOptions), never from a loaded
model, so that each worker of a distributed engine loads the model itself, once, from the same settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import InputError
from ..manifest import ManifestRow
from ..verdict import Verdict

if TYPE_CHECKING:  # the model stack (torch) loads where checks run, not where results are written
    from ..check import Checker, CheckOptions, CheckRequest
    from ..loading import ModelSpec
    from .reading import Reading


class SwapImage(NamedTuple):
    """Another study's image for `--ablation swap`, named by its content hash."""

    path: Path
    sha256: str


class Partner(NamedTuple):
    """Another study of the manifest for a counterfactual reference (`--reference opposite` or `same-label`):
    its image, named by content, its study id and its label for the question."""

    path: Path
    sha256: str
    study_id: str
    label: str


class Job(NamedTuple):
    """One manifest row to check, with its swap image when the ablation is `swap`, and the study it is compared
    with when the reference is another labelled study."""

    row: ManifestRow
    swap: SwapImage | None = None
    partner: Partner | None = None


class BatchResult(NamedTuple):
    """What one batch gave: verdict records for samples.jsonl, error records for errors.jsonl."""

    samples: list[dict]
    errors: list[dict]
    rows: int


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to build the same checker as every other worker."""

    spec: ModelSpec  # its backend too: each worker's load chooses the same one from the same source
    options: CheckOptions

    def load_checker(self) -> Checker:
        """Load the model and build the checker these settings describe (each worker does this once)."""
        from ..backends import load_model
        from ..check import Checker

        return Checker(load_model(self.spec), options=self.options).prepare()


class Engine(ABC):
    """Loads the model (once per worker) and checks batches; used as a context manager."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    def start(self) -> dict:
        """Load the model wherever it runs; return the run record (run_folder.run_record) it was loaded with."""

    @abstractmethod
    def run(self, batches: Iterable[Sequence[Job]]) -> Iterator[BatchResult]:
        """Every batch's result, each as soon as it is finished (not necessarily in order)."""

    def close(self) -> None:
        """Release workers; called however the run ends."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_jobs(checker: Checker, jobs: Sequence[Job]) -> BatchResult:
    """Read a batch's files and check it on one checker (what a caller with a single batch wants)."""
    from .reading import StudyReader

    with StudyReader() as reader:
        return check_read(checker, reader.read(jobs))


def check_read(checker: Checker, readings: Sequence[Reading]) -> BatchResult:
    """Check a batch whose files are being read: rows that cannot be checked become error records, the rest one
    scoring call. The same function runs in the local engine and in every Ray worker, so both write the same
    lines."""
    loaded = []  # per job: (job, its request or the InputError that stopped it, its mask)
    for reading in readings:
        try:
            request = reading.request()
            loaded.append((reading.job, request, _mask(checker, reading.job.row, request)))
        except InputError as exc:
            loaded.append((reading.job, exc, None))
    checked = iter(checker.check_each([r for _, r, _ in loaded if not isinstance(r, InputError)]))
    samples, errors = [], []
    for job, request, mask in loaded:
        outcome = request if isinstance(request, InputError) else next(checked)
        if isinstance(outcome, InputError):
            errors.append({"study_id": job.row.study_id, "image": str(job.row.image), "error": str(outcome)})
        else:
            samples.append(_with_pointing(_with_swap_hash(outcome, job.swap).to_json(), mask))
    return BatchResult(samples, errors, len(readings))


def _mask(checker: Checker, row: ManifestRow, request: CheckRequest):
    """The row's finding mask at the study's size, where it has one and maps are made (the pointing game)."""
    if row.mask is None or checker.options.evidence is None:
        return None
    from ..evidence import load_mask

    return load_mask(row.mask, request.study.width, request.study.height)


def _with_pointing(record: dict, mask) -> dict:
    """The evidence map's pointing game against the row's mask, inside the record's `evidence`."""
    if mask is not None:
        from ..evidence import pointing

        record["evidence"]["pointing"] = pointing(record["evidence"], mask)
    return record


def _with_swap_hash(verdict: Verdict, swap: SwapImage | None) -> Verdict:
    """Record which study's image the swap ablation used, on every ablated reading."""
    if swap is None:
        return verdict
    text_only_all = verdict.text_only_all
    if text_only_all is not None:
        text_only_all = [replace(t, image_sha256=swap.sha256) for t in text_only_all]
    return replace(verdict, text_only=replace(verdict.text_only, image_sha256=swap.sha256),
                   text_only_all=text_only_all)
