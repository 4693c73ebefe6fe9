"""The DICOM secondary capture of a check: the rendered card (card.py) filed in the source study, made with
highdicom.

A new series in the source study (patient and study modules copied from its header by highdicom), 8-bit RGB,
the source image named in the Source Image Sequence. Patient Orientation is the source's: the study keeps its
rows and columns in the picture, scaled. The burned-in text is the verdict in plain language and
no patient identifier, so Burned In Annotation says NO; Conversion Type WSD (made on a workstation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from .. import __version__
from ..errors import require
from ..verdict import Verdict
from .filing import MANUFACTURER, SERIES_DESCRIPTION, SERIES_NUMBERS, filing_key, result_uid
from .source import Source

hd = require("highdicom", "hospital")
#: the letters a biped patient's orientation is written in, one or more a value (PS3.3 C.7.6.1.1.1)
_BIPED = {value.value for value in hd.PatientOrientationValuesBiped}


def build_sc(source: Source, verdicts: Sequence[Verdict], picture: Image.Image):
    """The secondary capture (a highdicom SCImage) of `picture` for `verdicts` on `source`."""
    key = filing_key(source.sop_instance_uid, verdicts)
    header = source.dataset
    orientation = [str(o) for o in header.get("PatientOrientation") or ()]
    valid = len(orientation) == 2 and all(orientation) and all(set(o) <= _BIPED for o in orientation)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=header, pixel_array=np.asarray(picture.convert("RGB")), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", patient_orientation=("L", "F"),
        series_instance_uid=result_uid(key, "sc-series"), series_number=SERIES_NUMBERS["sc"],
        sop_instance_uid=result_uid(key, "sc"), instance_number=1, manufacturer=MANUFACTURER,
        transfer_syntax_uid="1.2.840.10008.1.2.1")
    # highdicom wants an orientation for a patient image, one letter a value, where DICOM allows an oblique
    # "AL": the source's own is set here instead, and one that names no direction (or none) is left empty
    # (type 2: unknown), never invented
    sc.PatientOrientation = orientation if valid else ""
    sc.SeriesDescription = SERIES_DESCRIPTION
    sc.ManufacturerModelName = "Quadrant"
    sc.SoftwareVersions = __version__
    sc.ConversionType = "WSD"
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = "Quadrant model check. Not for diagnostic use."
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.sop_class_uid
    reference.ReferencedSOPInstanceUID = source.sop_instance_uid
    sc.SourceImageSequence = [reference]
    return sc
