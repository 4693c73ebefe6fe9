"""Loading one study, from disk or from an upload, into the 8-bit RGB picture every model family takes.

The file is read whole, hashed, and offered to each reader in READERS in turn; the first whose magic-byte
check accepts it decodes it. DICOM goes first: a DICOM file's 128-byte preamble may itself hold another
format's header (DICOM-TIFF dual files exist), but "DICM" at offset 128 is unambiguous.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import StudyError, StudyNotFoundError
from .base import HEAD_BYTES, MAX_FILE_BYTES, Facts, Reader
from .dicom import DicomReader, is_bare_data_set
from .raster import RasterReader

#: tried in order; a new format is one more Reader here
READERS: list[Reader] = [DicomReader(), RasterReader()]


@dataclass(frozen=True)
class Study:
    """One decoded study: the picture a processor takes, and the facts the verdict records about it.

    Its technical facts (`study.facts.modality`, `.body_part`, `.frames`, `.colour`, ...; see `Facts`) are what
    its scope is judged by (`quadrant.scope`). `pixels_sha256` names `image` exactly: a model's reading of the
    picture is kept under it for the next question, so a study given another image must get its hash again
    (`pixel_sha256`), or none.
    """

    image: Image.Image  # 8-bit RGB, EXIF orientation applied
    sha256: str  # of the file's bytes as given
    width: int
    height: int
    format: str  # "PNG", "JPEG", "DICOM", or Pillow's name for another raster format
    pixels_sha256: str = ""  # of the decoded picture (pixel_sha256): the same for any encoding of the same pixels
    facts: Facts | None = None  # None: a picture built in memory, with nothing known about where it came from

    @property
    def spread(self) -> int:
        """The gray levels `image` spans between its 1st and 99th percentiles: 150 to 250 on a radiograph, none
        on a blank page, a uniform fill or a study windowed into black. From a 128 x 128 sample of its pixels
        (nearest neighbours: within a few levels of every pixel's, 0.05 ms on a full-size film where shrinking
        it took 2.6)."""
        counts = self.image.resize((128, 128), Image.Resampling.NEAREST).convert("L").histogram()
        cumulative = np.cumsum(counts) / sum(counts)
        return int(np.searchsorted(cumulative, 0.99) - np.searchsorted(cumulative, 0.01))

    def to_json(self) -> dict:
        """The verdict's `image` block: enough to identify the study, nothing that identifies the patient."""
        return {"sha256": self.sha256, "width": self.width, "height": self.height, "format": self.format,
                "pixels_sha256": self.pixels_sha256}


def load_study(path: str | os.PathLike, frame: int | None = None) -> Study:
    """Load a study file, refusing a missing path, a folder, an empty or oversized file before reading it.
    `frame`: which frame of a multi-frame file to decode, counted from 1 (None: the first)."""
    if not str(path).strip():
        raise StudyNotFoundError("no study file named (the path is empty)")
    path = Path(path)
    name = path.name or str(path)
    if not path.exists():
        raise StudyNotFoundError(f"{name}: no such study file")
    if not path.is_file():
        raise StudyNotFoundError(f"{name}: is a folder or special file, not a study file")
    _check_size(path.stat().st_size, name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"{name}: the study file cannot be read ({exc.strerror or type(exc).__name__})") from exc
    return load_study_bytes(data, name, frame)


def load_study_bytes(data: bytes, name: str = "upload", frame: int | None = None) -> Study:
    """Load a study from its bytes (an upload), with exactly the checks load_study applies to a file."""
    name = os.path.basename(str(name).replace("\\", "/")) or "upload"
    data = bytes(data)
    _check_size(len(data), name)
    reader = _reader_for(data, name)
    decoded = reader.read(data, name, frame)
    image = decoded.image
    return Study(
        image=image,
        sha256=hashlib.sha256(data).hexdigest(),
        width=image.width,
        height=image.height,
        format=decoded.format,
        facts=decoded.facts,
        pixels_sha256=pixel_sha256(image),
    )


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 of the picture the model is given, with its shape and dtype: a file's hash changes with its
    header (a patient's name, a re-encoding), this one only when the pixels do, so an audit row names the study
    judged without depending on, or pointing back to, the file it came in."""
    pixels = np.asarray(image)
    digest = hashlib.sha256(f"{pixels.dtype.str} {'x'.join(map(str, pixels.shape))}\n".encode("ascii"))
    digest.update(np.ascontiguousarray(pixels))  # hashed in place: no copy of a radiograph's megabytes
    return digest.hexdigest()


def _check_size(size: int, name: str) -> None:
    if size == 0:
        raise StudyError(f"{name}: the file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise StudyError(
            f"{name}: the file is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit for a study"
        )


def _reader_for(data: bytes, name: str) -> Reader:
    head = data[:HEAD_BYTES]
    for reader in READERS:
        if reader.can_read(head):
            return reader
    if is_bare_data_set(head):
        raise StudyError(f"{name}: a DICOM data set without the header a DICOM file starts with (\"DICM\" after a "
                         "128-byte preamble), as some older systems store them; export the study again as a DICOM "
                         "file (Part 10)")
    raise StudyError(f"{name}: not a PNG, JPEG, DICOM or other image Quadrant can read")
