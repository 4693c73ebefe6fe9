"""The study a result is filed under: the original DICOM file's header, read for filing and nothing else.

The image readers parse only pixel and technical elements, so that identifiers never enter a check. A result
filed in the patient's record needs exactly what they leave out: the patient and study modules and the UIDs
that tie a structured report or secondary capture to its study. So the header is read here, from the original
file, by the result writers alone; a `Source` never prints its dataset, and nothing here logs a value.

A PNG or JPEG has no Study Instance UID to file a result under, and is refused with one line.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, TM

from ..errors import StudyError, one_line

#: the elements a result cannot be filed without
_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
#: patient and study elements DICOM requires in every object of the study, empty when unknown (type 2)
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
           "StudyTime", "ReferringPhysicianName")
#: the person names among them, which highdicom checks for a ^
_NAMES = ("PatientName", "ReferringPhysicianName")
#: the results' character set, whatever the source's (`_in_unicode`)
_UTF8 = "ISO_IR 192"
#: the values DICOM allows for Patient's Sex (PS3.3 C.7.1.1.1); highdicom refuses any other
_SEXES = ("M", "F", "O")

log = logging.getLogger(__name__)


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
    _in_unicode(dataset)
    _fit_for_filing(dataset)
    return Source(dataset)


def _in_unicode(dataset: Dataset) -> None:
    """Decode every text value by the study's own character set, then declare the header UTF-8, which the
    results are written in and highdicom copies into them. A result's text is the user's question as well as
    the patient's name, in any script, which the source's set may not hold; and highdicom refuses some sets a
    header may rightly name (a Japanese study's ["", "ISO 2022 IR 87"])."""
    dataset.decode()
    dataset.SpecificCharacterSet = _UTF8


def _fit_for_filing(dataset: Dataset) -> None:
    """Make the patient and study elements the results copy ones highdicom takes. Real headers break DICOM's
    rules (a birth date written 1951-02-03, a sex of "U"), and highdicom refuses such a value with an error that
    quotes it, and an error message reaches a log. So each one is left empty (type 2: unknown), and one line
    names the elements, never their values; the study's own file keeps them. Values it takes as they are (an ID
    over DICOM's length) are filed as they stand: they tie the result to the patient. A name with no ^ (the
    patient's, the referring physician's) gets one at its end: the same name by the standard (one component, the
    family name), where highdicom warns with the name in full."""
    unfit = [keyword for keyword in _TYPE_2 if not _fits(dataset.data_element(keyword))]
    for keyword in unfit:
        setattr(dataset, keyword, "")
    if unfit:
        log.warning("the study's header has %s not valid in DICOM: left empty in the results", ", ".join(unfit))
    for keyword in _NAMES:
        name = str(dataset.data_element(keyword).value)
        if name and "^" not in name:
            setattr(dataset, keyword, name + "^")


def _fits(element) -> bool:
    """Whether highdicom takes `element`'s value: it converts dates and times, knows only DICOM's sexes, and
    reads a name, a date or a code as one value."""
    value = element.value
    if value in ("", None):
        return True
    if isinstance(value, MultiValue):
        return element.VR not in ("PN", "DA", "TM", "CS")
    if element.VR in ("DA", "TM"):
        try:
            (DA if element.VR == "DA" else TM)(value)
        except (ValueError, TypeError, OverflowError):
            return False
    return element.keyword != "PatientSex" or value in _SEXES
