"""One output folder, one run: a rerun with another model or verdict-changing option is refused and changes
nothing; a second process is refused while the first writes; `swap` shows each study another study's image;
and memory does not grow with the manifest. Real runs of the bundled demo model on phantom manifests."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUADRANT
from quadrant import evaluate, fingerprint
from quadrant.check import CheckOptions
from quadrant.cli.main import main
from quadrant.errors import OptionError
from quadrant.evaluate import swap_partners
from quadrant.manifest import read_manifest
from quadrant.models.phantoms import generate_phantoms
from quadrant.verdict import Verdict



@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    """48 phantom studies x 5 findings = 240 rows, five rows per image."""
    return generate_phantoms(tmp_path_factory.mktemp("phantoms"), n=48, seed=11, size=64)


def first_rows(manifest: Path, n: int) -> Path:
    """The manifest's first n rows, beside it (image paths stay valid)."""
    path = manifest.with_name(f"manifest-{n}.csv")
    with open(manifest, newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    path.write_text("".join(lines[: n + 1]))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_rerun_with_another_model_or_option_is_refused_and_changes_nothing(tmp_path, phantoms, capsys):
    manifest = first_rows(phantoms, 10)
    out = tmp_path / "run"
    base = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet", "--batch-size", "4"]
    assert main(base) == 0
    record = json.loads((out / "run.json").read_text())["run"]
    assert set(f.name for f in dataclasses.fields(CheckOptions)) <= set(record["options"])  # derived, not listed
    with open(out / "samples.jsonl", "a") as handle:
        handle.write('{"study_id": "torn')  # as if a run was killed mid-line: a refused rerun must not repair it
    before = snapshot(out)
    changes = {
        "model": ["--model", "demo-shortcut"],
        "ablation": ["--ablation", "blank"],
        "threshold": ["--threshold", "0.75"],
        "options.k": ["-k", "2"],
        "ablate_all": ["--ablate-all"],
        "prompt": ["--prompt", "{question} Reply yes or no."],
    }
    for named, extra in changes.items():
        capsys.readouterr()
        assert main(base + extra) == 2, named
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err and "new --out" in err, err
        assert snapshot(out) == before, named
    # the same run, the default ablation spelled out: resumes (repairing the torn line), nothing redone
    assert main(base + ["--ablation", "none"]) == 0
    assert sorted(r["study_id"] for r in samples(out)) == sorted(r.study_id for r in read_manifest(manifest))


def test_folder_from_before_run_records_is_not_resumed(tmp_path, phantoms, capsys):
    manifest = first_rows(phantoms, 5)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    (out / "run.json").unlink()
    before = snapshot(out)
    assert main(argv) == 2
    assert "older quadrant" in capsys.readouterr().err and snapshot(out) == before


def test_a_new_run_never_writes_among_a_folders_own_files(tmp_path, phantoms, capsys):
    """`--out` naming the dataset's folder once wrote samples, a summary, report.md and plots among its files,
    over any of the same name."""
    manifest = first_rows(phantoms, 5)
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "report.md").write_text("the site's own report\n")
    before = snapshot(out)
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds 1 file(s) and no run" in err and "report.md" not in err
    assert {name: data for name, data in snapshot(out).items() if name != ".quadrant.lock"} == before  # the lock: empty
    empty = tmp_path / "made-beforehand"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"")  # what a file browser leaves in a folder it showed
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(empty), "--quiet"]) == 0


def test_second_concurrent_run_is_refused_and_the_first_writes_every_study_once(tmp_path, phantoms):
    """Two real processes on one folder, started half a second apart (the issue's measurement), their stderr
    not a terminal (so no progress bar either)."""
    manifest = first_rows(phantoms, 60)
    out = tmp_path / "run"
    command = [QUADRANT, "evaluate", "--manifest", str(manifest), "--out", str(out), "--batch-size", "1"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    finished = next(err for code, err in results if code == 0)
    assert finished.strip().splitlines() == [f"wrote {out}/samples.jsonl, summary.json, report.md and plots"]
    assert "being written by another quadrant evaluate" in refused and len(refused.strip().splitlines()) == 1
    ids = [r["study_id"] for r in samples(out)]
    assert len(ids) == len(set(ids)) == 60
    assert json.loads((out / "summary.json").read_text())["n"] == 60


def test_swap_never_shows_a_study_its_own_image(tmp_path, phantoms):
    manifest = first_rows(phantoms, 20)  # 4 images, 5 rows each: the next row is usually the same image
    rows = read_manifest(manifest)
    partners = swap_partners(rows)
    runs = {}
    for name, batch in (("a", "3"), ("b", "8")):
        out = tmp_path / name
        assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet",
                     "--ablation", "swap", "--batch-size", batch]) == 0
        runs[name] = {r["study_id"]: r for r in samples(out)}
    # resumed after losing half its samples, with yet another batch size
    out = tmp_path / "b"
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:9]))
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet",
                 "--ablation", "swap", "--batch-size", "5"]) == 0
    runs["resumed"] = {r["study_id"]: r for r in samples(out)}
    hashes = {r["image"]["sha256"] for r in runs["a"].values()}
    assert len(hashes) == 4
    for run in runs.values():
        assert set(run) == {r.study_id for r in rows}
        for study_id, verdict in run.items():
            used = verdict["text_only"]["image_sha256"]
            assert used != verdict["image"]["sha256"] and used in hashes
            assert used == partners[study_id].sha256 == runs["a"][study_id]["text_only"]["image_sha256"]
            assert verdict["text_only"]["margin"] == pytest.approx(runs["a"][study_id]["text_only"]["margin"], abs=1e-5)
    # another study's image moves the margins: the measured failure was a median |shift| of 1e-6
    shifts = sorted(abs(v["margin_shift"]) for v in runs["a"].values())
    assert shifts[len(shifts) // 2] > 1e-3


def test_a_resumed_swap_run_reads_only_the_images_changed_since(tmp_path, monkeypatch):
    """`--ablation swap` picks each study's partner by its image's sha256, and read every image of the manifest at
    every resume before its first check: on MIMIC-CXR, the whole dataset again. What a run read is now kept in
    its folder by size and mtime."""
    manifest = generate_phantoms(tmp_path / "phantoms", n=4, seed=12, size=64)
    out = tmp_path / "run"
    argv = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet", "--ablation", "swap"]
    assert main(argv) == 0
    written = (out / "samples.jsonl").read_text()
    real, read = fingerprint.file_digest, []
    for module in (fingerprint, evaluate):  # every name a file is hashed under
        monkeypatch.setattr(module, "file_digest", lambda path: read.append(Path(path).name) or real(path))
    assert main(argv) == 0
    assert read == [] and (out / "samples.jsonl").read_text() == written
    image = read_manifest(manifest)[0].image
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # copied, not changed
    assert main(argv) == 0
    assert read == [image.name] and (out / "samples.jsonl").read_text() == written


def test_swap_needs_two_distinct_images(tmp_path, phantoms, capsys):
    manifest = first_rows(phantoms, 5)  # one image, five questions
    with pytest.raises(OptionError, match="1 distinct"):
        swap_partners(read_manifest(manifest))
    out = tmp_path / "run"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--ablation", "swap", "--quiet"]) == 2
    assert "--ablation swap" in capsys.readouterr().err and not out.exists()


def test_verdict_lines_without_the_swap_key_still_read(tmp_path, phantoms):
    out = tmp_path / "run"
    assert main(["evaluate", "--manifest", str(first_rows(phantoms, 5)), "--out", str(out), "--quiet"]) == 0
    line = samples(out)[0]
    assert line["text_only"]["image_sha256"] is None  # no swap, no other image
    del line["text_only"]["image_sha256"]  # as written before the key existed
    assert Verdict.from_json(line).text_only.image_sha256 is None


def test_engine_options_belong_to_ray(tmp_path, phantoms, capsys):
    argv = ["evaluate", "--manifest", str(first_rows(phantoms, 5)), "--out", str(tmp_path / "o"), "--workers", "2"]
    assert main(argv) == 2 and "--engine ray" in capsys.readouterr().err


def peak_rss_kib(argv: list[str]) -> int:
    """Peak resident memory of one fresh `quadrant` process: ru_maxrss of the only child of a fresh parent."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, QUADRANT, *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_manifest(tmp_path, phantoms):
    peaks = {}
    for n in (60, 240):
        peaks[n] = peak_rss_kib(["evaluate", "--manifest", str(first_rows(phantoms, n)), "--out",
                                 str(tmp_path / f"run-{n}"), "--quiet"])
    assert peaks[240] <= 1.15 * peaks[60], peaks
    print(f"peak RSS: 60 rows {peaks[60] / 1024:.0f} MiB, 240 rows {peaks[240] / 1024:.0f} MiB")


def test_a_paraphrase_bank_is_recorded_by_its_content(tmp_path, phantoms, capsys):
    """A run with its own bank resumes with the same bank (even from another path) and is refused with another:
    the record holds the bank's content fingerprint, not the object."""
    manifest = first_rows(phantoms, 5)
    out = tmp_path / "run"

    def bank(path: Path, extra_phrasing: str) -> Path:
        entry = {"keywords": ["cardiomegaly"],
                 "phrasings": ["Is the heart enlarged?", "Is there cardiomegaly?", extra_phrasing]}
        path.write_text(json.dumps({"format": "quadrant-paraphrase-bank", "version": 1, "extends": True,
                                    "findings": {"cardiomegaly": entry}}))
        return path

    first = bank(tmp_path / "bank.json", "Is the cardiac silhouette enlarged?")
    base = ["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet"]
    assert main(base + ["--paraphrase-bank", str(first)]) == 0
    assert json.loads((out / "run.json").read_text())["run"]["options"]["bank"].startswith("sha256:")
    copy = bank(tmp_path / "copy.json", "Is the cardiac silhouette enlarged?")
    assert main(base + ["--paraphrase-bank", str(copy)]) == 0
    capsys.readouterr()
    other = bank(tmp_path / "other.json", "Is the heart big?")
    assert main(base + ["--paraphrase-bank", str(other)]) == 2
    assert "options.bank" in capsys.readouterr().err
