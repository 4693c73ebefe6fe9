"""Study readers on real files: generated on the spot with Pillow, numpy and pydicom, pydicom's bundled DICOM
files, and the Philips chest radiograph from pydicom-data. No mocks: every file here is one a user could have.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from quadrant.errors import StudyError, StudyNotFoundError
from quadrant.images import MAX_FILE_BYTES, READERS, Study, load_study, load_study_bytes
from quadrant.images.base import CHROMA_LEVELS, CHROMA_SHARE, has_chroma
from quadrant.images.dicom import DicomReader
from quadrant.images.raster import RasterReader

CODECS_HINT = "pip install 'quadrant[dicom-codecs]'"
SECRETS = ("Doe^Jane", "Doe", "Jane", "SECRET123", "19700101")


# ---------------------------------------------------------------------------------------------- helpers


def pixels(study: Study) -> np.ndarray:
    return np.asarray(study.image).astype(np.int64)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def assert_clear(exc: pytest.ExceptionInfo, name: str, *phrases: str) -> None:
    """A good message: one line, names the file, says the problem."""
    message = str(exc.value)
    assert "\n" not in message, message
    assert name in message, message
    for phrase in phrases:
        assert phrase in message, message


def png_with_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but whose pixel data is a few bytes: only a header check passes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def write_dicom(path: Path, array: np.ndarray | None = None, photometric: str = "MONOCHROME2", **elements) -> Path:
    """A Part 10 file with patient identifiers, optional 16-bit pixels, and any extra elements."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET123"
    ds.PatientBirthDate = "19700101"
    ds.Modality = "OT"
    if array is not None:
        ds.set_pixel_data(array.astype(np.uint16), photometric, 16)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def data_store_file(name: str) -> Path:
    """pydicom-data's files, by path: get_testdata_file would try the network first for these."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pydicom-data is not installed (it is in the 'test' extra)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


# --------------------------------------------------------------------------------------- raster formats


def test_png_rgb_round_trips_exactly_and_reports_facts(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    path = save(Image.fromarray(array), tmp_path / "scan.png")
    study = load_study(path)
    assert study.image.mode == "RGB"
    assert (study.width, study.height) == (50, 30) == study.image.size
    assert study.format == "PNG"
    assert study.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert np.array_equal(pixels(study), array)
    assert study.to_json() == {"sha256": study.sha256, "width": 50, "height": 30, "format": "PNG",
                               "pixels_sha256": study.pixels_sha256}
    json.dumps(study.to_json())


def test_16_bit_png_is_windowed_to_its_range_not_truncated(tmp_path):
    ramp = np.tile(np.linspace(1000, 3000, 64).round().astype(np.uint16), (16, 1))
    path = save(Image.fromarray(ramp), tmp_path / "padchest.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I"), "precondition: Pillow wrote a 16-bit grayscale PNG"
    gray = pixels(load_study(path))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    row = gray[0, :, 0]
    assert row.min() <= 2 and row.max() >= 253, "the 1000..3000 range must span the 8-bit range"
    assert np.all(np.diff(row) >= 0), "windowing keeps the order of values"
    assert len(np.unique(row)) > 50, "no saturation: distinct inputs stay distinct"


def test_float_tiff_is_windowed_too(tmp_path):
    values = np.linspace(-5.0, 5.0, 100, dtype=np.float32).reshape(10, 10)
    path = save(Image.fromarray(values), tmp_path / "map.tif")
    study = load_study(path)
    assert study.format == "TIFF"
    assert pixels(study).min() == 0 and pixels(study).max() == 255


def test_rgba_is_composited_onto_black(tmp_path):
    array = np.zeros((2, 3, 4), dtype=np.uint8)
    array[..., :3] = 255  # white everywhere
    array[0, 0, 3] = 0  # fully transparent
    array[0, 1, 3] = 255  # opaque
    array[0, 2, 3] = 128  # half
    path = save(Image.fromarray(array), tmp_path / "overlay.png")
    out = pixels(load_study(path))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert 120 <= out[0, 2, 0] <= 136


def test_la_is_composited_onto_black(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putdata([(200, 0), (200, 255)])
    out = pixels(load_study(save(image, tmp_path / "la.png")))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [200, 200, 200]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), tmp_path / "print.jpg", quality=95)  # pure cyan
    with Image.open(path) as check:
        assert check.mode == "CMYK", "precondition: a CMYK JPEG"
    study = load_study(path)
    red, green, blue = pixels(study)[8, 8]
    assert study.format == "JPEG"
    assert red < 30 and green > 225 and blue > 225


def test_palette_maps_indices_and_transparency(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 100, 50, 255, 255, 255] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2])
    out = pixels(load_study(save(image, tmp_path / "pal.png")))
    assert out[0].tolist() == [[10, 20, 30], [200, 100, 50], [255, 255, 255]]
    out = pixels(load_study(save(image, tmp_path / "pal_t.png", transparency=2)))
    assert out[0].tolist() == [[10, 20, 30], [200, 100, 50], [0, 0, 0]]


def test_one_bit_and_grayscale_become_rgb(tmp_path):
    bits = Image.new("1", (2, 1))
    bits.putdata([0, 1])
    assert pixels(load_study(save(bits, tmp_path / "bits.png")))[0].tolist() == [[0, 0, 0], [255, 255, 255]]
    gray = Image.fromarray(np.array([[7, 130]], dtype=np.uint8))
    assert pixels(load_study(save(gray, tmp_path / "gray.png")))[0].tolist() == [[7] * 3, [130] * 3]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 10))  # a red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(image, tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    study = load_study(path)
    assert (study.width, study.height) == (20, 40)
    out = pixels(study)
    assert out[5, 15, 0] > 200 and out[5, 15, 1] < 60, "the red block is now at the top-right"
    assert out[5, 5].min() > 200, "and the top-left is white"


@pytest.mark.parametrize("fmt, suffix", [("BMP", ".bmp"), ("GIF", ".gif"), ("TIFF", ".tif"), ("WEBP", ".webp")])
def test_other_raster_formats_keep_pillows_name(tmp_path, fmt, suffix):
    path = save(Image.new("RGB", (8, 6), (0, 128, 255)), tmp_path / f"x{suffix}")
    study = load_study(path)
    assert study.format == fmt
    assert study.image.mode == "RGB" and study.image.size == (8, 6)


def test_loading_is_deterministic_and_bytes_match_path(tmp_path):
    rng = np.random.default_rng(1)
    path = save(Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16)), tmp_path / "a.png")
    first, second = load_study(path), load_study(path)
    upload = load_study_bytes(path.read_bytes(), "a.png")
    assert first.sha256 == second.sha256 == upload.sha256
    assert first.image.tobytes() == second.image.tobytes() == upload.image.tobytes()
    assert first.to_json() == upload.to_json()


# --------------------------------------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(StudyNotFoundError) as exc:
        load_study(tmp_path / "nowhere.png")
    assert_clear(exc, "nowhere.png")
    assert isinstance(exc.value, FileNotFoundError)


def test_folder(tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    with pytest.raises(StudyNotFoundError) as exc:
        load_study(folder)
    assert_clear(exc, "studies", "folder")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "empty.png", "empty")
    with pytest.raises(StudyError, match="empty"):
        load_study_bytes(b"", "up.png")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("This is a radiology report, not a picture.\n")
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "notes.png", "not a PNG, JPEG, DICOM")
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_files_fail_at_load(tmp_path, fmt, suffix):
    rng = np.random.default_rng(2)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, path.name, "truncated")
    assert exc.value.__cause__ is not None, "the foreign error is chained"


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "bad.png")


@pytest.mark.parametrize("width, height", [(20_001, 4), (8_000, 8_000)])
def test_huge_dimensions_are_refused_from_the_header(tmp_path, width, height):
    path = tmp_path / "huge.png"
    path.write_bytes(png_with_header_only(width, height))
    with pytest.raises(StudyError) as exc:
        load_study(path)
    # Had it decoded first, the few bytes of pixel data would have failed as "truncated" instead.
    assert_clear(exc, "huge.png", f"{width} x {height} pixels", "downscale")


def test_pillow_decompression_bomb_is_translated(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_header_only(20_000, 20_000))  # 400 MP: Pillow itself refuses at open
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "bomb.png", "downscale")


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "giant.png"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used, nothing read
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "giant.png", "MiB limit")


def test_upload_name_is_reduced_to_its_base_name():
    with pytest.raises(StudyError) as exc:
        load_study_bytes(b"plain text", "/home/someone/private/upload.jpg")
    assert_clear(exc, "upload.jpg")
    assert "someone" not in str(exc.value)
    with pytest.raises(StudyError) as exc:
        load_study_bytes(b"plain text", "C:\\Users\\someone\\scan.png")
    assert_clear(exc, "scan.png")
    assert "someone" not in str(exc.value)


# ------------------------------------------------------------------------------------------------- DICOM


def test_bundled_ct_applies_rescale_and_uses_full_range():
    study = load_study(get_testdata_file("CT_small.dcm"))
    out = pixels(study)
    assert study.format == "DICOM" and (study.width, study.height) == (128, 128)
    assert out.min() == 0 and out.max() == 255  # no window in the file: its data range
    assert np.array_equal(out[..., 0], out[..., 2])


def test_bundled_mr_uses_its_window():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    raw = ds.pixel_array.astype(float)
    out = pixels(load_study(get_testdata_file("MR_small.dcm")))[..., 0]
    assert np.all(out[raw >= center + width / 2] == 255)
    assert raw.min() > center - width / 2, "precondition: MR_small lies above its window's floor"
    assert out.min() > 0, "window, not data range: the darkest pixel is not black"


def test_synthetic_window_after_rescale(tmp_path):
    raw = np.tile(np.arange(0, 2000, 20, dtype=np.uint16), (4, 1))  # stored 0..1980
    # rescaled = 2 * stored + 1000; window [1500, 2500] is stored [250, 750]. Skipping the rescale would
    # window the stored values instead, making stored 260..740 black.
    path = write_dicom(
        tmp_path / "w.dcm", raw, RescaleSlope=2, RescaleIntercept=1000, WindowCenter=2000, WindowWidth=1000
    )
    out = pixels(load_study(path))[0, :, 0]
    stored = raw[0]
    assert np.all(out[stored <= 240] == 0)
    assert np.all(out[stored >= 760] == 255)
    middle = out[(stored >= 260) & (stored <= 740)]
    assert middle.min() > 0 and middle.max() < 255 and np.all(np.diff(middle) > 0)


def _display_variants():
    """Grayscale files of every kind the display chain handles (signed and unsigned, rescaled, windowed,
    several windows, a VOI LUT, a modality LUT, none), each also with a falling rescale, with no window (shown
    over its data range) and with a sigmoid window."""
    names = ("CT_small.dcm", "MR_small.dcm", "RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "vlut_04.dcm",
             "mlut_18.dcm", "emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "JPEG2000.dcm")
    for name in names:
        path = get_testdata_file(name, download=False)
        assert path is not None, f"{name}: pydicom's or pydicom-data's test file is missing"
        yield name, pydicom.dcmread(path)
        falling = pydicom.dcmread(path)
        falling.RescaleSlope, falling.RescaleIntercept = -2.5, 100
        yield f"{name}, falling rescale", falling
        bare = pydicom.dcmread(path)
        for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence"):
            if keyword in bare:
                delattr(bare, keyword)
        yield f"{name}, no window", bare
        if "WindowCenter" in bare or "WindowCenter" in falling:
            sigmoid = pydicom.dcmread(path)
            sigmoid.VOILUTFunction = "SIGMOID"
            yield f"{name}, sigmoid", sigmoid


def test_the_display_table_gives_every_pixel_what_the_chain_gives_it():
    """Integer samples go through the modality and VOI steps once per value, as a table: the same 8 bits as the
    chain applied pixel by pixel, on every kind of file (and float data keeps the chain)."""
    from quadrant.images.dicom import _decode_frame, _display_chain, _display_grayscale

    checked = 0
    for name, ds in _display_variants():
        frame, _ = _decode_frame(ds, 0, name)
        if frame.ndim != 2:
            continue
        assert np.array_equal(_display_grayscale(frame, ds), _display_chain(frame, ds)), name
        checked += 1
    assert checked >= 30
    rng = np.random.default_rng(7)
    full_size = rng.integers(0, 4096, (2500, 2048), dtype=np.uint16)  # a 12-bit radiograph's size
    ds = pydicom.dcmread(get_testdata_file("MR2_UNCR.dcm", download=False))
    assert np.array_equal(_display_grayscale(full_size, ds), _display_chain(full_size, ds))
    floats = rng.normal(500, 200, (64, 64))
    assert np.array_equal(_display_grayscale(floats, ds), _display_chain(floats, ds))


def test_the_viewers_values_are_the_modality_lut_of_every_pixel():
    """A viewer's values go through the modality LUT or rescale once per stored value, as a table: the same
    float32 values as pydicom's LUT applied to every pixel, on every kind of file."""
    from pydicom.pixels import apply_modality_lut

    from quadrant.images.dicom import _decode_frame, grayscale_values

    checked = 0
    for name, ds in _display_variants():
        frame, _ = _decode_frame(ds, 0, name)
        if frame.ndim != 2:
            continue
        buffer = io.BytesIO()
        ds.save_as(buffer)
        gray = grayscale_values(buffer.getvalue(), name)
        assert np.array_equal(gray.values, np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)), name
        checked += 1
    assert checked >= 30


def test_synthetic_monochrome1_is_the_inverse_of_monochrome2(tmp_path):
    raw = np.tile(np.linspace(1000, 3000, 50).astype(np.uint16), (3, 1))
    two = pixels(load_study(write_dicom(tmp_path / "m2.dcm", raw, "MONOCHROME2")))
    one = pixels(load_study(write_dicom(tmp_path / "m1.dcm", raw, "MONOCHROME1")))
    assert two[0, 0, 0] == 0 and two[0, -1, 0] == 255
    assert np.array_equal(one, 255 - two)


def test_real_monochrome1_chest_radiograph_is_inverted():
    path = data_store_file("RG1_UNCR.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).PhotometricInterpretation == "MONOCHROME1"
    study = load_study(path)
    assert (study.width, study.height) == (1841, 1955)
    gray = pixels(study)[..., 0].astype(float)
    height, width = gray.shape
    band = slice(height // 4, 3 * height // 4)
    mediastinum = gray[band, int(width * 0.45) : int(width * 0.55)].mean()
    lungs = (gray[band, int(width * 0.2) : int(width * 0.3)].mean() + gray[band, int(width * 0.7) : int(width * 0.8)].mean()) / 2
    # Without the inversion the stored MONOCHROME1 values show dense tissue dark: this would flip.
    assert mediastinum > lungs + 25, (mediastinum, lungs)


def test_jpeg2000_chest_radiograph_decodes_to_the_same_pixels():
    pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg decodes JPEG 2000")
    lossless = load_study(data_store_file("RG1_J2KR.dcm"))
    uncompressed = load_study(data_store_file("RG1_UNCR.dcm"))
    assert lossless.sha256 != uncompressed.sha256
    assert lossless.image.tobytes() == uncompressed.image.tobytes()


@pytest.mark.parametrize("name", ["JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG-LL.dcm"])  # 8 and 16 bits
def test_jpeg_lossless_reads_as_its_uncompressed_copy(tmp_path, name):
    """JPEG Lossless is how most PACS store CR and DX. Its decoder comes with the dicom-codecs extra, which the
    Docker image installs; CI runs this test in a second step with it (kept out of the test environment, where
    the 12-bit JPEG refusal below needs a syntax no installed decoder reads)."""
    pytest.importorskip("libjpeg", reason="pylibjpeg-libjpeg decodes JPEG Lossless (the dicom-codecs extra)")
    compressed = get_testdata_file(name)
    plain = pydicom.dcmread(compressed)
    plain.decompress()
    plain.save_as(tmp_path / "plain.dcm")
    assert load_study(compressed).image.tobytes() == load_study(tmp_path / "plain.dcm").image.tobytes()


def test_ybr_colour_becomes_rgb():
    rgb = pixels(load_study(get_testdata_file("SC_rgb.dcm")))
    ybr = pixels(load_study(get_testdata_file("SC_ybr_full_uncompressed.dcm")))
    assert np.abs(ybr - rgb).max() <= 8  # colour-space round trip; unconverted YBR is off by about 100
    assert rgb[0, 0].tolist() == [255, 0, 0]


def test_16_bit_colour_is_scaled_by_bit_depth():
    assert np.array_equal(
        pixels(load_study(get_testdata_file("SC_rgb_16bit.dcm"))), pixels(load_study(get_testdata_file("SC_rgb.dcm")))
    )


def test_multi_frame_uses_the_first_frame():
    frames = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm")).pixel_array
    assert not np.array_equal(frames[0], frames[1]), "precondition: the two frames differ"
    out = pixels(load_study(get_testdata_file("SC_rgb_rle_2frame.dcm")))
    assert np.array_equal(out, frames[0])


def test_palette_colour_dicom():
    out = pixels(load_study(get_testdata_file("examples_palette.dcm")))
    assert out.shape == (350, 800, 3)
    assert np.abs(out[..., 0] - out[..., 2]).max() > 50, "real colours, not grey"


def test_dicom_without_pixel_data_hides_identifiers(tmp_path, caplog, capsys, recwarn):
    caplog.set_level(logging.DEBUG)
    path = write_dicom(tmp_path / "report.dcm")
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "report.dcm", "DICOM file has no pixel data")
    captured = capsys.readouterr()
    said = [str(exc.value), repr(exc.value), caplog.text, captured.out, captured.err] + [str(w.message) for w in recwarn]
    for secret in SECRETS:
        assert all(secret not in text for text in said), secret


def test_loaded_dicom_carries_no_identifiers(tmp_path):
    path = write_dicom(tmp_path / "ok.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    study = load_study(path)
    assert study.format == "DICOM"
    carried = json.dumps(study.to_json()) + repr(study.image.info) + repr(study)
    for secret in SECRETS:
        assert secret not in carried


def test_identifiers_are_never_parsed(tmp_path):
    from quadrant.images.dicom import _parse

    data = write_dicom(tmp_path / "ok.dcm", np.zeros((2, 2))).read_bytes()
    ds = _parse(data, "ok.dcm")
    assert "PixelData" in ds and "Rows" in ds
    assert not any(keyword in ds for keyword in ("PatientName", "PatientID", "PatientBirthDate"))


def test_bundled_report_has_no_pixel_data():
    with pytest.raises(StudyError, match="DICOM file has no pixel data"):
        load_study(get_testdata_file("reportsi.dcm"))


def test_syntax_with_no_installed_decoder():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here, so this file decodes")
    with pytest.raises(StudyError) as exc:
        load_study(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    assert_clear(exc, "MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless", CODECS_HINT)


def test_syntax_whose_installed_decoders_all_fail():
    # 12-bit JPEG Extended: Pillow is an installed plugin for the syntax but cannot do 12 bits.
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    if get_decoder(JPEGExtended12Bit).available_plugins != ("pillow",):
        pytest.skip("a 12-bit JPEG decoder (pylibjpeg-libjpeg or gdcm) is installed here")
    with pytest.raises(StudyError) as exc:
        load_study(get_testdata_file("JPEG-lossy.dcm"))
    assert_clear(exc, "JPEG-lossy.dcm", "JPEG Extended", CODECS_HINT)


def test_huge_dicom_dimensions_are_refused_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "huge.dcm", np.zeros((2, 2)), Rows=30_000, Columns=30_000)
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "huge.dcm", "30000 x 30000 pixels")


def test_truncated_dicom(tmp_path):
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "cut.dcm")


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom, on the damaged file
def test_dicom_magic_with_garbage_after_it(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert_clear(exc, "fake.dcm", "DICOM")


# ---------------------------------------------------------------------------------------- reader contract


def _sample(reader, folder: Path) -> bytes:
    """A file of the reader's format; the DICOM one written by pydicom, so its preamble is plain zeros."""
    if isinstance(reader, DicomReader):
        return write_dicom(folder / "s.dcm", np.arange(20).reshape(4, 5)).read_bytes()
    buffer = io.BytesIO()
    Image.new("L", (5, 4), 9).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("reader", READERS, ids=lambda reader: reader.name)
def test_every_reader_honours_the_contract(reader, tmp_path):
    data = _sample(reader, tmp_path)
    assert reader.can_read(data[:512])
    assert not reader.can_read(b"just some text, long enough to pass any offset " * 4)
    others = [other for other in READERS if other is not reader]
    assert not any(other.can_read(data[:512]) for other in others), "magic numbers do not overlap"
    decoded = reader.read(data, "sample")
    assert decoded.image.mode == "RGB" and decoded.image.size == (5, 4)
    assert decoded.format in ("DICOM", "PNG")
    assert {type(r) for r in READERS} == {DicomReader, RasterReader}


def test_dicom_tiff_dual_file_is_read_as_dicom():
    # MR_small.dcm's preamble is a TIFF header: both readers accept it, and order decides.
    head = Path(get_testdata_file("MR_small.dcm")).read_bytes()[:512]
    assert DicomReader().can_read(head) and RasterReader().can_read(head), "precondition: a dual file"
    assert load_study(get_testdata_file("MR_small.dcm")).format == "DICOM"


@pytest.mark.parametrize("spread", [0, CHROMA_LEVELS, CHROMA_LEVELS + 1, 40])
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_chroma_is_a_pixels_largest_channel_minus_its_smallest(spread, share):
    """Colour is judged from each pixel's channel spread: pictures mixing grey pixels with pixels of a given
    spread, in a given share, against the definition computed across the channel axis."""
    rng = np.random.default_rng(spread)
    pixels = np.repeat(rng.integers(0, 200, (300, 400, 1)), 3, axis=2)
    coloured = rng.random((300, 400)) < share
    pixels[coloured, rng.integers(0, 3)] += spread
    image = Image.fromarray(pixels.astype(np.uint8))
    expected = np.mean((pixels.max(axis=2) - pixels.min(axis=2)) > CHROMA_LEVELS) > CHROMA_SHARE
    assert has_chroma(image) == expected


def test_a_dicom_data_set_without_its_file_header_is_named_as_one(tmp_path):
    """pydicom-data's OT-PAL-8-face is a bare data set (no preamble, no "DICM", no file meta), as older systems
    store studies: refused as such, with what to do, rather than as no DICOM at all; a file that only starts
    like one is still not an image."""
    with pytest.raises(StudyError) as exc:
        load_study(data_store_file("OT-PAL-8-face.dcm"))
    assert_clear(exc, "OT-PAL-8-face.dcm", "DICOM data set without the header", "Part 10")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(b"\x08\x00" + bytes(range(200, 256)) * 4)
    with pytest.raises(StudyError) as exc:
        load_study(noise)
    assert_clear(exc, "noise.bin", "not a PNG, JPEG, DICOM")
