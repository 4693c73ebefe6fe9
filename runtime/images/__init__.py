"""Study readers: PNG, JPEG, other Pillow rasters and DICOM, each a plug-in Reader, all ending as 8-bit RGB.

    from quadrant.images import load_study
    study = load_study("chest.dcm")     # Study(image, sha256, width, height, format, facts)
    study = load_study("cine.dcm", frame=3)   # the third frame of a multi-frame file
"""

from .base import MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, Decoded, Facts, Reader
from .load import READERS, Study, load_study, load_study_bytes

__all__ = [
    "Study",
    "load_study",
    "load_study_bytes",
    "Reader",
    "Decoded",
    "Facts",
    "READERS",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
]
