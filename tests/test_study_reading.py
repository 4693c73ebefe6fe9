"""An evaluation's study files are read on reader threads, each once while its rows come, the next batch's
while this one is checked; what is written is what checking each row alone writes."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from conftest import write_manifest, write_png
from quadrant.cli.main import main
from quadrant.engines import Job, Settings
from quadrant.engines import reading as reading_module
from quadrant.engines.local import LocalEngine
from quadrant.engines.reading import StudyReader
from quadrant.check import CheckOptions, CheckRequest
from quadrant.images import load_study
from quadrant.loading import ModelSpec
from quadrant.manifest import read_manifest

QUESTIONS = ["Is there a pleural effusion?", "Is there cardiomegaly?", "Is there a pneumothorax?"]


def film_manifest(folder: Path, films: int, missing: str | None = None) -> Path:
    """Every question asked of each film in consecutive rows (as manifests built from MIMIC-CXR and PadChest
    ask every labelled finding of a film); `missing` names a film listed but not on disk."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    names = [f"film{i}.png" for i in range(films)] + ([missing] if missing else [])
    for i, name in enumerate(names):
        if name != missing:
            write_png(folder / "images" / name, seed=300 + i)
        rows += [{"image": f"images/{name}", "question": q, "study_id": f"{name}-{j}"} for j, q in enumerate(QUESTIONS)]
    return write_manifest(folder, rows)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_timing(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "timing_ms"}


def spy_reads(monkeypatch) -> list[tuple[str, str]]:
    """(file name, thread name) for every study file the readers decode, through the real load_study."""
    reads = []
    real = reading_module.load_study

    def load_study(path, frame=None):
        reads.append((Path(path).name, threading.current_thread().name))
        return real(path, frame)

    monkeypatch.setattr(reading_module, "load_study", load_study)
    return reads


def test_a_film_asked_several_findings_is_read_once_and_written_as_if_checked_alone(tmp_path, tiny_model,
                                                                                      monkeypatch):
    model = tiny_model("llava")
    manifest = film_manifest(tmp_path / "data", 3, missing="gone.png")
    reads = spy_reads(monkeypatch)
    out = tmp_path / "run"
    # batches of 4 rows: the second film's questions are split between two batches
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--model", model, "--quiet",
                 "--batch-size", "4"]) == 0
    assert sorted(name for name, _ in reads) == ["film0.png", "film1.png", "film2.png", "gone.png"]
    assert all(thread.startswith("quadrant-reader") for _, thread in reads)
    errors = lines(out / "errors.jsonl")
    assert [e["study_id"] for e in errors] == [f"gone.png-{j}" for j in range(3)]
    assert all("gone.png: no such study file" in e["error"] for e in errors)

    samples = lines(out / "samples.jsonl")
    assert all(re.fullmatch(r"[0-9a-f]{64}", r.pop("manifest_row_sha256")) for r in samples)  # the run's own
    stamps = {r["study_id"]: r.pop("image_file") for r in samples}  # the run's own too
    written = {r["study_id"]: without_timing(r) for r in samples}
    assert len(written) == 9
    checker = Settings(ModelSpec(model=model), CheckOptions()).load_checker()
    rows = read_manifest(manifest)
    assert all(stamps[r.study_id]["size"] == r.image.stat().st_size for r in rows if r.study_id in stamps)
    for start in (0, 4, 8):  # the same batches, each row's file read on this thread by load_study itself
        batch = [row for row in rows[start : start + 4] if row.image.exists()]
        requests = [CheckRequest(load_study(row.image), row.question, study_id=row.study_id) for row in batch]
        for row, verdict in zip(batch, checker.check_each(requests), strict=True):
            assert written[row.study_id] == without_timing(verdict.to_json())


def test_the_local_engine_reads_the_next_batch_while_this_one_is_checked(tmp_path, tiny_model, monkeypatch):
    rows = read_manifest(film_manifest(tmp_path / "data", 3))
    events = []
    real_read = StudyReader.read
    monkeypatch.setattr(StudyReader, "read", lambda self, jobs: events.append(("read", jobs[0].row.study_id))
                        or real_read(self, jobs))
    engine = LocalEngine(Settings(ModelSpec(model=tiny_model("llava")), CheckOptions()))
    engine.start()
    real_check = engine.checker.check_each
    engine.checker.check_each = lambda requests: events.append(("check", requests[0].study_id)) or real_check(requests)
    batches = [[Job(row) for row in rows[start : start + 3]] for start in range(0, 9, 3)]
    results = list(engine.run(batches))
    assert events == [("read", "film0.png-0"), ("read", "film1.png-0"), ("check", "film0.png-0"),
                      ("read", "film2.png-0"), ("check", "film1.png-0"), ("check", "film2.png-0")]
    assert [r["study_id"] for result in results for r in result.samples] == [row.study_id for row in rows]


def test_a_reader_holds_the_files_of_its_last_two_batches(tmp_path, monkeypatch):
    """A file read for the batch before is not read again; one read three batches ago is (memory stays two
    batches of pictures)."""
    rows = {row.image.name: row for row in read_manifest(film_manifest(tmp_path / "data", 3))}
    reads = spy_reads(monkeypatch)
    with StudyReader() as reader:
        for name in ("film0.png", "film1.png", "film0.png", "film2.png", "film1.png"):
            (reading,) = reader.read([Job(rows[name])])
            assert reading.request().study.image.size == (72, 64)
    assert [name for name, _ in reads] == ["film0.png", "film1.png", "film2.png", "film1.png"]
