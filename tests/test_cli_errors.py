"""Every kind of bad input the command line must refuse: exit 2, one line naming the problem,
no traceback. Most cases run the command in-process (the real CLI code path); a few run the installed
console script as a separate process, exactly as a user would."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import QUADRANT
from quadrant.cli.main import main

QUESTION = "Is there a pleural effusion?"
SAMPLE_DICOM = str(Path(__file__).parents[1] / "models" / "samples" / "cardiomegaly-dicom.dcm")


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims huge dimensions (no pixel data needed to refuse it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _dicom_without_pixels(path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET123"
    ds.Modality = "CR"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _truncated_png(path: Path, study_png: str) -> Path:
    data = Path(study_png).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _unsupported_dicom() -> str:
    return get_testdata_file("MR_small_jpeg_ls_lossless.dcm")


CASES = {
    "missing path": (lambda tmp, png: str(tmp / "nope.png"), "nope.png"),
    "empty path": (lambda tmp, png: "", "the path is empty"),  # once refused as the folder "."
    "a folder": (lambda tmp, png: str(tmp), "folder"),
    "zero bytes": (lambda tmp, png: _write(tmp / "empty.png", b""), "empty"),
    "not an image": (lambda tmp, png: _write(tmp / "notes.png", b"hello"), "notes.png"),
    "truncated": (lambda tmp, png: str(_truncated_png(tmp / "cut.png", png)), "cut.png"),
    "huge dimensions": (lambda tmp, png: str(_png_header_only(tmp / "huge.png", 60000, 60000)), "huge.png"),
    "DICOM without pixels": (lambda tmp, png: str(_dicom_without_pixels(tmp / "nopix.dcm")), "pixel data"),
}


def _run(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_clean_line(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_study_exits_2_with_one_line(case, tmp_path, study_png, capsys):
    make, expected = CASES[case]
    image = make(tmp_path, study_png)
    code, out, err = _run(capsys, ["check", "--image", image, "--question", QUESTION, "--json"])
    _assert_one_clean_line(code, out, err, expected)
    assert "SECRET123" not in err and "Doe" not in err


def test_dicom_in_a_syntax_no_installed_decoder_reads(tmp_path):
    """As on a machine without the hospital extra, whose highdicom brings the JPEG-LS decoder: the console
    script run with `jpeg_ls` shadowed by a module that cannot be imported (this test was once skipped in CI)."""
    shadow = tmp_path / "without-pyjpegls"
    shadow.mkdir()
    (shadow / "jpeg_ls.py").write_text("raise ImportError('pyjpegls is not installed on this machine')\n")
    done = subprocess.run([QUADRANT, "check", "--image", _unsupported_dicom(), "--question", QUESTION],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(shadow)})
    _assert_one_clean_line(done.returncode, done.stdout, done.stderr, "JPEG-LS", "pip install")


@pytest.mark.parametrize(
    "question, expected",
    [("", "empty"), ("   ", "empty"), ("Is there " + "a very long effusion " * 20 + "?", "long"),
     ("What is the cardiothoracic ratio?", "yes or no"), ("Describe the lungs.", "yes or no")],
)
def test_bad_question_exits_2_with_one_line(question, expected, study_png, capsys):
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", question])
    _assert_one_clean_line(code, out, err, expected)


def test_bad_paraphrase_file_and_missing_model(tmp_path, study_png, capsys):
    bad = tmp_path / "p.json"
    bad.write_text('[{"text": 3}]')
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, "--paraphrases", str(bad)])
    _assert_one_clean_line(code, out, err, "p.json")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION,
                                   "--model", str(tmp_path / "no-such-model")])
    _assert_one_clean_line(code, out, err, "no-such-model")


@pytest.mark.parametrize("option", ["--paraphrases", "--paraphrase-bank", "--chat-template", "--adapter",
                                    "--paraphraser"])
def test_every_file_option_names_a_missing_file(option, tmp_path, study_png, capsys):
    """Each option that reads a file, given one that is not there: refused before any model loads."""
    missing = str(tmp_path / f"missing{option}")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, option, missing])
    _assert_one_clean_line(code, out, err, missing)


def test_an_output_never_replaces_a_file_the_check_reads(tmp_path, study_png, capsys):
    """`--sr` naming the study once wrote the report over the patient's image."""
    study = tmp_path / "chest.dcm"
    study.write_bytes(Path(SAMPLE_DICOM).read_bytes())
    before = study.read_bytes()
    code, out, err = _run(capsys, ["check", "--image", str(study), "--question", QUESTION, "--sr", str(study)])
    _assert_one_clean_line(code, out, err, "--sr", "is the file --image reads")
    (tmp_path / "link.png").symlink_to(study_png)
    code, out, err = _run(capsys, ["check", "--image", str(tmp_path / "link.png"), "--question", QUESTION,
                                   "--evidence-png", study_png])
    _assert_one_clean_line(code, out, err, "--evidence-png", "is the file --image reads")
    phrasings = tmp_path / "phrasings.txt"
    phrasings.write_text("Is an effusion present?\nIs there fluid in the pleural space?\n")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, "--paraphrases",
                                   str(phrasings), "--fhir", str(phrasings)])
    _assert_one_clean_line(code, out, err, "--fhir", "is the file --paraphrases reads")
    assert study.read_bytes() == before and "fluid" in phrasings.read_text()


def test_two_outputs_naming_one_file_or_a_missing_folder_are_refused(tmp_path, study_png, capsys):
    out = str(tmp_path / "result.dcm")
    code, o, err = _run(capsys, ["check", "--image", SAMPLE_DICOM, "--question", QUESTION, "--sr", out, "--sc", out])
    _assert_one_clean_line(code, o, err, "--sr and --sc both name")
    code, o, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, "--evidence-png",
                                 str(tmp_path / "none" / "map.png")])
    _assert_one_clean_line(code, o, err, "--evidence-png", "does not exist")


LIBRARY_MESSAGE = "Unable to convert '1951-02-03' to 'DA' object for DOE^JOHN"  # as pydicom words it


def test_a_system_error_says_the_systems_reason_never_the_file_name(study_png, capsys, monkeypatch):
    """A full disk or a folder not writable is not the user's input and not a bug: the one line gives the
    system's reason, without the file name, which can be a patient's (DOE_JOHN.dcm)."""
    def fails(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/data/DOE_JOHN_19510203.dcm")

    monkeypatch.setattr("quadrant.cli.check.load_study", fails)
    code = main(["check", "--image", study_png, "--question", QUESTION])
    err = capsys.readouterr().err
    assert code == 3 and "quadrant check: error: Permission denied (PermissionError at tests/" in err, err
    assert "DOE" not in err and "1951" not in err and len(err.strip().splitlines()) == 1


def test_an_unexpected_error_names_its_type_and_line_never_its_text(study_png, capsys, monkeypatch):
    """A library's message quotes the value it choked on, which in a header can identify the patient."""
    def fails(*args, **kwargs):
        raise ValueError(LIBRARY_MESSAGE)

    monkeypatch.setattr("quadrant.cli.check.load_study", fails)
    code = main(["check", "--image", study_png, "--question", QUESTION])
    err = capsys.readouterr().err
    assert code == 3 and "unexpected error: ValueError at tests/test_cli_errors.py:" in err, err
    assert "1951" not in err and "DOE" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("QUADRANT_DEBUG", "1")  # an engineer on test data sees it whole
    with pytest.raises(ValueError, match="1951"):
        main(["check", "--image", study_png, "--question", QUESTION])


def test_unexpected_names_the_raising_line_inside_a_library():
    from quadrant.errors import unexpected

    try:
        pydicom.valuerep.DA("1951-02-03x")
    except ValueError as exc:
        text = unexpected(exc)
    assert text.startswith("ValueError at pydicom/valuerep.py:") and "1951" not in text
    assert unexpected(RuntimeError("no traceback")) == "RuntimeError"


def test_unknown_options_exit_2_with_one_line(study_png, tiny_model, capsys):
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, "--reliance", "vibes"])
    _assert_one_clean_line(code, out, err, "vibes")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION, "--reliance", "flip",
                                   "--threshold", "0.5"])  # the flip rule has no threshold: not silently dropped
    _assert_one_clean_line(code, out, err, "--threshold", "flip rule has no threshold")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION,
                                   "--model", tiny_model("llava"), "--backend", "tensorflow"])
    _assert_one_clean_line(code, out, err, "unknown backend")
    code, out, err = _run(capsys, ["check", "--image", study_png, "--question", QUESTION,
                                   "--model", tiny_model("paligemma"), "--ablation", "none"])
    _assert_one_clean_line(code, out, err, "without an image")


def test_the_installed_command_reports_bad_input_without_traceback(tmp_path):
    """As a user runs it: a separate process, the console script, a file that is not an image."""
    notes = tmp_path / "scan.jpg"
    notes.write_text("not a picture")
    script = Path(QUADRANT)
    assert script.exists(), "the quadrant console script is not installed"
    done = subprocess.run([str(script), "check", "--image", str(notes), "--question", QUESTION, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "scan.jpg" in done.stderr
    assert "Traceback" not in done.stderr
