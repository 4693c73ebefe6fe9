"""The study a result is filed under: the original DICOM file's header, read for filing and nothing else.

The image readers parse only pixel and technical elements, so that identifiers never enter a check. A result
filed in the patient's record needs exactly what they leave out: the patient and study modules and the UIDs
that tie a structured report or secondary capture to its study. So the header is read here, from the original
file, by the result writers alone; a `Source` never prints its dataset, and nothing here logs.

A PNG or JPEG has no Study Instance UID to file a result under, and is refused with one line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from ..errors import StudyError, one_line

#: the elements a result cannot be filed without
_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
#: patient and study elements DICOM requires in every object of the study, empty when unknown (type 2)
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
           "StudyTime", "ReferringPhysicianName")


@dataclass(frozen=True)
class Source:
    """A study's DICOM header (no pixel data). `repr` shows no identifier."""

    dataset: Dataset = field(repr=False)

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)


def read_source(path: str | Path, what: str) -> Source:
    """The header of the DICOM study at `path`, for filing the result `what` names ("--sr"): refused with one
    line naming why when the file is not DICOM or lacks the UIDs a result is filed under."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"{path.name}: cannot be read for {what} ({exc.strerror or type(exc).__name__})") from exc
    return source_from_bytes(data, path.name, what)


def source_from_bytes(data: bytes, name: str, what: str) -> Source:
    """`read_source` for a file already in memory (an upload, a received instance)."""
    if data[128:132] != b"DICM":
        raise StudyError(
            f"{name}: {what} files a result in the study's DICOM record, and this is not a DICOM file: a PNG or "
            "JPEG has no Study Instance UID to file it under (check the DICOM original instead)")
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # a damaged header: InvalidDicomError, EOFError, struct.error, ...
        raise StudyError(f"{name}: the DICOM header cannot be read for {what} ({one_line(exc)})") from exc
    missing = [keyword for keyword in _REQUIRED if not dataset.get(keyword)]
    if missing:
        raise StudyError(f"{name}: the DICOM header has no {', '.join(missing)}, so {what} has nothing to file "
                         "the result under")
    for keyword in _TYPE_2:  # a source that left one out still gets a valid result: present, and empty
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    return Source(dataset)
