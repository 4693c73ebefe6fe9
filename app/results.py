"""The results of a DICOM study's check as downloads: its structured report, secondary capture and FHIR
Bundle, made by quadrant.results from the upload's filing header (kept in memory by uploads.py; the app's
readers never parse it). They carry the patient's identifiers from that header, as a result filed in the patient's record must, so
they are offered only to the session that uploaded the study (files.py) and never logged.

A PNG or JPEG has no UIDs to file a result under, so it gets none; nor does an app installed without the
`hospital` extra."""

from __future__ import annotations

from pathlib import Path

from quadrant.errors import MissingDependencyError
from quadrant.results import Source, build_results, require_formats

from .service import CheckedUpload


def results_offered() -> bool:
    """Whether this installation can write the results (the `hospital` extra)."""
    try:
        require_formats(sr=True, sc=True, fhir=True)
    except MissingDependencyError:
        return False
    return True


def result_files(checked: CheckedUpload, source: Source, folder: Path, overlay: bytes | None = None) -> list[Path]:
    """The SR, SC and FHIR files of a checked DICOM upload filed under `source`, written into `folder` (made
    if needed); `overlay`: its evidence map as the page shows it, when it has one."""
    results = build_results(source, [checked.verdict], checked.study.image, sr=True, sc=True, fhir=True,
                            overlays=None if overlay is None else [overlay])
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"quadrant-{checked.verdict.image['sha256'][:12]}"
    return results.save(sr=folder / f"{stem}.sr.dcm", sc=folder / f"{stem}.sc.dcm",
                        fhir=folder / f"{stem}.fhir.json")
