"""Study scope: a verdict only for chest radiographs. Real DICOM files (pydicom's CT, MR, multi-frame MR, RT
dose and RGB secondary capture; pydicom-data's Philips CR chest; the bundled samples) through the scope rule,
the Checker, the command line, `evaluate` and the app's service, which all apply the same rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from conftest import write_png
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.cli.main import main
from quadrant.errors import OptionError, StudyError, StudyScopeError
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.models.presets import MODELS_DIR
from quadrant.scope import MIN_SIDE, check_scope_options, names_chest, require_scope, study_scope

SAMPLES = MODELS_DIR / "samples"
QUESTION = "Is there cardiomegaly?"
#: pydicom's bundled files that are not chest radiographs, and what the one-line refusal must say
REFUSED = {
    "CT_small.dcm": "the study is a CT; Quadrant checks chest radiographs (CR, DX)",
    "MR_small.dcm": "the study is an MR; Quadrant checks chest radiographs (CR, DX)",
    "emri_small.dcm": "the study is an MR of the HEAD, 10 frames; Quadrant checks chest radiographs (CR, DX)",
    "rtdose.dcm": "the study is an RTDOSE, 15 frames, 10 x 10 pixels; Quadrant checks chest radiographs (CR, DX)",
    "SC_rgb.dcm": "the study is an OT, colour (RGB); Quadrant checks chest radiographs (CR, DX)",
}


def rg1_uncr() -> Path:
    """pydicom-data's Philips CR chest, reached by path (get_testdata_file would try the network first)."""
    return Path(importlib.util.find_spec("data_store").origin).parent / "data" / "RG1_UNCR.dcm"


def multi_frame_chest(path: Path, frames: int = 3) -> Path:
    """The bundled CR chest sample as a multi-frame file: frame i is the sample with its stored values scaled
    by (i + 1) / frames, so every frame decodes to a different picture."""
    ds = pydicom.dcmread(SAMPLES / "cardiomegaly-dicom.dcm")
    pixels = ds.pixel_array.astype(np.uint32)
    stack = np.stack([(pixels * (i + 1) // frames).astype(np.uint16) for i in range(frames)])
    ds.NumberOfFrames = frames
    ds.PixelData = stack.tobytes()
    ds.save_as(path)
    return path


def dicom_with(path: Path, **elements) -> Path:
    """The bundled CR chest sample with some header elements changed (None deletes one)."""
    ds = pydicom.dcmread(SAMPLES / "cardiomegaly-dicom.dcm")
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def checker(tiny_model):
    return Checker(load_model(ModelSpec(tiny_model("llava"))), "torch", CheckOptions(k=2))


# -- the rule ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REFUSED))
def test_pydicoms_non_chest_files_are_out_of_scope_with_one_line_saying_what_they_are(name):
    study = load_study(get_testdata_file(name))
    judged = study_scope(study)
    assert not judged.in_scope and judged.reasons and judged.verified_from_header
    with pytest.raises(StudyScopeError) as info:
        require_scope(study)
    assert str(info.value) == REFUSED[name]
    assert isinstance(info.value, StudyError)  # every surface that shows a StudyError shows this one


def test_a_real_cr_chest_and_the_bundled_samples_are_in_scope():
    for path in [rg1_uncr(), *sorted(SAMPLES.glob("*.dcm")), *sorted(SAMPLES.glob("[a-z]*.png"))]:
        if path.name.startswith("evidence-"):
            continue  # the evidence overlays are pictures for the README, not studies
        judged = study_scope(load_study(path))
        assert judged.in_scope, (path.name, judged.reasons)
        assert judged.verified_from_header is (path.suffix == ".dcm")
    facts = load_study(rg1_uncr()).facts
    assert (facts.modality, facts.body_part, facts.view, facts.photometric, facts.bits) == (
        "CR", "CHEST", "PA", "MONOCHROME1", 15)


def test_header_facts_never_include_an_identifier(tmp_path):
    path = dicom_with(tmp_path / "x.dcm", PatientName="Doe^Jane", PatientID="MRN-4711", PatientBirthDate="19510203")
    study = load_study(path)
    flat = json.dumps(study_scope(study).to_json("chest-radiograph", ("CR", "DX"))) + repr(study.facts)
    assert not any(secret in flat for secret in ("Doe", "Jane", "MRN-4711", "19510203"))


@pytest.mark.parametrize("body_part, in_scope", [
    ("CHEST", True), ("Chest PA", True), ("CHEST_LAT", True), ("THORAX", True), ("torax", True),
    ("HEAD", False), ("ABDOMEN", False), ("TSPINE", False), (None, True),
])
def test_body_part_must_name_the_chest_when_present(tmp_path, body_part, in_scope):
    judged = study_scope(load_study(dicom_with(tmp_path / "x.dcm", BodyPartExamined=body_part)))
    assert judged.in_scope is in_scope, judged.reasons
    if body_part is None:
        assert any("names no body part" in w for w in judged.warnings)


@pytest.mark.parametrize("intent, in_scope", [("FOR PRESENTATION", True), ("FOR PROCESSING", False),
                                               ("for processing", False), (None, True)])
def test_a_digital_radiographs_raw_detector_image_is_out_of_scope(tmp_path, intent, in_scope):
    """A DX FOR PROCESSING image is the detector's unprocessed data: no model was trained on one, and it was
    once checked like any other."""
    given = {"PresentationIntentType": intent} if intent else {}  # CR has no such element
    study = load_study(dicom_with(tmp_path / "x.dcm", Modality="DX", **given))
    judged = study_scope(study)
    assert judged.in_scope is in_scope, judged.reasons
    assert judged.to_json("chest-radiograph", ("CR", "DX"))["presentation_intent"] == intent
    if not in_scope:
        with pytest.raises(StudyScopeError, match=r"^the study is a DX of the CHEST, FOR PROCESSING; Quadrant checks "
                                                  r"chest radiographs \(CR, DX\) FOR PRESENTATION \(the processed "):
            require_scope(study)


def test_modalities_are_configurable_and_checked():
    study = load_study(SAMPLES / "cardiomegaly-dicom.dcm")  # CR
    assert study_scope(study, ("CR", "DX")).in_scope
    assert not study_scope(study, ("DX",)).in_scope
    assert check_scope_options("chest-radiograph", "dx, cr") == ("chest-radiograph", ("DX", "CR"))
    for scope, modalities in (("everything", "CR"), ("any", ""), ("any", "C R")):
        with pytest.raises(OptionError):
            check_scope_options(scope, modalities)
    assert names_chest("PORT CHEST") and not names_chest("THORACOLUMBAR")


def test_rasters_are_in_scope_unless_colour_or_tiny_and_say_they_were_not_verified(tmp_path):
    gray = study_scope(load_study(write_png(tmp_path / "gray.png")))
    assert gray.in_scope and not gray.verified_from_header
    assert any("not verified from a header" in w for w in gray.warnings)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    colour = study_scope(load_study(tmp_path / "colour.png"))
    assert not colour.in_scope and colour.description == "a colour PNG"
    # a gray radiograph saved as JPEG keeps a little chroma noise, and a small coloured marker: still gray
    pixels = np.stack([rng.integers(0, 256, (96, 96), dtype=np.uint8)] * 3, axis=-1)
    pixels[2:6, 2:6] = (255, 0, 0)
    Image.fromarray(pixels).save(tmp_path / "marked.jpg", quality=85)
    assert study_scope(load_study(tmp_path / "marked.jpg")).in_scope
    small = write_png(tmp_path / "small.png", size=(MIN_SIDE + 10, MIN_SIDE - 1))
    with pytest.raises(StudyScopeError, match=f"the study is a PNG, 74 x 63 pixels; .* at least {MIN_SIDE} pixels"):
        require_scope(load_study(small))
    assert study_scope(load_study(write_png(tmp_path / "edge.png", size=(MIN_SIDE, MIN_SIDE)))).in_scope


def test_a_blank_picture_is_out_of_scope_whatever_its_gray(tmp_path):
    """A flat gray, a black or white page, a film windowed into white: the model sees nothing, and the
    comparison with a mid-gray reference still called its answer image-reliant (a flat 200 gray PNG got a green
    Ideal on `demo`). A faint film is still a film."""
    for value in (0, 128, 200, 255):
        Image.new("RGB", (256, 256), (value, value, value)).save(tmp_path / f"flat{value}.png")
        with pytest.raises(StudyScopeError, match=r"a PNG, blank \(one flat gray\); .* that show an image"):
            require_scope(load_study(tmp_path / f"flat{value}.png"))
    white = load_study(dicom_with(tmp_path / "white.dcm", WindowCenter=-5000, WindowWidth=10))
    assert white.image.getextrema() == ((255, 255),) * 3  # every value above the window
    assert study_scope(white).reasons == ["blank: the picture spans 0 of 255 gray levels"]
    film = np.asarray(Image.open(SAMPLES / "cardiomegaly-effusion.png").convert("L"), dtype=float)
    faint = (110 + film / 255 * 40).round().astype(np.uint8)  # 40 gray levels where the film had 255
    Image.fromarray(faint).save(tmp_path / "faint.png")
    assert study_scope(load_study(tmp_path / "faint.png")).in_scope


def test_multi_frame_needs_a_frame_and_frame_n_decodes_that_frame(tmp_path):
    path = multi_frame_chest(tmp_path / "cine.dcm")
    with pytest.raises(StudyScopeError, match=r"a CR of the CHEST, 3 frames; .* choose one with --frame N \(1 to 3\)"):
        require_scope(load_study(path))
    frames = [load_study(path, frame=n) for n in (1, 2, 3)]
    assert [study_scope(s).frame for s in frames] == [1, 2, 3] and all(study_scope(s).in_scope for s in frames)
    means = [np.asarray(s.image, dtype=float).mean() for s in frames]
    assert means[0] != means[1] != means[2]
    assert load_study(path).image.tobytes() == frames[0].image.tobytes()  # no choice: the first, as before
    for bad, message in ((4, "has 3 frames; there is no frame 4"), (0, "counted from 1")):
        with pytest.raises(StudyError, match=message):
            load_study(path, frame=bad)
    assert study_scope(load_study(SAMPLES / "cardiomegaly-dicom.dcm", frame=1)).frame == 1
    with pytest.raises(StudyError, match="has 1 frame; there is no frame 2"):
        load_study(SAMPLES / "nodule.png", frame=2)


# -- every surface applies it ------------------------------------------------------------------------------

def test_the_checker_refuses_before_any_model_work_and_check_each_sets_it_aside(checker):
    mr = load_study(get_testdata_file("emri_small.dcm"))
    with pytest.raises(StudyScopeError, match="an MR of the HEAD"):
        checker.check(mr, QUESTION)
    chest = load_study(SAMPLES / "cardiomegaly-dicom.dcm")
    out = checker.check_each([CheckRequest(mr, QUESTION), CheckRequest(chest, QUESTION)])
    assert isinstance(out[0], StudyScopeError) and out[1].quadrant in ("Ideal", "Fragile", "Dangerous", "Worst")
    assert out[1].scope["in_scope"] and out[1].scope["modality"] == "CR" and out[1].warnings == []


def test_the_research_override_records_out_of_scope(checker):
    loose = Checker(checker.loaded, "torch", CheckOptions(k=2, scope="any"))
    verdict = loose.check(load_study(get_testdata_file("emri_small.dcm"), frame=2), QUESTION)
    assert not verdict.in_scope
    scope = verdict.to_json()["scope"]
    assert scope["in_scope"] is False and scope["rule"] == "any" and scope["frame"] == 2 and scope["frames"] == 10
    assert scope["reasons"][:2] == ["modality MR is not a radiograph Quadrant checks (CR, DX)",
                                    "body part HEAD is not the chest"]
    assert verdict.warnings[0].startswith("OUT OF SCOPE, research only: modality MR")
    assert verdict.to_json()["schema_version"] == 1


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["CT_small.dcm", "emri_small.dcm", "rtdose.dcm", "SC_rgb.dcm"])
def test_the_command_line_refuses_with_exit_2_and_one_line_before_the_model_loads(tmp_path, capsys, name):
    code, out, err = run(capsys, "check", "--image", get_testdata_file(name), "--question", QUESTION,
                         "--model", str(tmp_path / "no-such-model"))  # the model would fail: it is never reached
    assert code == 2 and out == ""
    assert err == f"quadrant check: error: {REFUSED[name]}\n"


def test_the_command_line_checks_a_chosen_frame_and_the_terminal_marks_out_of_scope(tmp_path, tiny_model, capsys):
    cine = multi_frame_chest(tmp_path / "cine.dcm")
    code, out, _ = run(capsys, "check", "--image", str(cine), "--frame", "2", "--question", QUESTION, "--json",
                       "--model", tiny_model("llava"), "-k", "2")
    verdict = json.loads(out)
    assert code == 0 and verdict["scope"]["frame"] == 2 and verdict["scope"]["in_scope"]
    code, out, err = run(capsys, "check", "--image", str(cine), "--question", QUESTION, "--model", tiny_model("llava"))
    assert code == 2 and "choose one with --frame N (1 to 3)" in err
    code, out, _ = run(capsys, "check", "--image", get_testdata_file("CT_small.dcm"), "--question", QUESTION,
                       "--scope", "any", "--model", tiny_model("llava"), "-k", "2")
    assert code == 0
    verdict_line = next(line for line in out.splitlines() if line.startswith("Verdict"))
    assert verdict_line.startswith("Verdict OUT OF SCOPE, RESEARCH ONLY: ")
    assert "Warning OUT OF SCOPE, research only: modality CT" in out
    code, _, err = run(capsys, "check", "--image", str(cine), "--question", QUESTION, "--modalities", "C R")
    assert code == 2 and "modalities must be DICOM modality codes" in err


def test_evaluate_sets_out_of_scope_rows_aside_and_reads_a_frame_column(tmp_path, tiny_model, capsys):
    cine = multi_frame_chest(tmp_path / "cine.dcm")
    rows = [{"image": str(cine), "question": QUESTION, "study_id": "cine", "frame": 3},
            {"image": get_testdata_file("MR_small.dcm"), "question": QUESTION, "study_id": "mr"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, _ = run(capsys, "evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--quiet",
                     "--model", tiny_model("llava"), "-k", "2")
    assert code == 0
    (sample,) = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sample["study_id"] == "cine" and sample["scope"]["frame"] == 3
    (error,) = [json.loads(line) for line in (tmp_path / "run" / "errors.jsonl").read_text().splitlines()]
    assert error["study_id"] == "mr" and error["error"] == "the study is an MR; Quadrant checks chest radiographs (CR, DX)"


def test_the_apps_service_refuses_an_uploaded_mr_with_the_same_line(checker, tmp_path):
    from quadrant.app.service import CheckService

    service = CheckService({"tiny": checker}, None, upload_dir=tmp_path).start()
    try:
        upload = tmp_path / "upload.dcm"
        upload.write_bytes(Path(get_testdata_file("emri_small.dcm")).read_bytes())
        with pytest.raises(StudyScopeError, match=r"^the study is an MR of the HEAD, 10 frames; Quadrant checks"):
            service.check(str(upload), QUESTION)
        chest = tmp_path / "chest.dcm"
        chest.write_bytes((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
        assert service.check(str(chest), QUESTION)["scope"]["in_scope"] is True  # and the server still serves
    finally:
        service.stop()
