"""Results where clinicians read them: a check's verdicts as a DICOM structured report and a DICOM secondary
capture filed in the source study, and a FHIR R5 Bundle naming the study.

    from quadrant.results import build_results, read_source
    source = read_source("chest.dcm", "--sr")          # the header, for filing (refuses a PNG or JPEG)
    results = build_results(source, [verdict], study.image, sr=True, sc=True, fhir=True)
    results.save(sr="chest.sr.dcm", sc="chest.sc.dcm", fhir="chest.fhir.json")

One module per format (sr.py, sc.py with card.py, fhir.py); highdicom and fhir.resources are imported only
when a format is asked for (`pip install 'quadrant[hospital]'`). Identifiers reach the SR and the SC, which
belong to the patient's record, and nothing else: the FHIR Bundle names the study by UID, not the patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import write_atomically
from ..verdict import Verdict
from .source import Source, read_source, source_from_bytes

__all__ = ["Results", "Source", "build_results", "read_source", "source_from_bytes", "require_formats"]


@dataclass(frozen=True)
class Results:
    """One study's results; each None unless asked for."""

    sr: Any = None  # a highdicom ComprehensiveSR (a pydicom Dataset)
    sc: Any = None  # a highdicom SCImage
    fhir: Any = None  # a fhir.resources Bundle

    def save(self, *, sr: str | Path | None = None, sc: str | Path | None = None,
             fhir: str | Path | None = None) -> list[Path]:
        """Write the results asked for to their paths, each whole or not at all (written beside, then renamed)."""
        written = []
        for path, result, write in ((sr, self.sr, _write_dicom), (sc, self.sc, _write_dicom),
                                    (fhir, self.fhir, _write_fhir)):
            if path is not None and result is not None:
                written.append(write_atomically(Path(path), lambda handle, r=result, w=write: w(r, handle)))
        return written


def build_results(source: Source, verdicts: Sequence[Verdict], image: Image.Image, *, sr: bool = False,
                  sc: bool = False, fhir: bool = False, overlays: Sequence[bytes] | None = None) -> Results:
    """The results asked for, from one study's verdicts and the picture the model saw. With both an SR and an
    SC, the SR references the SC as its visual explanation. `overlays`: the verdicts' evidence maps already
    drawn over the study (`verdict_overlay_png`, one per verdict with a map, in order), which the SC then
    carries instead of drawing them again (a map of a full-size radiograph takes matplotlib over 100 ms)."""
    if not verdicts:
        raise ValueError("a result needs at least one verdict")
    if len({v.image["sha256"] for v in verdicts}) != 1:
        raise ValueError("the verdicts of one result must all be about the same study")
    secondary = None
    if sc:
        from .card import render
        from .sc import build_sc

        secondary = build_sc(source, verdicts, render(image, verdicts, overlays))
    report = None
    if sr:
        from .sr import build_sr

        report = build_sr(source, verdicts, visual=secondary)
    bundle = None
    if fhir:
        from .fhir import build_fhir

        bundle = build_fhir(source, verdicts)
    return Results(report, secondary, bundle)


def require_formats(*, sr: bool = False, sc: bool = False, fhir: bool = False) -> None:
    """Fail now, naming the extra to install, when a format asked for has no library (before any model work)."""
    from ..errors import require

    if sr or sc:
        require("highdicom", "hospital")
    if fhir:
        require("fhir.resources", "hospital")


def _write_dicom(dataset, handle) -> None:
    dataset.save_as(handle, enforce_file_format=True)


def _write_fhir(bundle, handle) -> None:
    from .fhir import to_json

    handle.write(to_json(bundle).encode("utf-8"))


