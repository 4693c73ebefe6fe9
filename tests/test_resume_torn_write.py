"""Resume after a SIGKILL that lands in the middle of writing a sample, not only a hand-made torn line.

One manifest row carries a large extra column (carried into its verdict), so its samples.jsonl line takes
tens of megabytes and the kernel copies it page by page: a SIGKILL sent while the file is growing through
that line stops the write partway (Linux gives up a regular-file write at a page boundary when a fatal
signal is pending), leaving a torn last line on disk, as a power cut or OOM kill would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import QUADRANT, write_png
from quadrant.cli.main import main

BIG = 16 << 20  # characters in the large row's note: its line is written in thousands of pages
BIG_ROW = 2
ROWS = 5


def _manifest(folder: Path) -> Path:
    lines = []
    for i in range(ROWS):
        write_png(folder / f"{i}.png", seed=200 + i)
        note = "x" * BIG if i == BIG_ROW else f"row {i}"
        lines.append(json.dumps({"image": f"{i}.png", "question": "Is there a pleural effusion?",
                                 "study_id": f"s{i}", "note": note}))
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _kill_while_writing_the_big_line(command: list[str], samples: Path, timeout: float = 180) -> bytes:
    """Start the evaluation, SIGKILL it once samples.jsonl has grown a megabyte into the large line, and
    return what is on disk then."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if samples.stat().st_size > 1 << 20:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.0005)  # the large line takes far longer than this to write
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    return samples.read_bytes() if samples.exists() else b""


@pytest.mark.slow  # a second interpreter loading torch: about 20 s on a busy 2-core machine
def test_a_kill_in_the_middle_of_a_line_resumes_without_loss_or_duplication(tmp_path, tiny_model):
    manifest = _manifest(tmp_path)
    argv = ["evaluate", "--manifest", str(manifest), "--model", tiny_model("llava"), "--quiet", "--batch-size", "1"]
    command = [QUADRANT] + argv
    for attempt in range(3):  # the kill may land after the line is whole: try again in a fresh folder
        out = tmp_path / f"run{attempt}"
        on_disk = _kill_while_writing_the_big_line(command + ["--out", str(out)], out / "samples.jsonl")
        if on_disk and not on_disk.endswith(b"\n"):
            break
    else:
        raise AssertionError("no kill landed in the middle of the large line in 3 tries")
    whole, torn = on_disk.rsplit(b"\n", 1)[0] + b"\n", on_disk.rsplit(b"\n", 1)[1]
    finished = [json.loads(line)["study_id"] for line in whole.splitlines()]
    assert finished == [f"s{i}" for i in range(BIG_ROW)]  # batches of one, in manifest order
    assert 0 < len(torn) < BIG and torn.startswith(b"{")  # a real partial write of the large line

    assert main(argv + ["--out", str(out)]) == 0
    after = (out / "samples.jsonl").read_bytes()
    assert after.startswith(whole)  # the finished samples untouched, byte for byte
    records = [json.loads(line) for line in after.splitlines()]
    assert sorted(r["study_id"] for r in records) == [f"s{i}" for i in range(ROWS)]  # none lost, none twice
    big = next(r for r in records if r["study_id"] == f"s{BIG_ROW}")
    assert big["extra"]["note"] == "x" * BIG  # redone whole, not glued to its torn start
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == ROWS
