"""`quadrant evaluate` and `quadrant compare` on a real tiny model and real files: outputs, resume after a
kill, fail-if gates, unreadable rows, and the metrics behind the summary."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import QUADRANT, write_manifest, write_png
from quadrant.cli.main import main
from quadrant.metrics import auroc, pearson, wilson_interval

QUESTIONS = ["Is there a pleural effusion?", "Is there cardiomegaly?", "Is there a pneumothorax?"]


def make_manifest(folder: Path, n: int, broken: int | None = None, bad_question: int | None = None) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image = f"images/{i}.png"
        if i != broken:
            write_png(folder / image, seed=100 + i)
        question = "What is the cardiothoracic ratio?" if i == bad_question else QUESTIONS[i % 3]
        rows.append({"image": image, "question": question, "label": "yes" if i % 2 else "no",
                     "study_id": f"s{i:03d}", "finding": ["effusion", "heart", "ptx"][i % 3]})
    return write_manifest(folder, rows)


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_evaluate_writes_samples_summary_report_and_plots(tmp_path, tiny_model, capsys):
    manifest = make_manifest(tmp_path / "data", 7, broken=4, bad_question=6)
    out = tmp_path / "run"
    code = main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"),
                 "--quiet", "--batch-size", "4"])
    assert code == 0, capsys.readouterr().err
    rows = samples(out)
    assert sorted(r["study_id"] for r in rows) == ["s000", "s001", "s002", "s003", "s005"]
    assert all(r["extra"]["finding"] in ("effusion", "heart", "ptx") for r in rows)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["study_id"] for e in errors] == ["s004", "s006"]
    assert "4.png" in errors[0]["error"] and "yes or no" in errors[1]["error"]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("n", "flip_rate", "pairwise_flip_rate", "fractions", "accuracy", "text_only_agreement"):
        assert key in summary
    assert summary["n"] == 5 and summary["n_errors"] == 2
    assert set(summary["fractions"]) == {"Ideal", "Fragile", "Dangerous", "Worst"}
    assert sum(summary["fractions"].values()) == pytest.approx(1.0)
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 5)
    assert summary["flip_rate"] == pytest.approx(sum(not r["consistent"] for r in rows) / 5)
    assert set(summary["by_finding"]) == {"effusion", "heart", "ptx"}
    assert "fractions_flip_rule" in summary
    assert set(summary["by_label"]) == {"yes", "no"}
    for name in ("report.md", "quadrants.png", "margin_shift.png", "quadrants_by_label.png", "entropy_by_quadrant.png"):
        assert (out / name).stat().st_size > 0


def test_rerun_resumes_without_redoing_or_duplicating(tmp_path, tiny_model, capsys):
    manifest = make_manifest(tmp_path / "data", 5)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"),
            "--quiet", "--batch-size", "2"]
    assert main(argv) == 0
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    # as if killed while writing the fourth sample: three whole lines and a torn one
    (out / "samples.jsonl").write_text("".join(lines[:3]) + lines[3][:40])
    assert main(argv) == 0
    after = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    assert after[:3] == lines[:3]  # finished samples untouched, byte for byte
    assert sorted(json.loads(x)["study_id"] for x in after) == [f"s{i:03d}" for i in range(5)]
    assert main(argv) == 0  # a third run has nothing to do and changes nothing
    assert (out / "samples.jsonl").read_text().splitlines(keepends=True) == after


def test_a_row_edited_after_it_was_checked_is_checked_again(tmp_path, tiny_model, caplog):
    """A resumed run once kept a finished row's verdict after its label or question was corrected in the
    manifest: the summary went on counting the old label."""
    manifest = make_manifest(tmp_path / "data", 4)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    before = {json.loads(x)["study_id"]: x for x in (out / "samples.jsonl").read_text().splitlines()}
    edited = manifest.read_text().splitlines()
    edited[2] = edited[2].replace(",yes,", ",no,")  # s001: its label corrected
    edited[3] = edited[3].replace(QUESTIONS[2], QUESTIONS[0])  # s002: another question
    manifest.write_text("\n".join(edited) + "\n")
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "2 finished row(s) changed in the manifest" in caplog.text
    after = {json.loads(x)["study_id"]: x for x in (out / "samples.jsonl").read_text().splitlines()}
    assert sorted(after) == ["s000", "s001", "s002", "s003"]  # each row once
    assert after["s000"] == before["s000"] and after["s003"] == before["s003"]  # untouched, byte for byte
    assert json.loads(after["s001"])["label"] == "no" and json.loads(after["s002"])["question"] == QUESTIONS[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(sum(json.loads(x)["correct"] for x in after.values()) / 4)
    caplog.clear()
    assert main(argv) == 0 and "changed in the manifest" not in caplog.text  # nothing left to redo


def test_a_resume_cut_off_while_dropping_edited_rows_keeps_every_finished_sample(tmp_path, tiny_model, monkeypatch,
                                                                                 capsys):
    """Redoing an edited row first rewrites samples.jsonl without it. A full disk during that rewrite leaves
    the file as it was and no half-written copy beside it, and the next run redoes the row."""
    import quadrant.atomic as atomic

    manifest = make_manifest(tmp_path / "data", 3)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    samples = (out / "samples.jsonl").read_bytes()
    before = sorted(p.name for p in out.iterdir())
    manifest.write_text(manifest.read_text().replace(",yes,", ",no,", 1))

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    assert main(argv) == 3
    assert "quadrant evaluate: error: No space left on device (OSError at" in capsys.readouterr().err
    assert (out / "samples.jsonl").read_bytes() == samples and sorted(p.name for p in out.iterdir()) == before
    monkeypatch.undo()
    assert main(argv) == 0
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3


def test_an_image_replaced_under_its_name_is_checked_again(tmp_path, tiny_model, caplog):
    """A resumed run once kept a finished row's verdict after its image file was replaced by another picture under
    the same name (a corrected export, a re-anonymised file): the summary counted a verdict about a picture no
    longer in the dataset."""
    data = tmp_path / "data"
    manifest = make_manifest(data, 3)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    before = {json.loads(x)["study_id"]: x for x in (out / "samples.jsonl").read_text().splitlines()}
    assert json.loads(before["s000"])["image_file"]["size"] == (data / "images" / "0.png").stat().st_size
    write_png(data / "images" / "1.png", seed=999)  # s001's picture replaced
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "reading 1 file(s)" in caplog.text  # the other two files kept their size and time: not read
    assert "1 finished row(s) whose image file was replaced" in caplog.text
    after = {json.loads(x)["study_id"]: x for x in (out / "samples.jsonl").read_text().splitlines()}
    assert sorted(after) == ["s000", "s001", "s002"]
    assert after["s000"] == before["s000"] and after["s002"] == before["s002"]  # untouched, byte for byte
    new_sha = hashlib.sha256((data / "images" / "1.png").read_bytes()).hexdigest()
    assert json.loads(before["s001"])["image"]["sha256"] != new_sha == json.loads(after["s001"])["image"]["sha256"]
    caplog.clear()
    assert main(argv) == 0 and "image file" not in caplog.text  # nothing left to read or redo


def test_an_image_copied_with_a_new_mtime_is_read_and_not_checked_again(tmp_path, tiny_model, caplog):
    """A dataset copied without its modification times (cp without -p) gives every file a new stamp: each is then
    hashed, found to be the picture its sample was checked from, and nothing is redone."""
    data = tmp_path / "data"
    manifest = make_manifest(data, 3)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    before = (out / "samples.jsonl").read_text()
    for image in (data / "images").iterdir():
        os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "reading 3 file(s) to tell a replaced picture from a copied one" in caplog.text
    assert "whose image file was replaced" not in caplog.text and (out / "samples.jsonl").read_text() == before
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "image file" not in caplog.text  # what that resume read is known by the files' new times: none read again


def test_a_folder_from_before_image_files_were_recorded_reads_each_image_once(tmp_path, tiny_model, caplog):
    """Samples written before they recorded their image file's size and time are checked against their image's
    sha256 at the first resume (a picture replaced since is checked again), and not read again after that."""
    data = tmp_path / "data"
    manifest = make_manifest(data, 3)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    old = "".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "image_file"}) + "\n"
                  for x in (out / "samples.jsonl").read_text().splitlines())
    (out / "samples.jsonl").write_text(old)
    write_png(data / "images" / "2.png", seed=777)
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "reading 3 file(s)" in caplog.text and "1 finished row(s) whose image file was replaced" in caplog.text
    assert (out / "samples.jsonl").read_text().splitlines()[:2] == old.splitlines()[:2]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(argv) == 0
    assert "image file" not in caplog.text


def test_a_finding_mask_replaced_under_its_name_is_checked_again_when_maps_are_made(tmp_path, tiny_model, caplog):
    """The pointing game a sample records depends on its mask's pixels: a corrected mask under the same name
    redoes its row when maps are made, and changes nothing without them."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rows = []
    for i in range(2):
        write_png(data / "images" / f"{i}.png", seed=300 + i)
        Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), ((0, 48), (0, 56)))).save(data / f"mask{i}.png")
        rows.append({"image": f"images/{i}.png", "question": QUESTIONS[0], "label": "yes", "study_id": f"m{i}",
                     "mask": f"mask{i}.png"})
    manifest = write_manifest(data, rows)
    base = ["evaluate", "--manifest", str(manifest), "--model", tiny_model("llava"), "--quiet"]
    mapped = [*base, "--out", str(tmp_path / "mapped"), "--evidence", "--evidence-grid", "2"]
    plain = [*base, "--out", str(tmp_path / "plain")]
    assert main(mapped) == 0 and main(plain) == 0
    before = {name: (tmp_path / name / "samples.jsonl").read_text().splitlines() for name in ("mapped", "plain")}
    Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), ((48, 0), (56, 0)))).save(data / "mask1.png")
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(mapped) == 0
    assert "1 finished row(s) changed" in caplog.text
    after = (tmp_path / "mapped" / "samples.jsonl").read_text().splitlines()
    assert after[0] == before["mapped"][0] and after[1] != before["mapped"][1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="quadrant.evaluate"):
        assert main(plain) == 0
    assert "changed" not in caplog.text and (tmp_path / "plain" / "samples.jsonl").read_text().splitlines() == \
        before["plain"]


def test_runs_of_one_manifest_share_their_studies_digest_whatever_the_options(tmp_path, tiny_model):
    manifest = make_manifest(tmp_path / "data", 3)
    base = ["evaluate", "--manifest", str(manifest), "--model", tiny_model("llava"), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "-k", "3", "--reliance", "flip"]) == 0
    manifest.write_text(manifest.read_text().replace(",yes,", ",no,"))  # the same studies, other labels
    assert main([*base, "--out", str(tmp_path / "c")]) == 0
    digests = [json.loads((tmp_path / run / "summary.json").read_text())["studies_sha256"] for run in "abc"]
    assert digests[0] == digests[1] != digests[2]


def test_errors_hold_each_failing_row_once_from_its_latest_try(tmp_path, tiny_model):
    """A rerun tries every failing row again: its error was once appended again each time, and an error of a
    row since fixed, or taken out of the manifest, stayed in the file and in n_errors."""
    manifest = make_manifest(tmp_path / "data", 4, broken=1, bad_question=2)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    for _ in range(3):
        assert main(argv) == 0
    errors = [json.loads(line)["study_id"] for line in (out / "errors.jsonl").read_text().splitlines()]
    assert errors == ["s001", "s002"]
    write_png(tmp_path / "data" / "images" / "1.png", seed=101)  # the missing study, delivered
    manifest.write_text("\n".join(line for line in manifest.read_text().splitlines() if ",s002," not in line) + "\n")
    assert main(argv) == 0
    assert not (out / "errors.jsonl").exists()  # as after a first run without errors
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n"], summary["n_errors"]) == (3, 0)


def test_a_row_inserted_above_rows_without_ids_never_inherits_their_samples(tmp_path, tiny_model):
    """Rows without a study_id are named by their row number: once, the row inserted at the top took over the
    sample of the row it displaced (its image, question and label)."""
    data = tmp_path / "data"
    data.mkdir()
    for name, seed in (("old", 1), ("new", 2)):
        write_png(data / f"{name}.png", seed=seed)
    manifest = data / "m.csv"
    manifest.write_text(f"image,question,label\nold.png,{QUESTIONS[0]},yes\n")
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--model", tiny_model("llava"),
            "--quiet"]
    assert main(argv) == 0
    manifest.write_text(f"image,question,label\nnew.png,{QUESTIONS[1]},no\nold.png,{QUESTIONS[0]},yes\n")
    assert main(argv) == 0
    by_id = {r["study_id"]: r for r in samples(tmp_path / "run")}
    assert (by_id["row-2"]["question"], by_id["row-2"]["label"]) == (QUESTIONS[1], "no")
    assert (by_id["row-3"]["question"], by_id["row-3"]["label"]) == (QUESTIONS[0], "yes")


def test_a_folder_from_before_rows_were_recorded_resumes_as_it_stands(tmp_path, tiny_model):
    manifest = make_manifest(tmp_path / "data", 3)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    old = "".join(json.dumps({k: v for k, v in x.items() if k != "manifest_row_sha256"}) + "\n" for x in lines)
    (out / "samples.jsonl").write_text(old)
    manifest.write_text(manifest.read_text().replace(",yes,", ",no,"))
    assert main(argv) == 0
    assert (out / "samples.jsonl").read_text() == old  # no digest to compare: nothing is redone or dropped


def test_killed_process_resumes(tmp_path, tiny_model):
    """A real kill: SIGKILL the command once it has written some samples, then run it again."""
    manifest = make_manifest(tmp_path / "data", 8)
    out = tmp_path / "run"
    command = [QUADRANT, "evaluate", "--manifest", str(manifest),
               "--out", str(out), "--model", tiny_model("llava"), "--quiet", "--batch-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        path = out / "samples.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = [json.loads(x)["study_id"] for x in (out / "samples.jsonl").read_text().splitlines() if x.endswith("}")]
    assert len(before) >= 2
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [r["study_id"] for r in samples(out)]
    assert sorted(ids) == [f"s{i:03d}" for i in range(8)]
    assert ids[: len(before)] == before


def test_fail_if_rules(tmp_path, tiny_model, capsys):
    manifest = make_manifest(tmp_path / "data", 3)
    out = tmp_path / "run"
    base = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model("llava"), "--quiet"]
    assert main(base + ["--fail-if", "flip_rate>=0", "--fail-if", "Ideal < 0%"]) == 1
    err = capsys.readouterr().err
    assert "holds: flip_rate>=0" in err and "ideal<0" not in err
    assert (out / "summary.json").exists()  # everything written before failing
    assert main(base + ["--fail-if", "dangerous>1"]) == 0
    # without labels, an accuracy gate is named as not judged rather than passing in silence
    unlabelled = manifest.with_name("unlabelled.csv")
    unlabelled.write_text(re.sub(r",(yes|no),", ",,", manifest.read_text()))
    capsys.readouterr()
    assert main([*base[:2], str(unlabelled), "--out", str(tmp_path / "unlabelled"), *base[5:],
                 "--fail-if", "accuracy<0.9"]) == 0
    assert "fail-if rule accuracy<0.9 not judged: there is no accuracy (no row has a label)" in capsys.readouterr().err


@pytest.mark.parametrize("rule, message", [
    ("sparkle>0.5", "unknown name 'sparkle'"),
    ("dangerous>2", "a fraction from 0 to 1, so 2 can never be crossed"),  # meant 2%: would never fail a run
    ("dangerous>-0.1", "a fraction from 0 to 1"),
    ("dangerous>0.2,worst>0", "one rule per --fail-if"),
    ("dangerous=>0.2", "expected NAME>VALUE"),
    ("dangerous>lots", "'lots' is not a number"),
])
def test_fail_if_rules_that_could_never_judge_a_run_are_refused(rule, message, capsys):
    assert main(["evaluate", "--manifest", "none.csv", "--out", "o", "--fail-if", rule]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_fail_if_reads_the_operators_and_percentages_people_write():
    from quadrant.evaluate import FailRule

    summary = {"fractions": {"Dangerous": 0.2}}
    assert [FailRule.parse(r).holds(summary) for r in ("dangerous>=0.2", "Dangerous >= 20%", "dangerous>0.2",
                                                       "dangerous<=0.2", "dangerous<20%")] == [True, True, False,
                                                                                               True, False]


def test_bad_manifest_is_refused_before_the_model_loads(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,question,label\na.png,Is there a nodule?,maybe\n")
    code = main(["evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "o"), "--model", "/nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and "label" in err and "maybe" in err and len(err.strip().splitlines()) == 1


def test_compare_reports_rows_and_correlation(tmp_path, tiny_model, capsys):
    manifest = make_manifest(tmp_path / "data", 3)
    dirs = []
    for name, family in (("a", "llava"), ("b", "gemma3"), ("c", "idefics3"), ("d", "llava")):
        out = tmp_path / name
        args = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", tiny_model(family), "--quiet"]
        if name == "d":
            args += ["--ablation", "noise"]
        assert main(args) == 0
        dirs.append(str(out))
    capsys.readouterr()
    assert main(["compare", *dirs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["rows"]) == 4 and result["flip_vs_dangerous"]["n"] == 4
    assert main(["compare", *dirs]) == 0
    text = capsys.readouterr().out
    assert sum(line.startswith("| ") for line in text.splitlines()) == 5 and "Pearson r" in text
    assert main(["compare", str(tmp_path / "nothing")]) == 2


def test_metric_formulas():
    low, high = wilson_interval(197, 200)
    assert low == pytest.approx(0.9568, abs=1e-3) and high == pytest.approx(0.9949, abs=1e-3)
    assert wilson_interval(0, 0) is None
    r = pearson([0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.7, 0.6, 0.3, 0.2])
    assert r["r"] == pytest.approx(-0.98788, abs=1e-4) and r["n"] == 5 and r["ci95"][0] < r["r"] < r["ci95"][1]
    assert pearson([1, 2], [3, 4])["r"] is None
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0 and auroc([1], [1]) == 0.5


def test_check_each_sets_a_bad_request_aside_and_scores_the_rest_once(tiny_model, tmp_path):
    """What evaluate and the app rely on: a request that cannot be checked gets its InputError in its place,
    the others the very verdicts `check_many` gives, and each request is prepared exactly once."""
    from quadrant.check import Checker, CheckRequest
    from quadrant.errors import InputError
    from quadrant.images import load_study
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    checker = Checker(load_model(ModelSpec(model=tiny_model("llava"), device="cpu")), "torch")
    studies = [load_study(write_png(tmp_path / f"s{i}.png", seed=i)) for i in range(2)]
    good = [CheckRequest(studies[0], "Is there a pleural effusion?"), CheckRequest(studies[1], "Effusion?")]
    bad = CheckRequest(studies[0], "Describe the heart.")
    prepared = []
    real_prepare = checker._prepare
    checker._prepare = lambda request: prepared.append(request) or real_prepare(request)
    outcomes = checker.check_each([good[0], bad, good[1]])
    assert prepared == [good[0], bad, good[1]]
    assert isinstance(outcomes[1], InputError) and "got an instruction, 'describe'" in str(outcomes[1])
    expected = Checker(checker.loaded, "torch").check_many(good)  # nothing kept from the first call
    for outcome, verdict in zip((outcomes[0], outcomes[2]), expected):
        assert [p.margin for p in outcome.prompts] == [p.margin for p in verdict.prompts]
        assert outcome.quadrant == verdict.quadrant
