"""Results for an evaluation's DICOM rows: one structured report, secondary capture and FHIR Bundle per study
image, holding every question the manifest asked of it, written from samples.jsonl once the run is done.

Written after the run, from what it wrote, so they are the same whichever engine ran the checks and however
often the run was resumed; a rerun skips the files already there that hold the same verdicts (their UIDs would
be the same anyway), and writes anew those of a study whose rows were edited and checked again.
Rows whose image is a PNG or JPEG have no UIDs to file a result under: they are counted, not written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..images import load_study
from ..manifest import ManifestRow
from ..verdict import Verdict
from . import build_results, read_source
from .filing import filing_key, result_uid

SUFFIXES = {"sr": ".sr.dcm", "sc": ".sc.dcm", "fhir": ".fhir.json"}


@dataclass(frozen=True)
class Written:
    studies: int  # study images whose results were written now
    kept: int  # study images whose results were already there
    not_dicom: int  # rows whose image is not DICOM


def write_dataset_results(rows: Sequence[ManifestRow], samples: Path, folders: dict[str, Path]) -> Written:
    """Write the results `folders` asks for ({"sr": DIR, ...}) for every DICOM image of the manifest."""
    verdicts = _verdicts(samples, {r.study_id for r in rows})
    images: dict[Path, list[Verdict]] = {}
    not_dicom = 0
    for row in rows:
        if row.study_id not in verdicts:
            continue  # not checked (an error row)
        if not _is_dicom(row.image):
            not_dicom += 1
            continue
        images.setdefault(row.image, []).append(verdicts[row.study_id])
    written = kept = 0
    for image, checked in images.items():
        stem = f"{_safe(image.stem)}-{checked[0].image['sha256'][:8]}"
        paths = {kind: folder / f"{stem}{SUFFIXES[kind]}" for kind, folder in folders.items()}
        if _already_written(paths, image, checked):
            kept += 1
            continue
        results = build_results(read_source(image, "the results"), checked, load_study(image).image,
                                **{kind: True for kind in paths})
        results.save(**paths)
        written += 1
    return Written(written, kept, not_dicom)


def _already_written(paths: dict[str, Path], image: Path, checked: Sequence[Verdict]) -> bool:
    """Whether every file asked for is there and holds these verdicts: it carries the UID their filing key
    names. A row edited and checked again since gives other verdicts, so its study's files are written anew.
    Only the study's header is read, up to its SOP Instance UID: a rerun of a finished dataset reads no pixels."""
    import pydicom

    if not all(path.exists() for path in paths.values()):
        return False
    try:
        uid = pydicom.dcmread(image, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
    except (OSError, AttributeError, pydicom.errors.InvalidDicomError):
        return False  # read_source, next, names what is wrong with it
    key = filing_key(str(uid), checked)
    for kind, path in paths.items():
        try:
            if kind == "fhir":
                held = result_uid(key, "fhir-report") in path.read_text(encoding="utf-8")
            else:
                held = pydicom.dcmread(path, stop_before_pixels=True,
                                       specific_tags=["SOPInstanceUID"]).SOPInstanceUID == result_uid(key, kind)
        except (OSError, UnicodeDecodeError, AttributeError, pydicom.errors.InvalidDicomError):
            held = False  # missing, unreadable or not ours: written again
        if not held:
            return False
    return True


def _verdicts(samples: Path, wanted: set[str]) -> dict[str, Verdict]:
    found = {}
    if samples.exists():
        with open(samples, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    data = json.loads(line)
                    if data.get("study_id") in wanted:
                        found[data["study_id"]] = Verdict.from_json(data)
    return found


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _safe(text: str) -> str:
    """A file name part from an image's name: letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "study"
