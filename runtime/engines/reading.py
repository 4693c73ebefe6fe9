"""How an evaluation's study files are read: on a few threads, ahead of their checks, each file once while its
rows come.

A manifest built from MIMIC-CXR or PadChest asks every labelled finding of a film in consecutive rows, and
decoding a full-size film (a 2,048 x 2,500 DICOM's pixels and windowing: 55-67 ms; a 2,544 x 3,056 JPEG: 67-87 ms)
costs more than the check of each later question, which reuses the model's reading of the same picture. So a
batch's distinct files are read once each, on reader threads (decoding is pydicom's, numpy's and Pillow's C code,
which let other threads run), and a file of the batch before is not read again. The local engine reads the next
batch while the model checks this one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..images import Study, load_study

if TYPE_CHECKING:
    from ..check import CheckRequest
    from .base import Job

#: threads reading study files at once: enough to keep a batch's decoding off the checks' critical path
READERS = min(4, os.cpu_count() or 1)

_Key = tuple[str, int | None]  # a study file and its frame


@dataclass(frozen=True)
class Reading:
    """A job and its files as they are read: its study, and the swap ablation's or the counterfactual's study."""

    job: Job
    study: Future[Study]
    swap_study: Future[Study] | None
    partner_study: Future[Study] | None

    def request(self) -> CheckRequest:
        """The job's check, once its files are read; a file that cannot be read raises its InputError here."""
        from ..check import CheckRequest, OtherStudy

        row, partner = self.job.row, self.job.partner
        swap = None if self.swap_study is None else self.swap_study.result().image
        other = None if partner is None else OtherStudy(self.partner_study.result(), partner.study_id, partner.label)
        return CheckRequest(
            study=self.study.result(), question=row.question, paraphrases=row.paraphrases, label=row.label,
            study_id=row.study_id, swap_image=swap, extra=row.extra, other_study=other,
        )


class StudyReader:
    """Reads batches' study files on READERS threads, holding the files of the last two batches it was given
    (the one being checked and the one read ahead), so that memory stays two batches of pictures."""

    def __init__(self, threads: int = READERS):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="quadrant-reader")
        self._held: list[dict[_Key, Future[Study]]] = []

    def read(self, jobs: Sequence[Job]) -> list[Reading]:
        """Start reading the jobs' files (each distinct file once, none the last batch read already)."""
        files: dict[_Key, Future[Study]] = {}

        def study(path: Path, frame: int | None = None) -> Future[Study]:
            key = (str(path), frame)
            if key not in files:
                held = next((batch[key] for batch in self._held if key in batch), None)
                files[key] = held or self._pool.submit(load_study, path, frame)
            return files[key]

        readings = [Reading(job, study(job.row.image, job.row.frame),
                            None if job.swap is None else study(job.swap.path),
                            None if job.partner is None else study(job.partner.path)) for job in jobs]
        self._held = [*self._held[-1:], files]
        return readings

    def close(self) -> None:
        """Stop reading: files not yet started are dropped, those being read are waited for."""
        self._pool.shutdown(cancel_futures=True)
        self._held = []

    def __enter__(self) -> StudyReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
