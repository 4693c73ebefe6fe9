"""The results of a DICOM study's check as downloads: its structured report, secondary capture and FHIR
Bundle, made by quadrant.results from the uploaded original (whose header the app's readers never parse).
A PNG or JPEG has no UIDs to file a result under, so it gets none."""

from __future__ import annotations

from pathlib import Path

from quadrant.results import build_results, source_from_bytes
from quadrant.verdict import Verdict

from .service import UPLOAD_NAME, CheckService


def result_files(service: CheckService, upload: str, verdict: dict, folder: Path) -> list[Path]:
    """The SR, SC and FHIR files of a checked DICOM upload, written into `folder` (made if needed); an empty
    list for an upload that is not DICOM."""
    data = service.read_upload(upload)
    if data[128:132] != b"DICM":
        return []
    source = source_from_bytes(data, UPLOAD_NAME, "the results")
    study = service.load_upload(upload)
    results = build_results(source, [Verdict.from_json(verdict)], study.image, sr=True, sc=True, fhir=True)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"quadrant-{verdict['image']['sha256'][:12]}"
    return results.save(sr=folder / f"{stem}.sr.dcm", sc=folder / f"{stem}.sc.dcm",
                        fhir=folder / f"{stem}.fhir.json")
