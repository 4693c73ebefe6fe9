"""What a person reads from the command line: `quadrant check` without --json, `quadrant bench`, and
`quadrant phantoms`. Structure and numbers are checked, never the table's borders or a wall-clock time."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from quadrant.cli.main import main
from quadrant.manifest import read_manifest
from quadrant.models.phantoms import FINDINGS
from quadrant.models.presets import MODELS_DIR

SAMPLE = MODELS_DIR / "samples" / "cardiomegaly-effusion.png"
CHECK = ["check", "--image", str(SAMPLE), "--question", "Is there a pleural effusion?", "--reliance", "flip",
         "--paraphrase", "Is there any fluid in the pleural space?", "--paraphrase",
         "!Can a pleural effusion be ruled out?", "--label", "yes"]

# The demo model on its effusion sample (models/samples/README.md): yes with the image, no without it; it
# says yes to "can it be ruled out?" too, which disagrees once negated, so the verdict is Fragile.
GOLDEN_ROWS = [
    ("0", "Is there a pleural effusion?", "question", "yes", 0.548, +0.191),
    ("1", "Is there any fluid in the pleural space?", "user", "yes", 0.706, +0.874),
    ("2", "Can a pleural effusion be ruled out? (inverted)", "user", "yes", 0.609, +0.445),
    ("T", "Is there a pleural effusion? (text only, ablation none)", "", "no", 0.080, -2.441),
]
GOLDEN_LINES = [
    "Study  PNG 256x256  sha256 4a05b1994d7cb427…",
    "Model  demo (llava, torch, cpu, float32)  sha256:",
    "Text-only shift +2.632",
    "(reliance rule flip)",
    "1 of 2 paraphrases disagree",
    "Label yes: the answer is correct",
    "Verdict FRAGILE ANSWER: The model answered “yes” to “Is there a pleural effusion?”.",
    "The study's image moved the answer, compared with the same question asked without the image, but 1 of the",
    "Decided by asking the question with and without the image: “yes” with it, “no” without it",
    "Not for diagnostic use.",
]


def _cells(line: str) -> list[str]:
    """A table row's cells, whatever characters draw the borders."""
    return [cell.strip() for cell in re.split(r"\s[│┃|]\s?", line)]


def test_check_prints_a_readable_verdict(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # one line per row: rich wraps long phrasings at 80 columns
    assert main(CHECK + ["--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert main(CHECK) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert "\x1b[" not in text  # no colour codes when not writing to a terminal

    # the golden excerpts, in this order (two may share a line), other lines allowed between them
    position = 0
    for expected in GOLDEN_LINES:
        found = [i for i, line in enumerate(lines[position:], position) if expected in line]
        assert found, f"{expected!r} not found from line {position} on:\n{text}"
        position = found[0]
    assert verdict["model"]["fingerprint"][:23] in text

    # one row per phrasing and one for the text-only pass, with the verdict's own numbers
    rows: dict[str, list[str]] = {}
    for cells in map(_cells, lines):
        if len(cells) == 6 and cells[0] in ("0", "1", "2", "T"):
            rows.setdefault(cells[0], cells)  # the first row of each label, should more rows be added
    assert list(rows) == ["0", "1", "2", "T"]
    readings = verdict["prompts"] + [verdict["text_only"]]
    for (index, phrasing, source, answer, p_yes, margin), reading in zip(GOLDEN_ROWS, readings):
        _, shown_phrasing, shown_source, shown_answer, shown_p, shown_margin = rows[index]
        assert shown_phrasing == phrasing and shown_source == source and shown_answer == answer
        assert shown_p == f"{reading['p_yes']:.3f}" and shown_margin == f"{reading['margin']:+.3f}"
        assert float(shown_p) == pytest.approx(p_yes, abs=2e-3)  # the golden numbers, to print precision
        assert float(shown_margin) == pytest.approx(margin, abs=2e-3)
    assert f"Text-only shift {verdict['margin_shift']:+.3f}" in text
    assert f"content shift {verdict['shifts']['content']:+.3f} against a blank image" in text
    assert verdict["quadrant"] == "Fragile"


def test_bench_reports_its_ratios_from_its_own_medians(capsys):
    """A tiny LLaVA-1.5-shaped model (576 image tokens, a one-layer width-32 language model): every key, the
    ratios recomputed from the reported medians, the same verdict both ways; no time is asserted."""
    argv = ["bench", "--json", "--hidden", "32", "--layers", "1", "--repeats", "1", "--no-families", "--device", "cpu",
            "--study-size", "300"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("model", "naive_ms", "one_forward_ms", "quadrant_ms", "speedup", "overhead", "max_margin_diff",
                "same_verdict", "path", "prompts", "device", "dtype", "peak_rss_mib", "torch", "threads"):
        assert key in result, key
    assert result["study_size"] == 300
    assert result["model"]["image_tokens"] == 576 and result["model"]["hidden"] == 32
    assert result["model"]["layers"] == 1
    assert all(result[k] > 0 for k in ("naive_ms", "one_forward_ms", "quadrant_ms", "quadrant_repeat_ms",
                                       "quadrant_followup_ms"))
    assert result["speedup"] == pytest.approx(result["naive_ms"] / result["quadrant_ms"], rel=1e-12)
    assert result["overhead"] == pytest.approx(result["quadrant_ms"] / result["one_forward_ms"], rel=1e-12)
    assert result["overhead_repeat"] == pytest.approx(result["quadrant_repeat_ms"] / result["one_forward_ms"], rel=1e-12)
    assert result["overhead_followup"] == pytest.approx(result["quadrant_followup_ms"] / result["one_forward_ms"],
                                                        rel=1e-12)
    assert result["same_verdict"] is True
    assert result["max_margin_diff"] < 1e-4
    assert "prefix-shared" in result["path"] and result["prompts"] == 8  # prompt 0, 5 paraphrases, text-only, blank
    assert result["device"] == "cpu" and result["dtype"] == "float32"
    assert "families" not in result
    evidence = result["evidence"]  # an occlusion map's cost beside the check's
    assert evidence["grid"] == [8, 8] and evidence["forwards"] == 64 and evidence["check_forwards"] == 8
    assert evidence["vs_check"] == pytest.approx(evidence["ms"] / result["quadrant_ms"], rel=1e-12)
    assert evidence["vs_one_forward"] == pytest.approx(evidence["ms"] / result["one_forward_ms"], rel=1e-12)
    adaptive = evidence["adaptive"]  # the coarse-to-fine map, timed in turn with the full one
    assert adaptive["forwards"] == 12
    assert adaptive["vs_check"] == pytest.approx(adaptive["ms"] / result["quadrant_ms"], rel=1e-12)
    assert adaptive["vs_one_forward"] == pytest.approx(adaptive["ms"] / result["one_forward_ms"], rel=1e-12)
    first_look = evidence["first_look"]  # the full map as the app draws it: its coarse blocks first
    assert first_look["forwards"] == 68 and 0 < first_look["first_ms"] < first_look["ms"]
    assert first_look["vs_check"] == pytest.approx(first_look["ms"] / result["quadrant_ms"], rel=1e-12)
    follow_up = evidence["follow_up"]  # another question's map of the study, its copies' readings kept
    assert follow_up["forwards"] == 64 and follow_up["ms"] > 0
    assert follow_up["vs_check"] == pytest.approx(follow_up["ms"] / result["quadrant_ms"], rel=1e-12)


def test_bench_refuses_a_study_size_it_cannot_time(capsys):
    assert main(["bench", "--study-size", "10", "--no-families"]) == 2
    assert "--study-size must be 64 to 4096 pixels, got 10" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_prints_a_row_per_family(capsys):
    families = ["llava", "gemma3", "idefics3", "paligemma"]
    argv = ["bench", "--hidden", "32", "--layers", "1", "--repeats", "1", "--device", "cpu"]
    assert main(argv + [arg for family in families for arg in ("--family", family)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Model: LLaVA-shaped, 576 image tokens, LM width 32 x 1 layers, on cpu (float32)")
    medians = [float(re.search(r"([\d.]+) ms$", line).group(1)) for line in lines[1:6]]
    speedup = float(re.search(r"speedup ([\d.]+)x", lines[6]).group(1))
    assert re.match(r"\s+evidence map \(8x8 blur\): 64 with-image forwards", lines[7])
    assert re.match(r"\s+evidence map, coarse to fine \(--evidence-mode adaptive\): 12 with-image forwards", lines[8])
    assert re.match(r"\s+evidence map with a first look \(as the app draws it\): 68 with-image forwards, the first "
                    r"look after [\d.]+ ms", lines[9])
    assert re.match(r"\s+evidence map of another question about a study mapped before \(its copies' readings "
                    r"kept\): +[\d.]+ ms", lines[10])
    _assert_ratio_of_printed(speedup, medians[0], medians[2])
    rows = [re.match(r"\s+(\w+)\s+naive\s+([\d.]+) ms\s+quadrant\s+([\d.]+) ms\s+speedup ([\d.]+)x\s+path (\S+)"
                     r"\s+max diff (\S+)", line) for line in lines[11:]]
    assert [r.group(1) for r in rows] == families
    for row in rows:
        naive, quadrant, shown = float(row.group(2)), float(row.group(3)), float(row.group(4))
        _assert_ratio_of_printed(shown, naive, quadrant)
        assert float(row.group(6)) < 1e-4
    assert [r.group(5) for r in rows] == ["packed+prefix-reused+prefix-shared"] * 3 + ["batched"]


def _assert_ratio_of_printed(shown: float, naive_ms: float, quadrant_ms: float) -> None:
    """The ratio is taken before the times are printed to 0.1 ms and itself printed to 0.01, so it must lie
    between the ratios the rounded times allow, not within a fixed tolerance of their quotient."""
    low = (naive_ms - 0.05) / (quadrant_ms + 0.05) - 0.005
    high = (naive_ms + 0.05) / max(quadrant_ms - 0.05, 1e-9) + 0.005
    assert low <= shown <= high, (shown, naive_ms, quadrant_ms)


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_phantoms_from_the_command_line(tmp_path, capsys):
    argv = ["phantoms", "--n", "4", "--seed", "11", "--size", "64", "--dicom-every", "2"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    manifest = Path(capsys.readouterr().out.strip())
    assert manifest == tmp_path / "a" / "manifest.csv"
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * len(FINDINGS)  # one row per study and finding
    assert {r["finding"] for r in rows} == set(FINDINGS)
    assert {r["label"] for r in rows} <= {"yes", "no"}
    assert len({r["study_id"] for r in rows}) == len(rows)
    images = sorted({r["image"] for r in rows})
    assert [Path(i).suffix for i in images] == [".png", ".dcm", ".png", ".dcm"]  # every 2nd study a DICOM
    assert all((manifest.parent / image).is_file() for image in images)
    assert sorted(p.name for p in (manifest.parent / "images").iterdir()) == sorted(Path(i).name for i in images)
    assert len(read_manifest(manifest)) == len(rows)  # evaluate reads what phantoms writes

    # the same seed writes the same bytes; another seed does not
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert main(["phantoms", "--n", "4", "--seed", "12", "--size", "64", "--dicom-every", "2",
                 "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    different = _tree(tmp_path / "c")
    assert not set(different.values()) & set(_tree(tmp_path / "a").values())

    assert main(["phantoms", "--n", "0", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "n must be an integer of at least 1" in err
