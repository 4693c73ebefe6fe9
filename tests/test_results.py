"""Results where clinicians read them: `quadrant check --sr/--sc/--fhir` on a real CR chest (RG1_UNCR from
pydicom-data), read back with highdicom and pydicom and validated with fhir.resources; evaluate's result
folders; and the refusals. The check runs once for the module (a real process, the demo model)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import highdicom as hd
import matplotlib
import numpy as np
import pydicom
import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.bundle import Bundle
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes as dicom_codes
from PIL import Image, ImageDraw, ImageFont

from conftest import QUADRANT
from quadrant import fonts, vocabulary
from quadrant.models.presets import MODELS_DIR
from quadrant.results import build_results, read_source, source_from_bytes
from quadrant.manifest import read_manifest
from quadrant.results import codes
from quadrant.results.dataset import write_dataset_results
from quadrant.verdict import Verdict

SAMPLES = MODELS_DIR / "samples"
QUESTION = "Is there a pleural effusion?"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
#: RG1_UNCR's own patient name, ID and birth date: they belong in the SR and SC, nowhere else
IDENTIFIERS = ("CompressedSamples", "9RG1", "19400305")


def rg1() -> Path:
    """pydicom-data's Philips CR chest, by path (pydicom's get_testdata_file would try the network first)."""
    spec = importlib.util.find_spec("data_store")
    assert spec is not None, "pydicom-data is not installed: it is in the 'test' extra"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "RG1_UNCR.dcm"


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """One `quadrant check` writing all three results, with an evidence map (drawn into the SC)."""
    out = tmp_path_factory.mktemp("results")
    paths = {"sr": out / "study.sr.dcm", "sc": out / "study.sc.dcm", "fhir": out / "study.fhir.json"}
    result = subprocess.run(
        [QUADRANT, "check", "--image", str(rg1()), "--question", QUESTION, "--json", "--evidence",
         "--sr", str(paths["sr"]), "--sc", str(paths["sc"]), "--fhir", str(paths["fhir"])],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return {**paths, "verdict": json.loads(result.stdout), "stdout": result.stdout, "stderr": result.stderr}


def _code(item) -> tuple[str, str]:
    return item.value.value, item.value.scheme_designator


def test_sr_is_filed_in_the_source_study_and_highdicom_reads_the_verdict_back(checked):
    source = pydicom.dcmread(rg1(), stop_before_pixels=True)
    sr = hd.sr.srread(checked["sr"])
    verdict = checked["verdict"]
    # the source study's patient and study modules, a new series, not for diagnostic use
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR Storage
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "AccessionNumber", "StudyDate", "StudyID"):
        assert sr.get(keyword) == source.get(keyword), keyword
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "COMPLETE"
    # TID 1500 with one measurement group holding the verdict
    (group,) = sr.content.get_image_measurement_groups()
    evaluations = {e.name.value: e for e in group.get_qualitative_evaluations()}
    assert _code(evaluations["VERDICT"]) == (verdict["quadrant"].upper(), codes.SCHEME)
    assert _code(evaluations["ANSWER"]) == ({"yes": "373066001", "no": "373067005"}[verdict["answer"]], "SCT")
    assert _code(evaluations["CONSISTENT"])[0] == ("373066001" if verdict["consistent"] else "373067005")
    assert _code(evaluations["IMAGE-RELIANT"])[0] == ("373066001" if verdict["image_reliant"] else "373067005")
    measured = {m.name.value: m.value for m in group.get_measurements()}
    assert measured["PHRASINGS"] == len(verdict["prompts"])
    assert measured["DISAGREEING"] == verdict["flip_count"]
    assert measured["REL-SHIFT"] == pytest.approx(verdict["shifts"]["relative_content"])
    assert measured["THRESHOLD"] == verdict["reliance"]["threshold"]
    assert (group.finding_type.value, group.finding_type.scheme_designator) == ("60046008", "SCT")
    texts = {t.name.value: t.value for t in find_content_items(group[0], value_type=hd.sr.ValueTypeValues.TEXT)}
    assert texts["QUESTION"] == QUESTION
    assert texts["NOTICE"].startswith("Not for diagnostic use")
    read = Verdict.from_json(verdict)  # the report speaks the verdict vocabulary, as every surface does
    assert (texts["MEANING"], texts["DECIDED-BY"], texts["ADVICE"]) == (
        vocabulary.meaning(read), vocabulary.decided_by(read), vocabulary.advice(read))
    assert texts["111001"] == "Quadrant"  # Algorithm Name, with the model's fingerprint among its parameters
    assert verdict["model"]["fingerprint"] in " ".join(
        t.value for t in find_content_items(group[0], name=dicom_codes.DCM.AlgorithmParameters))


def test_sr_references_the_source_image_and_the_secondary_capture_and_declares_its_private_scheme(checked):
    source = pydicom.dcmread(rg1(), stop_before_pixels=True)
    sr = hd.sr.srread(checked["sr"])
    sc = pydicom.dcmread(checked["sc"], stop_before_pixels=True)
    (group,) = sr.content.get_image_measurement_groups()
    assert [i.referenced_sop_instance_uid for i in group.source_images] == [source.SOPInstanceUID]
    (visual,) = find_content_items(group[0], name=dicom_codes.DCM.VisualExplanation)
    assert visual.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sc.SOPInstanceUID
    evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert evidence == {source.SOPInstanceUID, sc.SOPInstanceUID}
    # every coding scheme the content uses is standard or declared, as DICOM requires of a private one
    declared = {item.CodingSchemeDesignator: item for item in sr.CodingSchemeIdentificationSequence}
    used = {item.CodingSchemeDesignator for item in _all_codes(sr)}
    assert codes.SCHEME in used and codes.SCHEME in declared
    assert declared[codes.SCHEME].CodingSchemeUID == codes.SCHEME_UID
    assert used - {"DCM", "SCT", "UCUM", "RFC5646", codes.SCHEME} == set()


def _all_codes(dataset):
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                if "CodingSchemeDesignator" in item and "CodeValue" in item:
                    yield item
                yield from _all_codes(item)


def test_secondary_capture_is_the_card_in_the_same_study_readable_by_pydicom(checked):
    source = pydicom.dcmread(rg1(), stop_before_pixels=True)
    sc = pydicom.dcmread(checked["sc"])
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert sc.StudyInstanceUID == source.StudyInstanceUID and sc.PatientID == source.PatientID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID and "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.BurnedInAnnotation == "NO"  # plain-language text, and no identifier, is burned in
    pixels = sc.pixel_array
    assert sc.PhotometricInterpretation == "RGB" and pixels.shape[1] >= 512 and pixels.shape[2] == 3
    ARTIFACTS.mkdir(exist_ok=True)
    Image.fromarray(pixels).save(ARTIFACTS / "secondary-capture-rg1.png")
    # the card's band in the verdict's colour, and the evidence map's colour bar (red and blue) below it
    colour = {"green": (27, 110, 52), "amber": (166, 96, 0), "red": (176, 0, 32)}
    band = np.all(pixels == colour[vocabulary.tone(checked["verdict"]["quadrant"])], axis=-1).sum()
    assert band > 5000, band
    reds = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 80)
    blues = (pixels[..., 2] > 120) & (pixels[..., 0] < 60)
    assert reds.sum() > 200 and blues.sum() > 200


def test_fhir_bundle_validates_as_r5_and_names_the_study_not_the_patient(checked):
    text = checked["fhir"].read_text(encoding="utf-8")
    data = json.loads(text)
    bundle = Bundle.model_validate(data)
    assert bundle.type == "transaction"
    resources = {}
    for entry in data["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # each one on its own model
        resources.setdefault(resource["resourceType"], []).append((entry["fullUrl"], resource))
    (device_url, _), = resources["Device"]
    (_, observation), = resources["Observation"]
    (_, report), = resources["DiagnosticReport"]
    study_uid = pydicom.dcmread(rg1(), stop_before_pixels=True).StudyInstanceUID
    study = {"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}
    assert report["study"][0]["identifier"] == study and observation["derivedFrom"][0]["identifier"] == study
    assert observation["device"]["reference"] == device_url
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == checked["verdict"]["quadrant"].upper()
    assert any("Not for diagnostic use" in note["text"] for note in observation["note"])
    assert "subject" not in report and "subject" not in observation
    for identifier in IDENTIFIERS:
        assert identifier not in text


def test_identifiers_reach_only_the_sr_and_sc(checked):
    for identifier in IDENTIFIERS:
        assert identifier not in checked["stdout"] and identifier not in checked["stderr"]
    assert pydicom.dcmread(checked["sr"]).PatientID == "9RG1"


def test_uids_follow_the_result_so_a_resend_is_one_object(checked):
    """The same verdict gives the same SOP Instance UIDs (a PACS keeps one copy); another verdict, new ones."""
    verdict = Verdict.from_json(checked["verdict"])
    source = read_source(rg1(), "--sr")
    image = Image.new("RGB", (64, 64))
    again = build_results(source, [verdict], image, sr=True, sc=True)
    assert again.sr.SOPInstanceUID == pydicom.dcmread(checked["sr"]).SOPInstanceUID
    assert again.sc.SOPInstanceUID == pydicom.dcmread(checked["sc"]).SOPInstanceUID
    other = Verdict.from_json({**checked["verdict"], "quadrant": "Worst" if verdict.quadrant != "Worst" else "Ideal"})
    assert build_results(source, [other], image, sr=True).sr.SOPInstanceUID != again.sr.SOPInstanceUID


def test_finding_codes_are_dicoms_own():
    """Every SNOMED CT code the SR may use for a finding is in DICOM's code tables, with the same meaning."""
    for name, code in codes.finding_codes().items():
        found = [c for c in dicom_codes.SCT.dir() if getattr(dicom_codes.SCT, c).value == code.value]
        assert found, f"{name}: SCT {code.value} is not in DICOM's code tables"
        assert getattr(dicom_codes.SCT, found[0]).meaning == code.meaning
    assert codes.finding_code("Is there a small left pleural effusion?").value == "60046008"
    assert codes.finding_code("Is the ETT well positioned?") is None


def test_a_png_with_sr_sc_or_fhir_is_refused_with_one_line_before_the_model_loads(tmp_path, capsys):
    from quadrant.cli.main import main

    for option in ("--sr", "--sc", "--fhir"):
        target = tmp_path / "result"
        code = main(["check", "--image", str(SAMPLES / "nodule.png"), "--question", "Is there a nodule?", option,
                     str(target), "--model", str(tmp_path / "no-model-here")])  # it must fail before loading
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "no Study Instance UID" in lines[0] and option in lines[0], lines
        assert not target.exists()


def test_evaluate_writes_one_result_per_dicom_study_with_all_its_questions(tmp_path):
    study = tmp_path / "chest.dcm"
    study.write_bytes((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
    (tmp_path / "nodule.png").write_bytes((SAMPLES / "nodule.png").read_bytes())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,question,study_id\nchest.dcm,Is the heart enlarged?,c1\n"
                        "chest.dcm,Is there a pleural effusion?,c2\nnodule.png,Is there a nodule?,n1\n")
    command = [QUADRANT, "evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--quiet",
               "--sr-dir", str(tmp_path / "results"), "--fhir-dir", str(tmp_path / "results")]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "1 DICOM studies written, 0 already there, 1 rows not DICOM" in first.stderr
    (sr_path,) = (tmp_path / "results").glob("*.sr.dcm")
    (fhir_path,) = (tmp_path / "results").glob("*.fhir.json")
    groups = hd.sr.srread(sr_path).content.get_image_measurement_groups()
    questions = [t.value for g in groups for t in find_content_items(g[0], name=codes.QUESTION)]
    assert questions == ["Is the heart enlarged?", "Is there a pleural effusion?"]
    observations = [e for e in json.loads(fhir_path.read_text())["entry"]
                    if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) == 2
    # a rerun finds them there and writes nothing (what `evaluate` does after resuming a finished run)
    before = sr_path.stat().st_mtime_ns
    again = write_dataset_results(read_manifest(manifest), tmp_path / "run" / "samples.jsonl",
                                  {"sr": tmp_path / "results", "fhir": tmp_path / "results"})
    assert (again.studies, again.kept, again.not_dicom) == (0, 1, 1) and sr_path.stat().st_mtime_ns == before
    # a row reworded since: the resumed run checks it again, and the study's results are written anew with it
    manifest.write_text(manifest.read_text().replace("Is there a pleural effusion?", "Is there any effusion?"))
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0 and "1 DICOM studies written, 0 already there" in rerun.stderr, rerun.stderr
    groups = hd.sr.srread(sr_path).content.get_image_measurement_groups()
    assert [t.value for g in groups for t in find_content_items(g[0], name=codes.QUESTION)] == [
        "Is the heart enlarged?", "Is there any effusion?"]
    assert "Is there any effusion?" in fhir_path.read_text()


def test_the_apps_downloads_for_a_dicom_upload(tmp_path):
    """What the page offers after a DICOM check: the SR, SC and FHIR, filed under the upload's original header."""
    from quadrant.app.results import result_files
    from quadrant.app.service import CheckService
    from quadrant.check import Checker
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dicom = uploads / "upload.dcm"
    dicom.write_bytes((SAMPLES / "cardiomegaly-dicom.dcm").read_bytes())
    service = CheckService({"demo": Checker(load_model(ModelSpec("demo")))}, None, upload_dir=uploads).start()
    try:
        checked = service.check_upload(str(dicom), "Is the heart enlarged?")
        verdict = checked.verdict.to_json()
        files = result_files(checked, source_from_bytes(dicom.read_bytes(), "upload", "the results"),
                             tmp_path / "downloads")
        assert [f.name.split(".", 1)[1] for f in files] == ["sr.dcm", "sc.dcm", "fhir.json"]
        report = hd.sr.srread(files[0])
        assert report.StudyInstanceUID == pydicom.dcmread(dicom, stop_before_pixels=True).StudyInstanceUID
        (group,) = report.content.get_image_measurement_groups()
        assert group.get_qualitative_evaluations(codes.VERDICT)[0].value.meaning == verdict["quadrant"]
    finally:
        service.stop()


def test_the_sc_card_carries_a_map_drawn_before_as_it_would_draw_it(checked):
    """The app hands the SC the map it already shows (a map of a full-size film takes matplotlib over 100 ms):
    the card is the same picture, pixel for pixel, as the one that draws the map itself."""
    from quadrant.evidence_plot import verdict_overlay_png
    from quadrant.images import load_study
    from quadrant.results.card import render

    verdict = Verdict.from_json(checked["verdict"])
    image = load_study(rg1()).image
    assert verdict.evidence
    drawn = np.asarray(render(image, [verdict]))
    assert np.array_equal(np.asarray(render(image, [verdict], [verdict_overlay_png(verdict, image)])), drawn)


def test_text_in_any_script_survives_in_the_report(checked, tmp_path):
    """A question the user phrased in Chinese or Greek: the results are UTF-8, whatever the source's character
    set (RG1_UNCR's is Latin-1, which holds neither)."""
    question = "胸腔积液吗? Υπάρχει πλευριτική συλλογή;"
    data = dict(checked["verdict"])
    data["prompts"] = [{**data["prompts"][0], "text": question}, *data["prompts"][1:]]
    verdict = Verdict.from_json({**data, "question": question})
    results = build_results(read_source(rg1(), "--sr"), [verdict], Image.new("RGB", (64, 64)), sr=True, sc=True)
    results.save(sr=tmp_path / "r.sr.dcm", sc=tmp_path / "r.sc.dcm")
    (group,) = hd.sr.srread(tmp_path / "r.sr.dcm").content.get_image_measurement_groups()
    assert [t.value for t in find_content_items(group[0], name=codes.QUESTION)] == [question]
    assert pydicom.dcmread(tmp_path / "r.sc.dcm").PatientName == pydicom.dcmread(rg1()).PatientName


#: a header as real archives hold them: names with no ^, an ISO birth date, a sex DICOM does not allow, two
#: study dates, an hour that does not exist, an accession number over DICOM's 16 characters, an orientation in
#: letters that name no direction
MESSY = {"PatientName": "DOE JOHN", "ReferringPhysicianName": "SMITH ANN", "PatientBirthDate": "1951-02-03",
         "PatientSex": "U", "StudyDate": "20260101\\20260102", "StudyTime": "250000",
         "AccessionNumber": "ACC-2026-000012345", "PatientOrientation": "QQ\\ZZ"}


def written_as_is(dataset: pydicom.Dataset, values: dict[str, str]) -> None:
    """Header values set as the bytes an archive holds (an assignment would have pydicom check, and warn about,
    each one)."""
    for keyword, value in values.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        dataset[tag] = pydicom.dataelem.RawDataElement(tag, pydicom.datadict.dictionary_VR(keyword), len(value),
                                                       value.encode(), 0, False, True)


def messy_study(path: Path) -> Path:
    """RG1_UNCR with MESSY written into its header as it stands."""
    dataset = pydicom.dcmread(rg1())
    written_as_is(dataset, MESSY)
    dataset.save_as(path)
    return path


def test_a_header_that_breaks_dicoms_rules_is_filed_with_those_elements_empty(checked, tmp_path, caplog):
    """highdicom refused such a header with an error quoting the birth date (the whole check failed, and the
    node logged the date); now the results are written, the elements highdicom cannot take left empty (type 2:
    unknown), one line naming them, no value, and what it takes filed as it stands."""
    source = read_source(messy_study(tmp_path / "messy.dcm"), "--sr")
    with caplog.at_level("DEBUG"):
        results = build_results(source, [Verdict.from_json(checked["verdict"])], Image.new("RGB", (64, 64)),
                                sr=True, sc=True, fhir=True)
    results.save(sr=tmp_path / "r.sr.dcm", sc=tmp_path / "r.sc.dcm", fhir=tmp_path / "r.fhir.json")
    for written in (pydicom.dcmread(tmp_path / "r.sr.dcm"), pydicom.dcmread(tmp_path / "r.sc.dcm")):
        assert (written.PatientBirthDate, written.PatientSex, written.StudyDate, written.StudyTime) == ("", "", "", "")
        # the same names, by the standard
        assert (written.PatientName, written.ReferringPhysicianName) == ("DOE JOHN^", "SMITH ANN^")
        assert (written.PatientID, written.AccessionNumber) == ("9RG1", MESSY["AccessionNumber"])
    assert pydicom.dcmread(tmp_path / "r.sc.dcm").PatientOrientation == ""  # unknown, not invented
    assert "has PatientBirthDate, PatientSex, StudyDate, StudyTime not valid" in caplog.text
    for value in ("DOE", "1951", "SMITH", "9RG1", "ACC-", "2026010"):
        assert value not in caplog.text


def test_an_oblique_orientation_is_filed_as_the_study_gives_it(checked, tmp_path):
    """DICOM writes an oblique direction in two letters ("AL": anterior and left); highdicom takes one letter a
    value and refused the whole result. The SC carries the study's own orientation."""
    dataset = pydicom.dcmread(rg1())
    dataset.PatientOrientation = ["AL", "FH"]
    dataset.save_as(tmp_path / "oblique.dcm")
    results = build_results(read_source(tmp_path / "oblique.dcm", "--sc"), [Verdict.from_json(checked["verdict"])],
                            Image.new("RGB", (64, 64)), sc=True)
    assert list(results.sc.PatientOrientation) == ["AL", "FH"]


def test_a_library_user_sees_no_identifier_from_the_result_writers(checked, tmp_path):
    """Outside the `quadrant` command (which silences every library's warnings), in a process that logs as a
    server does: highdicom's and pydicom's warnings and log lines quote header values, and none may show."""
    study = messy_study(tmp_path / "messy.dcm")
    verdict = tmp_path / "verdict.json"
    verdict.write_text(json.dumps(checked["verdict"]))
    script = ("import json, logging, sys; logging.basicConfig(level=logging.DEBUG)\n"
              "from PIL import Image\n"
              "from quadrant.results import build_results, read_source\n"
              "from quadrant.verdict import Verdict\n"
              "verdict = Verdict.from_json(json.load(open(sys.argv[2])))\n"
              "build_results(read_source(sys.argv[1], 'the results'), [verdict], Image.new('RGB', (64, 64)),"
              " sr=True, sc=True, fhir=True)\n"
              "print('written')\n")
    result = subprocess.run([sys.executable, "-c", script, str(study), str(verdict)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout == "written\n", result.stderr
    assert "left empty in the results" in result.stderr
    for value in ("DOE", "JOHN", "1951", "SMITH", "9RG1", "ACC-", "2026010", "CompressedSamples"):
        assert value not in result.stderr


def test_a_japanese_study_is_filed_with_the_name_as_it_spells_it(checked, tmp_path):
    """A header in ISO 2022 IR 87 (the set's first value empty, as Japanese modalities write it), which
    highdicom refused ("'' is not a valid SpecificCharacterSetValues"): the results are UTF-8, the name in all
    three of its forms."""
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    dataset = pydicom.dcmread(rg1())
    dataset.SpecificCharacterSet, dataset.PatientName = ["", "ISO 2022 IR 87"], name
    dataset.save_as(tmp_path / "jp.dcm")
    assert b"\x1b$B" in (tmp_path / "jp.dcm").read_bytes()  # written in the Japanese set, escape sequences and all
    results = build_results(read_source(tmp_path / "jp.dcm", "--sr"), [Verdict.from_json(checked["verdict"])],
                            Image.new("RGB", (64, 64)), sr=True, sc=True)
    results.save(sr=tmp_path / "r.sr.dcm", sc=tmp_path / "r.sc.dcm")
    for written in (pydicom.dcmread(tmp_path / "r.sr.dcm"), pydicom.dcmread(tmp_path / "r.sc.dcm")):
        assert (written.SpecificCharacterSet, str(written.PatientName)) == ("ISO_IR 192", name)


#: a question in each script DejaVu Sans lacks, as a user might type it with their own phrasings
CJK = {"Chinese": "胸腔积液吗", "Japanese": "胸水はありますか", "Korean": "흉수가 있습니까"}


def _drawn(text: str, font) -> bytes:
    """`text` drawn alone, black on white, as pixels (a face's missing-glyph box is the same for every letter)."""
    picture = Image.new("L", (400, 60), 255)
    draw = ImageDraw.Draw(picture)
    if isinstance(font, fonts.Face):
        font.draw(draw, (5, 5), text, 0)
    else:
        draw.text((5, 5), text, font=font, fill=0)
    return picture.tobytes()


def test_the_card_draws_chinese_japanese_and_korean_letters_not_boxes():
    """DejaVu Sans alone draws every CJK letter as the same box; the card's face draws each its own glyph from
    an installed fallback (CI installs fonts-wqy-microhei)."""
    from quadrant.results.card import _font

    assert fonts.fallbacks(), "no CJK face installed: apt-get install fonts-wqy-microhei (.ci/run does)"
    letters = ["积", "液", "は", "흉", "있"]  # Chinese, Japanese kana, Korean
    dejavu = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 21)
    assert len({_drawn(letter, dejavu) for letter in letters}) == 1  # the boxes the card drew before
    assert len({_drawn(letter, _font(21, True)) for letter in letters}) == len(letters)
    assert _drawn("Effusion?", _font(21, True)) == _drawn("Effusion?", ImageFont.truetype(
        str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"), 21))  # Latin as before


def test_a_question_without_spaces_is_wrapped_within_the_card():
    """Chinese and Japanese put no spaces between words: a long question is cut between letters, none lost."""
    from quadrant.results.card import _CARD_WIDTH, _font, _wrap

    question = "Question: " + "心脏是否增大，肺部是否有结节或者实变，胸腔积液吗" * 3
    lines = _wrap(question, _font(21, True), _CARD_WIDTH)
    assert len(lines) >= 3 and "".join(lines) == question
    assert all(_font(21, True).length(line) <= _CARD_WIDTH for line in lines)


def test_the_maps_title_has_every_letter_of_a_cjk_question(checked):
    """The overlay's title quotes the question: matplotlib falls back to the installed CJK face, and says
    nothing about glyphs missing from DejaVu Sans."""
    from quadrant.evidence_plot import verdict_overlay_png

    data = dict(checked["verdict"])
    verdict = Verdict.from_json({**data, "question": CJK["Korean"] + " " + CJK["Chinese"]})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        drawn = verdict_overlay_png(verdict, Image.new("RGB", (256, 256)))
    assert drawn.startswith(b"\x89PNG")
    assert not [w for w in seen if "missing from font" in str(w.message)]
