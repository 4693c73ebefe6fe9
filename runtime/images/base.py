"""The reader contract every study format plugs into, the size limits they all enforce, and the pixel helpers
they share.

A reader answers two questions (MONAI's `ImageReader` habit): can it read a file whose first bytes are these,
and what 8-bit RGB picture is in these bytes, with the technical facts (`Facts`) that decide whether Quadrant
can judge it. Readers never see a path, so an uploaded file and a file on disk go through exactly the same
checks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import StudyError

#: enough leading bytes for every magic number a reader looks at (DICOM's "DICM" sits at offset 128)
HEAD_BYTES = 512
#: a study file larger than this is refused before it is read into memory
MAX_FILE_BYTES = 512 * 2**20
#: refused before decoding: a chest radiograph is about 9 megapixels, a 20000 px side is already absurd
MAX_PIXELS = 50_000_000
MAX_SIDE = 20_000


#: a pixel whose channels differ by more than this many levels (of 255) carries colour, not JPEG noise
CHROMA_LEVELS = 24
#: the share of such pixels above which a picture is colour: a coloured marker or ruler on a radiograph stays gray
CHROMA_SHARE = 0.01


@dataclass(frozen=True)
class Facts:
    """Technical facts about a study, the ones its scope is judged by; never anything that identifies a person.

    DICOM facts come from the header's technical elements (Modality, BodyPartExamined, ViewPosition, ...);
    a PNG or JPEG has none of them (`from_header` False), only its frames, bit depth and whether it has colour.
    """

    frames: int = 1  # frames (or pages) in the file
    frame: int | None = None  # the frame decoded, counted from 1, when the caller chose one
    colour: bool = False  # DICOM: not MONOCHROME1/2; raster: real chroma (see `has_chroma`)
    bits: int | None = None  # bits stored per sample
    photometric: str | None = None  # DICOM's Photometric Interpretation; a raster's Pillow mode
    from_header: bool = False  # whether modality and body part could be read (DICOM)
    modality: str | None = None  # DICOM Modality: CR, DX, CT, MR, ...
    body_part: str | None = None  # DICOM BodyPartExamined, as written
    view: str | None = None  # DICOM ViewPosition: PA, AP, LL, ...
    laterality: str | None = None  # DICOM ImageLaterality (or Laterality)
    orientation: str | None = None  # DICOM PatientOrientation: the rows' and columns' directions, e.g. "A\\F"
    intent: str | None = None  # DICOM PresentationIntentType (DX, MG, IO): FOR PRESENTATION or FOR PROCESSING


class Decoded(NamedTuple):
    """What a reader hands back: the picture, ready for an image processor, the format it came in, and its
    technical facts."""

    image: Image.Image  # 8-bit RGB
    format: str
    facts: Facts = Facts()


class Reader(ABC):
    """One study format. Subclasses decide by magic bytes, then decode the whole file."""

    name: str = "reader"

    @abstractmethod
    def can_read(self, head: bytes) -> bool:
        """Whether the file starting with `head` (its first HEAD_BYTES bytes) is this reader's format."""

    @abstractmethod
    def read(self, data: bytes, name: str, frame: int | None = None) -> Decoded:
        """Decode `data` to 8-bit RGB, raising StudyError (naming `name`, the file's base name) on bad input.
        `frame`: which frame of a multi-frame file, counted from 1 (None: the first)."""


def check_dimensions(width: int, height: int, name: str) -> None:
    """Refuse absurd sizes from the header alone, before a decoder allocates memory for them."""
    if width < 1 or height < 1:
        raise StudyError(f"{name}: the image claims to be {width} x {height} pixels, which is empty")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise StudyError(
            f"{name}: the image is {width} x {height} pixels, over the limit of {MAX_SIDE} pixels a side "
            f"and {MAX_PIXELS // 1_000_000} megapixels; downscale it first"
        )


def frame_index(frame: int | None, frames: int, name: str) -> int:
    """The 0-based index of the frame a caller chose (counted from 1, as DICOM numbers frames), checked
    against the file's frame count; 0 when none was chosen."""
    if frame is None:
        return 0
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
        raise StudyError(f"{name}: frames are counted from 1, got frame {frame!r}")
    if frame > frames:
        raise StudyError(f"{name}: the study has {frames} frame{'s' if frames != 1 else ''}; "
                         f"there is no frame {frame}")
    return frame - 1


def has_chroma(image: Image.Image) -> bool:
    """Whether an RGB picture carries real colour: more than CHROMA_SHARE of its pixels have channels that
    differ by more than CHROMA_LEVELS. Grayscale saved as RGB (and its JPEG noise) has none; a photograph,
    a colour map or per-channel noise has plenty. Judged on a grid of at most about 512 x 512 pixels.

    A pixel's spread (its largest channel minus its smallest) is the largest of its three pairwise
    differences; computed on whole channel planes that way it costs a fifth of a reduction across the
    channel axis, which matters because a study built in memory is judged on every check."""
    if image.mode != "RGB":
        return False
    pixels = np.asarray(image)
    step = max(1, max(pixels.shape[:2]) // 512)
    sample = pixels[::step, ::step]
    red, green, blue = (sample[..., channel].astype(np.int16) for channel in range(3))
    chroma = ((np.abs(red - green) > CHROMA_LEVELS) | (np.abs(green - blue) > CHROMA_LEVELS)
              | (np.abs(red - blue) > CHROMA_LEVELS))
    return bool(np.mean(chroma) > CHROMA_SHARE)


def window_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto 0..255, clipping outside it.

    This is how high-bit-depth data (16-bit PNG, DICOM) reaches 8 bits without the saturation a plain cast
    would cause. A flat window (high <= low) gives black rather than a division by zero.
    """
    values = np.asarray(values, dtype=np.float64)
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def data_range(values: np.ndarray) -> tuple[float, float]:
    """The actual minimum and maximum: the window used when a file names none."""
    return float(np.min(values)), float(np.max(values))


def gray_to_rgb(gray: np.ndarray) -> Image.Image:
    """An 8-bit grayscale array as an RGB image, the only mode image processors are guaranteed to take."""
    return Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8)).convert("RGB")
