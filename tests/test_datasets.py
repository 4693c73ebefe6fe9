"""`quadrant manifest mimic-cxr|padchest` on a few synthetic rows written in the datasets' published formats
(gzip CSVs with their real headers, the folder layouts, JPEGs for MIMIC-CXR-JPG, 16-bit grayscale PNGs for
PadChest): the row counts and labels the rules give, no patient identifier in any output, exit 2 naming a
missing file or column, and `quadrant evaluate` on the result with the bundled demo model."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quadrant.cli.main import main
from quadrant.datasets.common import label_table
from quadrant.images import load_study
from quadrant.manifest import ManifestRow, read_manifest, write_manifest
from quadrant.paraphrases import FINDING_QUESTIONS, FINDINGS, Phrasing

# ------------------------------------------------------------------------------------ MIMIC-CXR-JPG, synthetic
CHEXPERT_COLUMNS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
                    "Pneumonia", "Pneumothorax", "Support Devices"]
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
SUBJECTS = ("10000032", "11000011", "19999987")  # patient identifiers: only ever inside the image path
# dicom_id -> (subject, study, ViewPosition, split); ids chosen so that order by dicom_id is visible
IMAGES = {
    "2b3c4d5e-00000000-00000000-00000000-00000001": (SUBJECTS[0], "50000001", "PA", "test"),
    "1a2b3c4d-00000000-00000000-00000000-00000002": (SUBJECTS[0], "50000001", "LATERAL", "test"),
    "3c4d5e6f-00000000-00000000-00000000-00000003": (SUBJECTS[0], "50000001", "AP", "test"),
    "4d5e6f70-00000000-00000000-00000000-00000004": (SUBJECTS[0], "50000002", "LATERAL", "test"),
    "6f708192-00000000-00000000-00000000-00000006": (SUBJECTS[1], "50000003", "AP", "train"),
    "5e6f7081-00000000-00000000-00000000-00000005": (SUBJECTS[1], "50000003", "AP", "train"),
    "708192a3-00000000-00000000-00000000-00000007": (SUBJECTS[2], "50000004", "PA", "test"),
}
# study -> its labels (columns not named are blank: "not mentioned")
LABELS = {
    ("10000032", "50000001"): {"Pleural Effusion": "1.0", "Cardiomegaly": "0.0", "Edema": "-1.0"},
    ("10000032", "50000002"): {"Pneumonia": "1.0"},
    ("11000011", "50000003"): {"Pneumothorax": "1.0", "Pleural Effusion": "0.0", "Support Devices": "1.0",
                               "Cardiomegaly": "-1.0"},
    ("19999987", "50000004"): {"No Finding": "1.0"},
}


def write_gzip_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def make_mimic(root: Path, images: dict = IMAGES, labels: dict = LABELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_gzip_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_COLUMNS],
                   [{"subject_id": s, "study_id": st, **values} for (s, st), values in labels.items()])
    meta = [{"dicom_id": d, "subject_id": s, "study_id": st, "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
             "ViewPosition": view, "Rows": 80, "Columns": 64, "StudyDate": 21800506, "StudyTime": 213014.531,
             "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)", "ViewCodeSequence_CodeMeaning": "postero-anterior",
             "PatientOrientationCodeSequence_CodeMeaning": "Erect"} for d, (s, st, view, _) in images.items()]
    write_gzip_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_COLUMNS, meta)
    write_gzip_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
                   [{"dicom_id": d, "study_id": st, "subject_id": s, "split": sp} for d, (s, st, _, sp) in images.items()])
    rng = np.random.default_rng(0)
    for dicom_id, (subject, study, _, _) in images.items():
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (80, 64), dtype=np.uint8), mode="L").save(folder / f"{dicom_id}.jpg")
    return root


# ------------------------------------------------------------------------------------------ PadChest, synthetic
PADCHEST_COLUMNS = ["", "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth",
                    "PatientSex_DICOM", "ViewPosition_DICOM", "Projection", "MethodProjection", "Pediatric",
                    "Modality_DICOM", "Manufacturer_DICOM", "PhotometricInterpretation_DICOM",
                    "PixelRepresentation_DICOM", "PixelAspectRatio_DICOM", "SpatialResolution_DICOM",
                    "BitsStored_DICOM", "WindowCenter_DICOM", "WindowWidth_DICOM", "Rows_DICOM", "Columns_DICOM",
                    "XRayTubeCurrent_DICOM", "Exposure_DICOM", "ExposureInuAs_DICOM", "ExposureTime",
                    "RelativeXRayExposure_DICOM", "ReportID", "Report", "MethodLabel", "Labels", "Localizations",
                    "LabelsLocalizationsBySentence", "labelCUIS", "LocalizationsCUIS"]
PATIENT_ID, PATIENT_BIRTH, REPORT = "77291034465518203", "1931.0", "derrame pleural SECRETREPORT"
# ImageID stem -> (ImageDir, Projection, MethodLabel, Labels cell)
PADCHEST = {
    "i01": ("0", "PA", "Physician", "['pleural effusion', ' cardiomegaly']"),
    "i02": ("0", "AP", "RNN_model", "['normal']"),
    "i03": ("12", "AP_horizontal", "Physician", "['pneumothorax']"),
    "i04": ("12", "L", "Physician", "['pleural effusion']"),
    "i05": ("12", "PA", "Physician", "['exclude']"),
    "i06": ("0", "PA", "Physician", ""),
    "i07": ("0", "PA", "Physician", "__import__('os').system('touch PWNED')"),
    "i08": ("12", "PA", "RNN_model", "['Laminar Atelectasis ', 'NSG tube']"),
}
FINDINGS_ASKED = "pleural effusion,cardiomegaly,atelectasis,no finding,nasogastric tube"


def image_id(stem: str) -> str:
    return f"2168401113669640{stem}_00-075-157.png"


def tag(study_id: str) -> str:
    """The synthetic image's short name ("i01") inside a PadChest row's study_id."""
    return re.search(r"i0\d", study_id).group()


def pixels16(seed: int) -> np.ndarray:
    """16-bit grayscale with values far above 255 (as PadChest's): a cast to 8 bits would show."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1200, 3900, 64)[None, :] + np.linspace(0, 300, 80)[:, None]  # 64 px a side: in scope
    return (ramp + rng.integers(0, 50, (80, 64))).astype(np.uint16)


def make_padchest(root: Path, gz: bool = False, rows: dict = PADCHEST) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for n, (stem, (folder, projection, method, labels)) in enumerate(rows.items()):
        records.append({"": n, "ImageID": image_id(stem), "ImageDir": folder, "StudyDate_DICOM": 20140915,
                        "StudyID": f"study{stem}", "PatientID": PATIENT_ID, "PatientBirth": PATIENT_BIRTH,
                        "PatientSex_DICOM": "F", "ViewPosition_DICOM": "POSTEROANTERIOR", "Projection": projection,
                        "MethodProjection": "Manual review of DICOM fields", "Pediatric": "No",
                        "Modality_DICOM": "CR", "PhotometricInterpretation_DICOM": "MONOCHROME2",
                        "BitsStored_DICOM": 12, "Rows_DICOM": 80, "Columns_DICOM": 64, "ReportID": 4000 + n,
                        "Report": REPORT, "MethodLabel": method, "Labels": labels, "Localizations": "[]"})
        (root / folder).mkdir(exist_ok=True)
        Image.fromarray(pixels16(n)).save(root / folder / image_id(stem))  # mode I;16: a 16-bit grayscale PNG
    name = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
    if gz:
        write_gzip_csv(root / (name + ".gz"), PADCHEST_COLUMNS, records)
    else:
        with open(root / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=PADCHEST_COLUMNS)
            writer.writeheader()
            writer.writerows(records)
    return root


def build(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["manifest", *args, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def by_id(path: Path) -> dict[str, ManifestRow]:
    return {row.study_id: row for row in read_manifest(path)}


# ------------------------------------------------------------------------------------------------ MIMIC rules
def test_mimic_rows_follow_the_rules(tmp_path, capsys):
    root = make_mimic(tmp_path / "mimic")
    out = tmp_path / "out" / "mimic.csv"
    code, stdout, err = build(capsys, "mimic-cxr", "--root", str(root), "--out", str(out))
    assert code == 0, err
    rows = by_id(out)
    # S1: effusion 1.0, cardiomegaly 0.0 (edema -1.0 and the 11 blanks skipped); S2 has only a lateral;
    # S3: pneumothorax, effusion, support devices (cardiomegaly -1.0 skipped); S4: no finding
    assert {k: r.label for k, r in rows.items()} == {
        "s50000001-pleural-effusion": "yes", "s50000001-cardiomegaly": "no",
        "s50000003-pneumothorax": "yes", "s50000003-pleural-effusion": "no", "s50000003-support-devices": "yes",
        "s50000004-no-finding": "yes",
    }
    first = rows["s50000001-pleural-effusion"]
    # the first PA/AP image by dicom_id: 2b3c... (PA), not 1a2b... (lateral, smaller id) nor 3c4d... (AP)
    assert first.image == out.parent / "../mimic/files/p10/p10000032/s50000001/2b3c4d5e-00000000-00000000-00000000-00000001.jpg"
    assert first.image.resolve().is_file()
    assert rows["s50000003-pneumothorax"].image.name.startswith("5e6f7081")  # of two APs, the first by id
    assert first.question == FINDING_QUESTIONS["pleural effusion"] == "Is there a pleural effusion?"
    assert first.extra == {"finding": "pleural effusion", "view": "PA"}
    assert "labels -1.0 (uncertain): 2" in stdout and "labels blank (not mentioned): 34" in stdout
    assert "studies with no PA/AP image: 1" in stdout
    assert "pleural effusion" in stdout and "total" in stdout


def test_mimic_views_split_and_findings(tmp_path, capsys):
    root = make_mimic(tmp_path / "mimic")
    out = tmp_path / "ap.jsonl"
    assert build(capsys, "mimic-cxr", "--root", str(root), "--out", str(out), "--views", "AP")[0] == 0
    rows = by_id(out)
    assert rows["s50000001-pleural-effusion"].image.name.startswith("3c4d5e6f")  # now the AP image
    assert not any(k.startswith("s50000004") for k in rows)  # PA only
    out = tmp_path / "test.csv"
    code, stdout, _ = build(capsys, "mimic-cxr", "--root", str(root), "--out", str(out), "--split-name", "test",
                            "--findings", "Pleural Effusion, no finding")
    assert code == 0
    assert {k: r.label for k, r in by_id(out).items()} == {"s50000001-pleural-effusion": "yes",
                                                           "s50000004-no-finding": "yes"}
    assert "studies in split 'test' with no PA/AP image: 2" in stdout  # S2 (lateral only) and S3 (train)
    code, _, err = build(capsys, "mimic-cxr", "--root", str(root), "--out", str(out), "--split-name", "holdout")
    assert code == 2 and "no images in split 'holdout'" in err and "test, train" in err


def test_no_patient_identifier_reaches_the_manifest(tmp_path, capsys):
    """MIMIC's subject_id may appear only as the dataset's own folder names inside `image`; PadChest's
    PatientID, PatientBirth and report text appear nowhere."""
    mimic = make_mimic(tmp_path / "mimic")
    for out in (tmp_path / "m.csv", tmp_path / "m.jsonl"):
        assert build(capsys, "mimic-cxr", "--root", str(mimic), "--out", str(out))[0] == 0
        for row in read_manifest(out):
            cells = json.dumps([row.question, row.study_id, row.label, row.extra])
            assert not any(subject in cells for subject in SUBJECTS)
        text = out.read_text()
        for subject in SUBJECTS:
            assert text.count(subject) == text.count(f"/p{subject}/")  # inside image paths only
    padchest = make_padchest(tmp_path / "padchest")
    for out in (tmp_path / "p.csv", tmp_path / "p.jsonl"):
        assert build(capsys, "padchest", "--root", str(padchest), "--out", str(out))[0] == 0
        text = out.read_text()
        for secret in (PATIENT_ID, PATIENT_BIRTH.split(".")[0], "SECRETREPORT", "studyi0"):
            assert secret not in text


# --------------------------------------------------------------------------------------------- PadChest rules
def test_padchest_rows_follow_the_rules(tmp_path, capsys):
    root = make_padchest(tmp_path / "padchest", gz=True)
    out = tmp_path / "pc.csv"
    code, stdout, err = build(capsys, "padchest", "--root", str(root), "--out", str(out),
                              "--findings", FINDINGS_ASKED)
    assert code == 0, err
    rows = by_id(out)
    yes = sorted(k for k, r in rows.items() if r.label == "yes")
    # i01, i02, i08 kept (PA/AP, a readable list, no 'exclude'); five findings each
    assert len(rows) == 15 and {tag(k) for k in rows} == {"i01", "i02", "i08"}
    assert yes == [f"{image_id(s)[:-4]}-{f}" for s, f in [
        ("i01", "cardiomegaly"), ("i01", "pleural-effusion"),   # ' cardiomegaly' trimmed
        ("i02", "no-finding"),                                  # 'normal': no for every other finding
        ("i08", "atelectasis"), ("i08", "nasogastric-tube"),    # 'Laminar Atelectasis ', 'NSG tube'
    ]]
    assert rows[f"{image_id('i01')[:-4]}-pleural-effusion"].image == out.parent / "padchest/0" / image_id("i01")
    assert "images whose Projection is not PA or AP: 2" in stdout  # i03 AP_horizontal, i04 L
    assert "images labelled 'exclude': 1" in stdout
    assert "images whose Labels is not a list: 2" in stdout  # blank, and code that literal_eval refuses
    assert not (Path.cwd() / "PWNED").exists() and not (root / "PWNED").exists()


def test_padchest_projections_as_written_and_physician_only(tmp_path, capsys):
    root = make_padchest(tmp_path / "padchest")
    out = tmp_path / "pc.jsonl"
    assert build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", FINDINGS_ASKED,
                 "--projections", "AP")[0] == 0
    assert {tag(r.study_id) for r in read_manifest(out)} == {"i02"}  # not AP_horizontal
    assert build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", "pneumothorax",
                 "--projections", "AP_horizontal")[0] == 0
    (row,) = read_manifest(out)
    assert row.label == "yes" and row.extra["view"] == "AP_horizontal"
    code, stdout, _ = build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", FINDINGS_ASKED,
                            "--physician-only")
    assert code == 0
    assert {tag(r.study_id) for r in read_manifest(out)} == {"i01"}
    assert "images not labelled by a physician (--physician-only): 2" in stdout


def test_padchest_16_bit_png_reaches_the_model_windowed(tmp_path, capsys):
    root = make_padchest(tmp_path / "padchest")
    out = tmp_path / "pc.csv"
    assert build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", "cardiomegaly")[0] == 0
    row = next(r for r in read_manifest(out) if "i01" in r.study_id)
    with Image.open(row.image) as raw:
        assert raw.mode == "I;16"
        source = np.asarray(raw).astype(np.float64)
    assert source.max() > 255
    study = load_study(row.image)
    gray = np.asarray(study.image)[..., 0].astype(int)
    expected = np.rint((source - source.min()) * 255.0 / (source.max() - source.min()))
    assert np.abs(gray - expected).max() <= 1  # windowed to the image's own range
    assert gray.min() == 0 and gray.max() == 255 and len(np.unique(gray)) > 100  # neither saturated nor cut


def test_missing_image_files_are_reported_or_skipped(tmp_path, capsys):
    root = make_padchest(tmp_path / "padchest")
    (root / "12" / image_id("i08")).unlink()
    out = tmp_path / "pc.csv"
    code, stdout, _ = build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", "cardiomegaly")
    assert code == 0 and "warning: 1 image file(s)" in stdout and len(read_manifest(out)) == 3
    code, stdout, _ = build(capsys, "padchest", "--root", str(root), "--out", str(out), "--findings", "cardiomegaly",
                            "--skip-missing-images")
    assert code == 0 and len(read_manifest(out)) == 2 and "images not found under --root" in stdout


# -------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("dataset, damage, message", [
    ("mimic-cxr", "rm mimic-cxr-2.0.0-metadata.csv.gz", "metadata file not found: no mimic-cxr-2.0.0-metadata.csv.gz in"),
    ("mimic-cxr", "rm mimic-cxr-2.0.0-chexpert.csv.gz", "label file not found: no mimic-cxr-2.0.0-chexpert.csv.gz in"),
    ("mimic-cxr", "drop mimic-cxr-2.0.0-metadata.csv.gz:ViewPosition",
     "mimic-cxr-2.0.0-metadata.csv.gz lacks the column(s) ViewPosition"),
    ("mimic-cxr", "drop mimic-cxr-2.0.0-chexpert.csv.gz:Pleural Effusion",
     "mimic-cxr-2.0.0-chexpert.csv.gz lacks the column(s) Pleural Effusion"),
    ("mimic-cxr", "drop mimic-cxr-2.0.0-split.csv.gz:split", "split.csv.gz lacks the column(s) split"),
    ("mimic-cxr", "not gzip", "mimic-cxr-2.0.0-chexpert.csv.gz cannot be read as a CSV (gzip)"),
    ("padchest", "rm PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", "PadChest label file not found: no PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv or "
     "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz in"),
    ("padchest", "drop PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv:Projection",
     "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv lacks the column(s) Projection"),
    ("padchest", "drop PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv:MethodLabel",
     "lacks the column(s) MethodLabel"),
    ("padchest", "findings pleural other", "padchest has no label for 'pleural other'"),
    ("padchest", "findings efusion", "did you mean 'pleural effusion'?"),
    ("padchest", "out manifest.txt", "must end in .csv, .jsonl"),
    ("mimic-cxr", "views pa", "ViewPosition values in mimic-cxr-2.0.0-metadata.csv.gz: AP 3, PA 2, LATERAL 2"),
    ("mimic-cxr", "views ,", "--views is empty"),
    ("mimic-cxr", "label maybe", "mimic-cxr-2.0.0-chexpert.csv.gz, line 2: Pleural Effusion is 'maybe'"),
    ("padchest", "root nowhere", "not a folder"),
])
def test_missing_files_and_columns_exit_2_naming_them(tmp_path, dataset, damage, message):
    root = make_mimic(tmp_path / "d") if dataset == "mimic-cxr" else make_padchest(tmp_path / "d")
    verb, _, what = damage.partition(" ")
    args = ["--root", str(root), "--out", str(tmp_path / "m.csv")]
    if verb == "rm":
        (root / what).unlink()
    elif verb == "drop":
        target, _, column = what.partition(":")
        args += {"split": ["--split-name", "test"], "MethodLabel": ["--physician-only"]}.get(column, [])
        name = root / target
        opener = gzip.open if name.suffix == ".gz" else open
        with opener(name, "rt", encoding="utf-8", newline="") as handle:
            records = list(csv.DictReader(handle))
        columns = [c for c in records[0] if c != column]
        with opener(name, "wt", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)
    elif verb == "not":
        (root / "mimic-cxr-2.0.0-chexpert.csv.gz").write_text("subject_id,study_id\n")
    elif verb in ("findings", "views"):
        args += [f"--{verb}", what]
    elif verb == "label":
        make_mimic(root, labels={("10000032", "50000001"): {"Pleural Effusion": what}})
    elif verb == "out":
        args[3] = str(tmp_path / what)
    elif verb == "root":
        args[1] = str(tmp_path / what)
    result = subprocess.run([sys.executable, "-m", "quadrant.cli.main", "manifest", dataset, *args],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_label_table_names_bank_findings_and_dataset_labels():
    mimic, padchest = label_table("mimic-cxr"), label_table("padchest")
    assert set(mimic) | set(padchest) <= set(FINDINGS)
    assert sorted(mimic.values()) == sorted(CHEXPERT_COLUMNS)
    assert all(isinstance(names, list) and names for names in padchest.values())


def test_write_manifest_mirrors_read_manifest(tmp_path):
    rows = [
        ManifestRow(image=tmp_path / "img" / "a b.png", question="Is there a nodule?", study_id="x/1", label="yes",
                    paraphrases=(Phrasing("Any nodule?"), Phrasing("Can a nodule be ruled out?", True)),
                    extra={"finding": "nodule", "view": "PA"}),
        ManifestRow(image=tmp_path / "img" / "b.png", question="Is there a mass?", study_id="x/2"),
    ]
    for name in ("sub/m.csv", "sub/m.jsonl"):
        again = read_manifest(write_manifest(tmp_path / name, rows))
        assert [(r.image.resolve(), r.question, r.study_id, r.label, r.paraphrases, r.extra) for r in again] == [
            (r.image, r.question, r.study_id, r.label, r.paraphrases,
             r.extra or ({"finding": "", "view": ""} if name.endswith(".csv") else {})) for r in rows]
        assert "../img/a b.png" in (tmp_path / name).read_text()  # relative to the manifest


def test_a_manifest_written_over_another_is_whole_or_not_written(tmp_path, monkeypatch):
    """A build cut off by a full disk (or Ctrl-C) leaves the manifest that was there, byte for byte, and no
    half-written file beside it that `evaluate` could be pointed at."""
    import quadrant.atomic as atomic

    rows = [ManifestRow(image=tmp_path / f"{i}.png", question="Is there a nodule?", study_id=f"s{i}") for i in range(3)]
    path = write_manifest(tmp_path / "m.csv", rows[:1])
    before = path.read_bytes()

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_manifest(path, rows)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    monkeypatch.undo()
    assert [row.study_id for row in read_manifest(write_manifest(path, rows))] == ["s0", "s1", "s2"]


# --------------------------------------------------------------------------------------- end to end: evaluate
def test_evaluate_runs_on_built_manifests_with_the_demo_model(tmp_path, capsys):
    mimic, padchest = make_mimic(tmp_path / "mimic"), make_padchest(tmp_path / "padchest")
    runs = []
    for dataset, root, findings in (("mimic-cxr", mimic, "pleural effusion"), ("padchest", padchest, "cardiomegaly")):
        manifest = tmp_path / f"{dataset}.csv"
        assert build(capsys, dataset, "--root", str(root), "--out", str(manifest), "--findings", findings)[0] == 0
        out = tmp_path / f"eval-{dataset}"
        code = main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet"])
        assert code == 0, capsys.readouterr().err
        samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        assert sorted(s["study_id"] for s in samples) == sorted(r.study_id for r in read_manifest(manifest))
        assert all(s["extra"]["finding"] == findings and s["label"] in ("yes", "no") for s in samples)
        assert not (out / "errors.jsonl").exists()
        for path in out.iterdir():
            if path.suffix in (".jsonl", ".json", ".md"):
                text = path.read_text()
                assert not any(secret in text for secret in (*SUBJECTS, PATIENT_ID, "SECRETREPORT"))
        runs.append(str(out))
    assert [len(s) for s in (by_id(tmp_path / "mimic-cxr.csv"), by_id(tmp_path / "padchest.csv"))] == [2, 3]
    # compare reads the results without loading a model: in a fresh process, torch is never imported
    script = ("import sys; from quadrant.cli.main import main; code = main(['compare', *sys.argv[1:]]); "
              "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script, *runs], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Pearson r" in result.stdout and "eval-padchest" in result.stdout


# ------------------------------------------------------------------------------------------------ progress
def run_with_terminal_stderr(args: list[str]) -> tuple[int, str]:
    """The CLI with stderr on a pseudo-terminal, as a person at a shell sees it."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "quadrant.cli.main", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "160"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_and_silent_otherwise(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    args = ["manifest", "mimic-cxr", "--root", str(root), "--out", str(tmp_path / "m.csv")]
    code, shown = run_with_terminal_stderr(args)
    assert code == 0
    for text in ("reading mimic-cxr-2.0.0-metadata.csv.gz", "reading mimic-cxr-2.0.0-chexpert.csv.gz",
                 "checking images", "rows/s"):
        assert text in shown
    code, quiet = run_with_terminal_stderr([*args, "--quiet"])
    assert code == 0 and "reading" not in quiet
    piped = subprocess.run([sys.executable, "-m", "quadrant.cli.main", *args], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""  # not a terminal: no bar, no redraw codes in a log
