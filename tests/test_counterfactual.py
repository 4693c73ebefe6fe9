"""The counterfactual reference (`--reference opposite`, and `same-label` as its control): which study each row
is compared with, the refusals, the margins against a plain Hugging Face forward on the chosen study, the blank
judgement kept beside it unchanged, the summary and report by label, resume, and the measured targets."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_png
from plain_forward import PlainForward
from quadrant.cli.main import main
from quadrant.errors import OptionError
from quadrant.evaluate import population, reference_partners
from quadrant.fingerprint import file_digest
from quadrant.images import load_study
from quadrant.manifest import read_manifest
from quadrant.models import measure_references
from quadrant.models.measure_demo import build
from quadrant.models.phantoms import FINDINGS, generate_phantoms
from quadrant.models.presets import MODELS_DIR
from quadrant.reliance import COUNTERFACTUALS, Reliance, quadrant, relative_shift
from quadrant.verdict import CounterfactualReading, Verdict

SEED = 6110  # 5 studies with at least two of each label for every finding; never used elsewhere
TARGET_SEED, TARGET_STUDIES = 6174, 20  # the targets, on fresh phantoms: 100 samples


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    return generate_phantoms(tmp_path_factory.mktemp("labelled"), 5, SEED)


def by_id(out: Path) -> dict[str, dict]:
    return {r["study_id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}


# -- choosing the other study: a function of the manifest alone ------------------------------------------------


@pytest.mark.parametrize("mode", COUNTERFACTUALS)
def test_each_row_is_compared_with_another_image_of_the_wanted_label(phantoms, mode):
    rows = read_manifest(phantoms)
    reliance = Reliance(reference=mode)
    partners = reference_partners(rows, reliance)
    by_study = {row.study_id: row for row in rows}
    assert set(partners) == set(by_study)
    for row in rows:
        partner = partners[row.study_id]
        other = by_study[partner.study_id]
        assert partner.label == other.label == ({"yes": "no", "no": "yes"}[row.label] if mode == "opposite"
                                                 else row.label)
        assert population(other) == population(row)  # the same finding
        assert partner.sha256 == file_digest(partner.path) == file_digest(other.image) != file_digest(row.image)
    # the same choice whatever the order rows come in (batches, engines and resumes see the same manifest)
    assert reference_partners(rows[::-1], reliance) == partners


@pytest.mark.parametrize("mode", COUNTERFACTUALS)
def test_every_candidate_serves_about_as_many_rows(tmp_path, mode):
    """One misread study must not become the reference of a whole finding: per finding and label, the
    candidates' uses differ by at most one (under same-label, each is used exactly once)."""
    rows = read_manifest(generate_phantoms(tmp_path, 16, SEED, size=32))
    partners = reference_partners(rows, Reliance(reference=mode))
    for finding in FINDINGS:
        for label in ("yes", "no"):
            served = Counter(partners[r.study_id].study_id for r in rows
                             if r.extra["finding"] == finding and partners[r.study_id].label == label)
            counts = [served[r.study_id] for r in rows if r.extra["finding"] == finding and r.label == label]
            assert len(counts) >= 2 and max(counts) - min(counts) <= 1, (finding, label, counts)
            assert mode == "opposite" or set(counts) == {1}, (finding, label, counts)


def test_an_image_labelled_both_ways_is_never_its_own_partner(tmp_path):
    """A manifest that labels one image both ways (two readers disagreeing) must still never compare a study with
    its own image, under either reference."""
    images = {name: write_png(tmp_path / f"{name}.png", seed=i) for i, name in enumerate("abcd")}
    rows = [("a", "yes", "a1"), ("d", "yes", "d1"), ("b", "no", "b1"), ("c", "no", "c1"), ("a", "no", "a2"),
            ("c", "yes", "c2")]
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,question,label,study_id\n" + "".join(
        f"{images[image]},Is there a nodule?,{label},{study_id}\n" for image, label, study_id in rows))
    read = read_manifest(manifest)
    for mode in COUNTERFACTUALS:
        partners = reference_partners(read, Reliance(reference=mode))
        for row in read:
            assert partners[row.study_id].sha256 != file_digest(row.image), (mode, row.study_id)
            assert partners[row.study_id].label == Reliance(reference=mode).partner_label(row.label)


def test_a_question_is_its_finding_else_its_wording(phantoms):
    row = read_manifest(phantoms)[0]
    assert population(row) == "finding 'cardiomegaly'"
    bare = type(row)(image=row.image, question="  Is there   CARDIOMEGALY? ", study_id="x", label="no")
    assert population(bare) == "question 'is there cardiomegaly?'"


def test_a_question_with_one_label_only_is_refused_naming_it(tmp_path, phantoms, capsys):
    rows = [row for row in csv.DictReader(open(phantoms)) if not (row["finding"] == "nodule" and row["label"] == "no")]
    manifest = phantoms.parent / "one-sided.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(OptionError, match="no other study in the manifest is labelled 'no' for finding 'nodule'"):
        reference_partners(read_manifest(manifest), Reliance(reference="opposite"))
    out = tmp_path / "run"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--reference", "opposite", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "finding 'nodule'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before the folder was touched


def test_without_labels_or_without_a_dataset_it_is_refused_in_one_line(tmp_path, capsys):
    images = [write_png(tmp_path / f"{i}.png", seed=i) for i in range(2)]
    manifest = tmp_path / "unlabelled.csv"
    manifest.write_text("image,question\n" + "".join(f"{p},Is there a nodule?\n" for p in images))
    out = tmp_path / "run"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--reference", "opposite"]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 manifest rows have no label" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    for command in (["check", "--image", images[0], "--question", "Is there a nodule?"], ["app", "--port", "1"]):
        assert main(command + ["--reference", "same-label"]) == 2
        err = capsys.readouterr().err
        assert "needs quadrant evaluate with a manifest that has labels" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--reference", "opposite",
                 "--reliance", "flip"]) == 2
    assert "the flip rule compares with the question asked without the image" in capsys.readouterr().err


def test_a_checker_asked_directly_needs_the_other_study():
    from quadrant.check import Checker, CheckOptions, CheckRequest, OtherStudy
    from quadrant.errors import InputError
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    checker = Checker(load_model(ModelSpec("demo")), options=CheckOptions(reliance=Reliance(reference="opposite")))
    study = load_study(MODELS_DIR / "samples" / "normal.png")
    with pytest.raises(OptionError, match="needs quadrant evaluate"):
        checker.check(study, "Is there cardiomegaly?", label="no")
    itself = CheckRequest(study, "Is there cardiomegaly?", label="no", other_study=OtherStudy(study, "same", "yes"))
    wrong = CheckRequest(study, "Is there cardiomegaly?", label="no", other_study=OtherStudy(
        load_study(MODELS_DIR / "samples" / "consolidation.png"), "consolidation", "no"))
    for request, message in ((itself, "has the same image"), (wrong, "is labelled 'no', not 'yes'")):
        with pytest.raises(InputError, match=message):
            checker.check_many([request])


# -- a real evaluation of the demo model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(phantoms, tmp_path_factory) -> dict[str, Path]:
    """The same manifest evaluated with the default reference and with --reference opposite."""
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name, extra in (("blank", []), ("opposite", ["--reference", "opposite"])):
        out[name] = folder / name
        argv = ["evaluate", "--manifest", str(phantoms), "--out", str(out[name]), "--quiet", "--batch-size", "4"]
        assert main(argv + extra) == 0
    return out


def test_the_other_study_is_recorded_and_its_margin_is_a_plain_forward(runs, phantoms):
    samples = by_id(runs["opposite"])
    rows = {row.study_id: row for row in read_manifest(phantoms)}
    partners = reference_partners(list(rows.values()), Reliance(reference="opposite"))
    oracle = PlainForward(str(MODELS_DIR / "demo"))
    tokens = samples[next(iter(samples))]["model"]["answer_tokens"]
    for study_id, sample in samples.items():
        other = sample["counterfactual"]
        partner = partners[study_id]
        assert (other["study_id"], other["image_sha256"], other["label"]) == (partner.study_id, partner.sha256,
                                                                              partner.label)
        assert other["label"] != sample["label"] and other["image_sha256"] != sample["image"]["sha256"]
        assert other["ablation"] == "opposite" and other["rendered"] == sample["prompts"][0]["rendered"]
        expected = oracle.margin(other["rendered"], load_study(rows[other["study_id"]].image).image,
                                 tokens["yes"], tokens["no"])
        assert abs(other["margin"] - expected) < 1e-4, study_id
        m0 = sample["prompts"][0]["margin"]
        assert sample["shifts"]["relative_counterfactual"] == pytest.approx(relative_shift(m0, other["margin"]))
        assert sample["image_reliant"] == (sample["shifts"]["relative_counterfactual"] >= 0.2)
        assert sample["quadrant"] == quadrant(sample["consistent"], sample["image_reliant"])
        assert isinstance(Verdict.from_json(sample).counterfactual, CounterfactualReading)


def test_the_blank_judgement_kept_beside_is_the_default_runs_verdict(runs):
    """The blank reference's figures are unchanged: the opposite run's content_free_reliant is exactly what the
    default run decided, on the same content-free margins."""
    blank, opposite = by_id(runs["blank"]), by_id(runs["opposite"])
    assert set(blank) == set(opposite) and len(blank) == 25
    for study_id, default in blank.items():
        other = opposite[study_id]
        assert "counterfactual" not in default and "content_free_reliant" not in default
        assert other["content_free"]["margin"] == pytest.approx(default["content_free"]["margin"], abs=1e-5)
        assert other["content_free_reliant"] == default["image_reliant"]
        assert quadrant(other["consistent"], other["content_free_reliant"]) == default["quadrant"]
    summary = json.loads((runs["opposite"] / "summary.json").read_text())
    assert summary["fractions_content_free_reference"] == json.loads((runs["blank"] / "summary.json").read_text())[
        "fractions"]


def test_summary_and_report_break_the_quadrants_down_by_label(runs):
    summary = json.loads((runs["opposite"] / "summary.json").read_text())
    samples = list(by_id(runs["opposite"]).values())
    for label in ("yes", "no"):
        group = [s for s in samples if s["label"] == label]
        right = [s for s in group if s["correct"]]
        entry = summary["by_label"][label]
        assert entry["n"] == len(group) and entry["correct"]["n"] == len(right)
        assert entry["accuracy"] == pytest.approx(len(right) / len(group))
        dangerous = sum(s["quadrant"] == "Dangerous" for s in right) / len(right)
        assert entry["correct"]["fractions"]["Dangerous"] == pytest.approx(dangerous)
        blank = sum(quadrant(s["consistent"], s["content_free_reliant"]) == "Dangerous" for s in right) / len(right)
        assert entry["correct"]["fractions_content_free_reference"]["Dangerous"] == pytest.approx(blank)
    report = (runs["opposite"] / "report.md").read_text()
    assert "another study of this dataset whose label is the opposite" in report
    assert "| label | answer | n | Ideal | Fragile | Dangerous (95% CI) | Worst | Dangerous against the blank image |" in report
    assert "A content-free image shows no finding either" not in report  # not this run's comparison
    assert "A content-free image shows no finding either" in (runs["blank"] / "report.md").read_text()
    for name in ("quadrants_by_label.png", "entropy_by_quadrant.png"):
        assert (runs["opposite"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in report


def test_another_reference_is_another_run_and_a_resume_keeps_every_choice(runs, phantoms, capsys):
    out = runs["opposite"]
    before = (out / "samples.jsonl").read_text()
    argv = ["evaluate", "--manifest", str(phantoms), "--out", str(out), "--quiet"]
    assert main(argv + ["--reference", "same-label"]) == 2
    err = capsys.readouterr().err
    assert "options.reliance.reference" in err and '"opposite" in the folder' in err
    assert (out / "samples.jsonl").read_text() == before
    lines = before.splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:20]) + lines[20][:50])  # as if killed mid-line
    assert main(argv + ["--reference", "opposite", "--batch-size", "3"]) == 0
    again, first = by_id(out), {r["study_id"]: r for r in map(json.loads, lines)}
    assert set(again) == set(first)
    for study_id, sample in first.items():
        theirs = again[study_id]["counterfactual"]
        assert (theirs["study_id"], theirs["image_sha256"]) == (sample["counterfactual"]["study_id"],
                                                                 sample["counterfactual"]["image_sha256"])
        assert theirs["margin"] == pytest.approx(sample["counterfactual"]["margin"], abs=1e-5)


# -- the targets, measured on fresh phantoms -------------------------------------------------------------------


@pytest.mark.slow
def test_measured_targets_of_the_opposite_reference(tmp_path):
    """demo: at most 5% of correct negatives Dangerous and at least 80% Ideal; the blind and shortcut models at
    least 80% not image-reliant (measured: 100%). The blank reference beside it keeps calling some of demo's
    correct negatives Dangerous: the false alarm this reference removes."""
    from quadrant.metrics import summarize

    rows = read_manifest(generate_phantoms(tmp_path, TARGET_STUDIES, TARGET_SEED))
    results = {}
    for preset, blind in (("demo", False), ("demo", True), ("demo-shortcut", False)):
        summary = summarize(measure_references.check_all(build(preset, blind), rows, "opposite"))
        results[(preset, blind)] = (measure_references.figures(summary),
                                    measure_references.figures(summary, "fractions_content_free_reference"))
    demo, demo_blank = results[("demo", False)]
    assert demo["accuracy"] >= 0.9 and demo["n_correct_negatives"] >= 30, demo
    assert demo["dangerous_correct_negatives"] <= 0.05 and demo["Ideal"] >= 0.8, demo
    assert demo_blank["dangerous_correct_negatives"] > demo["dangerous_correct_negatives"], demo_blank
    for key in (("demo", True), ("demo-shortcut", False)):
        opposite, _ = results[key]
        assert opposite["not_reliant"] >= 0.8, (key, opposite)
