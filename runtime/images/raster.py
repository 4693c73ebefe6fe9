"""PNG, JPEG and the other common raster formats, through Pillow.

Pillow opens lazily: the header gives the size, which is checked before any pixel is decoded, and `.load()`
then forces the full decode so a truncated file fails here rather than deep inside a model's processor.
Only plain raster formats are allowed: Pillow's EPS plugin, for one, would run Ghostscript on the upload.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..errors import StudyError, one_line
from .base import (
    Decoded,
    Facts,
    Reader,
    check_dimensions,
    data_range,
    frame_index,
    gray_to_rgb,
    has_chroma,
    window_to_uint8,
)

#: the Pillow formats a study may come in; anything else is "not an image" to Quadrant
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "JPEG2000")

#: modes holding more than 8 bits a sample (16-bit PNG is "I;16", 32-bit TIFF "I", float TIFF "F")
_DEEP_MODES = ("I", "F")
#: modes whose transparency must be flattened before dropping to RGB
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")

# Pillow warns between its warning and error thresholds (89 and 179 MP), sizes check_dimensions refuses with its
# own error anyway. Set once rather than around each open: studies are read on several threads, and
# warnings.catch_warnings switches one list for the whole process.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class RasterReader(Reader):
    """Any of FORMATS, recognised by Pillow's own magic-number checks."""

    name = "raster"

    def can_read(self, head: bytes) -> bool:
        """Ask each allowed Pillow plugin whether `head` starts one of its files."""
        Image.init()
        for fmt in FORMATS:
            accept = Image.OPEN.get(fmt, (None, None))[1]
            if accept is not None and accept(head):
                return True
        return False

    def read(self, data: bytes, name: str, frame: int | None = None) -> Decoded:
        image = _open(data, name)
        check_dimensions(image.width, image.height, name)
        fmt = image.format or "image"
        frames = int(getattr(image, "n_frames", 1) or 1)
        index = frame_index(frame, frames, name)
        if index:
            image.seek(index)
        _decode(image, fmt, name)
        mode = image.mode
        image = _upright(image, fmt, name)
        rgb = to_rgb(image, name)
        facts = Facts(frames=frames, frame=frame, colour=has_chroma(rgb), bits=_bits(mode), photometric=mode)
        return Decoded(rgb, fmt, facts)


def _bits(mode: str) -> int:
    """Bits per sample of a Pillow mode: 1 for bilevel, 16 for "I;16", 32 for "I" and "F", else 8."""
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    return 32 if mode in _DEEP_MODES else 8


def _open(data: bytes, name: str) -> Image.Image:
    """Read the header only. Pillow's own bomb check (about 179 MP) fires here and becomes our size error."""
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise StudyError(
            f"{name}: the image is too large to decode safely ({one_line(exc)}); downscale it first"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise StudyError(f"{name}: not a PNG, JPEG, DICOM or other image Quadrant can read") from exc
    except Exception as exc:  # Pillow raises many types on a malformed header
        raise StudyError(f"{name}: the image header cannot be read ({one_line(exc)})") from exc


def _decode(image: Image.Image, fmt: str, name: str) -> None:
    """Force the full decode now, so truncated or corrupt pixel data is caught at the door."""
    try:
        image.load()
    except Exception as exc:  # OSError for truncation, but also SyntaxError, ValueError, struct.error...
        raise StudyError(
            f"{name}: the {fmt} file is truncated or corrupt ({one_line(exc)}); export it again"
        ) from exc


def _upright(image: Image.Image, fmt: str, name: str) -> Image.Image:
    """Apply the EXIF orientation tag, as a viewer would: the model must see what the clinician sees."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # a malformed EXIF block
        raise StudyError(f"{name}: the {fmt} file's EXIF orientation cannot be read ({one_line(exc)})") from exc


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode to 8-bit RGB.

    Deep grayscale is windowed to its own value range (a cast would saturate or truncate); transparency is
    composited onto black, the background of a radiograph; everything else uses Pillow's conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _DEEP_MODES or mode.startswith("I;"):
        values = np.asarray(image)
        return gray_to_rgb(window_to_uint8(values, *data_range(values)))
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return _flatten(image.convert("RGBA"))
    try:
        return image.convert("RGB")
    except Exception as exc:  # modes Pillow cannot convert (LAB, some odd TIFF layouts)
        raise StudyError(f"{name}: images in Pillow mode {mode!r} are not supported; save it as RGB") from exc


def _flatten(rgba: Image.Image) -> Image.Image:
    """Composite onto black: a transparent pixel is absent signal, not white paper."""
    background = Image.new("RGB", rgba.size, (0, 0, 0))
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background
