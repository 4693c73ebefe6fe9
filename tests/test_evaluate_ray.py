"""`quadrant evaluate --engine ray`: the same samples as the local engine, and a killed driver resumes like a
local run. One real local Ray (2 CPUs) serves the whole module; the engine joins it in process, and the killed
run's subprocesses join it by address."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUADRANT
from quadrant.cli.main import main
from quadrant.models.phantoms import generate_phantoms

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """4 phantom studies x 5 findings, plus one row whose image is missing (an errors.jsonl line)."""
    path = generate_phantoms(tmp_path_factory.mktemp("phantoms"), n=4, seed=3, size=64)
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["images/missing.png", "Is there a nodule?", "no", "missing-nodule", "nodule"])
    return path


def by_id(out: Path) -> dict[str, dict]:
    return {r["study_id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}


def test_ray_and_local_engines_write_the_same_samples(tmp_path, manifest, ray_address, capsys):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    base = ["evaluate", "--manifest", str(manifest), "--quiet"]
    assert main(base + ["--out", str(local), "--batch-size", "4"]) == 0
    assert main(base + ["--out", str(distributed), "--engine", "ray", "--workers", "2", "--batch-size", "3"]) == 0
    a, b = by_id(local), by_id(distributed)
    assert len(a) == 20 and set(a) == set(b)
    for study_id, verdict in a.items():
        other = b[study_id]
        assert other["quadrant"] == verdict["quadrant"] and other["answer"] == verdict["answer"]
        for mine, theirs in zip(verdict["prompts"] + [verdict["text_only"]], other["prompts"] + [other["text_only"]]):
            assert theirs["margin"] == pytest.approx(mine["margin"], abs=1e-5)
    errors = [(tmp_path / d / "errors.jsonl").read_text() for d in ("local", "ray")]
    assert errors[0] == errors[1] and "missing.png" in errors[0]
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray")]
    assert summaries[0]["n"] == summaries[1]["n"] == 20 and summaries[0]["fractions"] == summaries[1]["fractions"]
    assert (tmp_path / "ray" / "report.md").exists() and (tmp_path / "ray" / "quadrants.png").exists()
    assert json.loads((local / "run.json").read_text()) == json.loads((distributed / "run.json").read_text())
    # the gate and resume work the same way: nothing left to do, the rule is applied to everything written
    assert main(base + ["--out", str(distributed), "--engine", "ray", "--fail-if", "flip_rate>=0"]) == 1
    assert by_id(distributed) == b


def test_the_counterfactual_study_is_the_same_on_both_engines(tmp_path, manifest, ray_address):
    """--reference opposite: each row is compared with the same other study, by id and image hash, with the same
    margins, whatever the engine and batch size (cardiomegaly is left out: all four studies have it)."""
    with open(manifest, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["finding"] != "cardiomegaly"]
    both = manifest.with_name("both-labels.csv")
    with open(both, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    base = ["evaluate", "--manifest", str(both), "--quiet", "--reference", "opposite"]
    assert main(base + ["--out", str(tmp_path / "local"), "--batch-size", "5"]) == 0
    assert main(base + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "1", "--batch-size", "3"]) == 0
    local, distributed = by_id(tmp_path / "local"), by_id(tmp_path / "ray")
    assert len(local) == 16 and set(local) == set(distributed)
    for study_id, verdict in local.items():
        mine, theirs = verdict["counterfactual"], distributed[study_id]["counterfactual"]
        assert (theirs["study_id"], theirs["image_sha256"]) == (mine["study_id"], mine["image_sha256"])
        assert theirs["margin"] == pytest.approx(mine["margin"], abs=1e-5)
        assert distributed[study_id]["quadrant"] == verdict["quadrant"]


def test_killed_ray_run_resumes_without_loss_or_duplication(tmp_path, manifest, ray_address):
    out = tmp_path / "run"
    command = [QUADRANT, "evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet", "--engine", "ray",
               "--address", ray_address, "--workers", "1", "--batch-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if samples.exists() and samples.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read()  # still running: killed mid-run
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = [json.loads(x)["study_id"] for x in samples.read_text().splitlines() if x.endswith("}")]
    assert 3 <= len(before) < 20
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(x)["study_id"] for x in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 20
    assert ids[: len(before)] == before


def test_ray_engine_without_ray_says_how_to_install_it(tmp_path, manifest):
    out = tmp_path / "run"
    code = ("import sys; sys.modules['ray'] = None; from quadrant.cli.main import main; "
            f"sys.exit(main(['evaluate', '--manifest', {str(manifest)!r}, '--out', {str(out)!r}, '--engine', 'ray']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'quadrant[ray]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
