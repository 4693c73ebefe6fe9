"""The reader contract every study format plugs into, the size limits they all enforce, and the pixel helpers
they share.

A reader answers two questions (MONAI's `ImageReader` habit): can it read a file whose first bytes are these,
and what 8-bit RGB picture is in these bytes. Readers never see a path, so an uploaded file and a file on disk
go through exactly the same checks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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


class Decoded(NamedTuple):
    """What a reader hands back: the picture, ready for an image processor, and the format it came in."""

    image: Image.Image  # 8-bit RGB
    format: str


class Reader(ABC):
    """One study format. Subclasses decide by magic bytes, then decode the whole file."""

    name: str = "reader"

    @abstractmethod
    def can_read(self, head: bytes) -> bool:
        """Whether the file starting with `head` (its first HEAD_BYTES bytes) is this reader's format."""

    @abstractmethod
    def read(self, data: bytes, name: str) -> Decoded:
        """Decode `data` to 8-bit RGB, raising StudyError (naming `name`, the file's base name) on bad input."""


def check_dimensions(width: int, height: int, name: str) -> None:
    """Refuse absurd sizes from the header alone, before a decoder allocates memory for them."""
    if width < 1 or height < 1:
        raise StudyError(f"{name}: the image claims to be {width} x {height} pixels, which is empty")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise StudyError(
            f"{name}: the image is {width} x {height} pixels, over the limit of {MAX_SIDE} pixels a side "
            f"and {MAX_PIXELS // 1_000_000} megapixels; downscale it first"
        )


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
