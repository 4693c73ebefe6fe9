"""DICOM studies, through pydicom: the display pipeline a radiology viewer applies, down to 8-bit RGB.

Grayscale follows DICOM's order: modality LUT (or rescale), then the VOI LUT or window (the file's own first
one; the data's full range when it names none), then MONOCHROME1 inversion so that dense tissue is bright, as
in every MONOCHROME2 image a model was trained on. Colour (RGB, YBR, palette) becomes RGB. One frame of a
multi-frame file is decoded: the one asked for (counted from 1), else the first.

Privacy by construction: only the image-pixel elements (groups 0028 and 7FE0) and a short allow-list of
technical elements (`TECHNICAL_TAGS`: modality, presentation intent, body part, view, laterality,
orientation) are parsed, so
patient identifiers never enter the dataset object, any message, or the returned study. The dataset is never
printed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import StudyError, one_line
from .base import Decoded, Facts, Reader, check_dimensions, data_range, frame_index, gray_to_rgb, window_to_uint8

if TYPE_CHECKING:
    import pydicom

_PIXEL_DATA_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float, Double Float, and plain Pixel Data
_CODECS_HINT = "pip install 'quadrant[dicom-codecs]'"
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
#: the technical elements read besides the image groups: what a study's scope is judged by, nothing personal
TECHNICAL_TAGS = {
    0x00080060: "Modality",
    0x00080068: "PresentationIntentType",
    0x00180015: "BodyPartExamined",
    0x00185101: "ViewPosition",
    0x00200020: "PatientOrientation",
    0x00200060: "Laterality",
    0x00200062: "ImageLaterality",
}


class DicomReader(Reader):
    """Part 10 DICOM files, recognised by "DICM" after the 128-byte preamble."""

    name = "dicom"

    def can_read(self, head: bytes) -> bool:
        return head[128:132] == b"DICM"

    def read(self, data: bytes, name: str, frame: int | None = None) -> Decoded:
        ds = _parse(data, name)
        if not any(tag in ds for tag in _PIXEL_DATA_TAGS):
            raise StudyError(f"{name}: DICOM file has no pixel data (a report, structured data or a DICOMDIR?)")
        rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
        if rows is None or columns is None:
            raise StudyError(f"{name}: DICOM file has pixel data but no Rows or Columns to shape it")
        check_dimensions(columns, rows, name)
        frames = max(1, _int(ds, "NumberOfFrames") or 1)
        pixels, photometric = _decode_frame(ds, frame_index(frame, frames, name), name)
        facts = Facts(
            frames=frames, frame=frame, colour=photometric not in _MONOCHROME,
            bits=_int(ds, "BitsStored") or _int(ds, "BitsAllocated"), photometric=photometric or None,
            from_header=True, modality=_text(ds, "Modality"), body_part=_text(ds, "BodyPartExamined"),
            view=_text(ds, "ViewPosition"),
            laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
            orientation=_text(ds, "PatientOrientation"), intent=_text(ds, "PresentationIntentType"),
        )
        return Decoded(_to_rgb(pixels, photometric, ds, name), "DICOM", facts)


def is_bare_data_set(head: bytes) -> bool:
    """Whether `head` starts a DICOM data set written without the Part 10 preamble and file meta, as some older
    systems store studies: a little-endian element of group 0008 (where every image's data set starts), its
    VR two capital letters (explicit VR) or its length a short 4-byte count (implicit VR). Not read (the file
    meta would name its transfer syntax, and an upload is kept without its patient header only as Part 10),
    but named, rather than called no DICOM at all."""
    if len(head) < 8 or head[:2] != b"\x08\x00":
        return False
    vr = head[4:6]
    return (vr.isalpha() and vr.isupper()) or int.from_bytes(head[4:8], "little") < 1024


@lru_cache(maxsize=1)
def _image_tags() -> tuple[int, ...]:
    """Every tag in the Image Pixel, Modality LUT and VOI LUT groups, the pixel data itself, and the technical
    elements of TECHNICAL_TAGS: nothing else."""
    from pydicom.datadict import DicomDictionary

    group_0028 = (tag for tag in DicomDictionary if tag >> 16 == 0x0028)
    return (*sorted(TECHNICAL_TAGS), *sorted(group_0028), 0x7FE00001, 0x7FE00002, *_PIXEL_DATA_TAGS)


def _parse(data: bytes, name: str) -> "pydicom.Dataset":
    """The image elements of the dataset, and the file meta (transfer syntax); identifiers are skipped."""
    import pydicom

    try:
        return pydicom.dcmread(io.BytesIO(data), specific_tags=list(_image_tags()))
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ... on a damaged file
        raise StudyError(f"{name}: not a readable DICOM file ({type(exc).__name__}); it may be truncated") from exc


def _int(ds, keyword: str) -> int | None:
    value = ds.get(keyword)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(ds, keyword: str) -> str | None:
    """A technical element as one stripped string (multi-valued ones joined by a backslash), or None."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return " ".join(str(value).split()) or None


def _decode_frame(ds, index: int, name: str) -> tuple[np.ndarray, str]:
    """Decode the frame at `index` (0-based) only, through whichever installed plugin handles the transfer
    syntax.

    Returns the array and its photometric interpretation after decoding (YBR data comes back as RGB).
    """
    from pydicom.pixels import as_pixel_options, get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID")
    if not syntax:
        raise StudyError(f"{name}: DICOM file meta names no transfer syntax, so its pixel data cannot be decoded")
    label = f"'{syntax.name}' ({syntax})" if syntax.name != str(syntax) else f"'{syntax}'"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise StudyError(f"{name}: no decoder exists for DICOM transfer syntax {label}") from exc
    if not decoder.is_available:
        raise StudyError(
            f"{name}: DICOM pixel data in transfer syntax {label} needs a decoder that is not installed: "
            f"{_CODECS_HINT}"
        )
    try:
        frame, properties = decoder.as_array(ds, index=index, validate=True, **as_pixel_options(ds))
    except Exception as exc:
        if syntax.is_compressed:
            raise StudyError(
                f"{name}: no installed decoder could read the DICOM pixel data in transfer syntax {label} "
                f"(it may need another decoder, or be corrupt): {_CODECS_HINT}"
            ) from exc
        raise StudyError(f"{name}: the DICOM pixel data cannot be decoded ({one_line(exc)})") from exc
    photometric = str(properties.get("photometric_interpretation") or ds.get("PhotometricInterpretation", ""))
    return frame, photometric.strip().upper()


def _to_rgb(frame: np.ndarray, photometric: str, ds, name: str) -> Image.Image:
    """Dispatch on the photometric interpretation to one 8-bit RGB image."""
    if photometric in _MONOCHROME and frame.ndim == 2:
        gray = _display_grayscale(frame, ds)
        return gray_to_rgb(255 - gray if photometric == "MONOCHROME1" else gray)
    if photometric == "PALETTE COLOR" and frame.ndim == 2:
        return _palette_to_rgb(frame, ds, name)
    if frame.ndim == 3 and frame.shape[-1] == 3:  # RGB, and YBR already converted by the decoder
        low, high = _stored_range(ds)
        rgb = frame if frame.dtype == np.uint8 else window_to_uint8(frame, low, high)
        return _rgb_image(rgb)
    raise StudyError(f"{name}: DICOM photometric interpretation {photometric or '(none)'!r} is not supported")


def _display_grayscale(frame: np.ndarray, ds) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, then 8 bits: what a viewer shows before any inversion.

    Every step maps a stored value to one output, whatever the other pixels, but one: a file with no window is
    shown over its data range. Under a linear modality transform (a rescale) that range's ends are the mapped
    ends of the frame's own range, so the chain can run once per value (`_per_value`): on a 2,048 x 2,500
    radiograph, 15 ms instead of 105 ms. A modality LUT need not be monotonic, so it takes the chain pixel by
    pixel."""
    if ds.get("ModalityLUTSequence"):
        return _display_chain(frame, ds)
    return _per_value(frame, lambda values: _display_chain(values, ds))


def _per_value(frame: np.ndarray, mapping: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`mapping` of every pixel, made once per value in the frame's range where the samples are integers of at
    most 16 bits, and looked up by each pixel's bits read as unsigned (a table of at most 65,536 entries, no
    index arithmetic); for a mapping that gives each value one output whatever the others, the same as mapping
    the frame itself, which float data still does."""
    if frame.dtype.kind not in "iu" or frame.dtype.itemsize > 2:
        return mapping(frame)
    unsigned = np.dtype(f"u{frame.dtype.itemsize}")
    values = np.arange(int(frame.min()), int(frame.max()) + 1, dtype=frame.dtype)
    mapped = mapping(values)
    table = np.empty(2 ** (8 * frame.dtype.itemsize), dtype=mapped.dtype)  # entries outside the range: never read
    table[values.view(unsigned)] = mapped
    return table[frame.view(unsigned)]


def _display_chain(values: np.ndarray, ds) -> np.ndarray:
    """The chain itself, on the values given."""
    from pydicom.pixels import apply_modality_lut

    values, low, high = _apply_voi(apply_modality_lut(values, ds), ds)
    return window_to_uint8(values, low, high)


def _apply_voi(values: np.ndarray, ds) -> tuple[np.ndarray, float, float]:
    """The file's VOI LUT (preferred, as pydicom does) or window, with the range its output can span.

    The output range is found by pushing the LUT's whole input domain, or the window's two far ends, through
    pydicom itself, so the 8-bit mapping matches the LUT pydicom applied. A file with neither, or with a
    window pydicom rejects (width < 1, unknown function), is shown over its data range rather than refused.
    """
    from pydicom.pixels import apply_voi, apply_windowing

    try:
        lut = _voi_lut(ds)
        if lut is not None:
            first, entries = lut
            output = apply_voi(np.rint(values).astype(np.int64), ds, index=0)
            domain = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, index=0)
            return output, float(domain.min()), float(domain.max())
        if _present(ds, "WindowCenter") and _present(ds, "WindowWidth"):
            with np.errstate(over="ignore"):
                output = apply_windowing(values, ds, index=0)
                ends = apply_windowing(np.array([-1e12, 1e12]), ds, index=0)
            return output, float(ends.min()), float(ends.max())
    except (ValueError, NotImplementedError, AttributeError, IndexError, TypeError):
        pass  # a malformed VOI module: fall back to the data range below
    return (values, *data_range(values))


def _voi_lut(ds) -> tuple[int, int] | None:
    """(first mapped value, number of entries) of the first VOI LUT, or None when there is no usable one."""
    sequence = ds.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or item.get("LUTData") is None:
        return None
    return int(descriptor[1]), int(descriptor[0]) or 2**16


def _present(ds, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is not None and value != "" and value != []


def _stored_range(ds) -> tuple[float, float]:
    """The range a sample can take given Bits Stored and signedness: colour is scaled by this, not its data."""
    bits = _int(ds, "BitsStored") or _int(ds, "BitsAllocated") or 8
    if _int(ds, "PixelRepresentation") == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _palette_to_rgb(frame: np.ndarray, ds, name: str) -> Image.Image:
    """PALETTE COLOR through its lookup tables, scaled by the tables' declared bit depth."""
    from pydicom.pixels import apply_color_lut

    try:
        rgb = apply_color_lut(frame, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    except Exception as exc:  # missing or malformed palette tables
        raise StudyError(f"{name}: the DICOM palette colour tables cannot be applied ({one_line(exc)})") from exc
    return _rgb_image(rgb if bits == 8 else window_to_uint8(rgb, 0, 2**bits - 1))


def _rgb_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))


@dataclass(frozen=True)
class Grayscale:
    """A grayscale DICOM's values after its modality LUT, before any window: what a viewer's window/level
    works on. `windows` are the file's own (centre, width, explanation); `frame` is the frame decoded (0-based)
    of `frames`."""

    values: np.ndarray  # float32 [rows, columns]
    monochrome1: bool  # dense tissue is dark in the values: a viewer inverts after windowing
    windows: list[tuple[float, float, str]]
    frame: int
    frames: int


def grayscale_values(data: bytes, name: str = "upload", frame: int | None = None) -> Grayscale | None:
    """The modality values of the frame the model saw (`frame` counted from 1 as in `read`; None: the first) and
    the file's windows, for a viewer's window/level; None for colour. The model's picture stays
    `DicomReader.read`'s (the file's own window, 8 bits); this is for a person looking closer. Only image
    elements are parsed, as in `read`. A modality LUT or rescale maps each stored value to one output, so it
    runs once per value (`_per_value`): on a 2,048 x 2,500 radiograph the preview waited on it pixel by pixel."""
    from pydicom.pixels import apply_modality_lut

    ds = _parse(data, name)
    frames = max(1, _int(ds, "NumberOfFrames") or 1)
    index = frame_index(frame, frames, name)
    pixels, photometric = _decode_frame(ds, index, name)
    if photometric not in _MONOCHROME or pixels.ndim != 2:
        return None
    values = _per_value(pixels, lambda stored: np.asarray(apply_modality_lut(stored, ds), dtype=np.float32))
    return Grayscale(values, photometric == "MONOCHROME1", _windows(ds), index, frames)


def _windows(ds) -> list[tuple[float, float, str]]:
    """Every (centre, width, explanation) the file names; malformed ones are left out."""
    centres, widths, notes = (_listed(ds, k) for k in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"))
    windows = []
    for i, (centre, width) in enumerate(zip(centres, widths, strict=False)):
        try:
            if float(width) >= 1:
                windows.append((float(centre), float(width), str(notes[i]) if i < len(notes) else ""))
        except (TypeError, ValueError):
            continue
    return windows


def _listed(ds, keyword: str) -> list:
    """An element's values as a list, whether it holds one value or several."""
    from pydicom.multival import MultiValue

    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue) else [value]
