"""What the page shows about an uploaded study before it is checked: the picture the model will see, and a
few safe facts.

The study view (viewer.py) opens on the study exactly as the model receives it (for DICOM: after the modality
LUT, the VOI LUT or window, and MONOCHROME1 inversion), so a clinician can spot a study that was windowed into
black.

DICOM facts come from a short allow-list of technical elements; pydicom is asked to parse those elements
and nothing else, so a patient's name, ID, birth date or accession number never even enter memory here.
"""

from __future__ import annotations

import io

from quadrant.images import Study

#: (DICOM keyword, label shown): technical facts only, never anything that identifies a person
SAFE_DICOM_ELEMENTS = (
    ("Modality", "Modality"),
    ("ViewPosition", "View"),
    ("BodyPartExamined", "Body part"),
    ("PhotometricInterpretation", "Photometric interpretation"),
    ("BitsStored", "Bits stored"),
    ("NumberOfFrames", "Frames"),
)


def study_facts(study: Study, data: bytes) -> list[tuple[str, str]]:
    """(label, value) pairs for the page: format, size, the pixels' hash prefix (what the audit log names the
    study by), and the safe DICOM elements."""
    facts = [("Format", study.format), ("Size", f"{study.width} x {study.height} pixels"),
             ("Pixel SHA-256", study.pixels_sha256[:16] + "…")]
    if study.format == "DICOM":
        facts += dicom_facts(data)
    return facts


def dicom_facts(data: bytes) -> list[tuple[str, str]]:
    """The allow-listed elements present in a DICOM file, as (label, value); nothing else is parsed."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), specific_tags=[k for k, _ in SAFE_DICOM_ELEMENTS],
                             stop_before_pixels=True)
    except Exception:  # the study itself already decoded; facts are a courtesy, never a reason to fail
        return []
    facts = []
    for keyword, label in SAFE_DICOM_ELEMENTS:
        value = ds.get(keyword)
        if value not in (None, ""):
            facts.append((label, str(value)))
    return facts
