"""Measure the demo pair the way Quadrant sees it: fresh phantoms, held-out phrasings, every reliance rule.

    python -m quadrant.models.measure_demo --n 200 --seed 777 --out /tmp/demo-metrics.json

Each phantom study is asked each finding's question (prompt 0, never trained on) plus the first five
phrasings of Quadrant's own paraphrase bank (never trained on either), with the image, and without it
(ablation `none`, on every phrasing so that the per-prompt margin shift can be reported). Everything goes
through Quadrant's own pipeline: `load_study` on the written PNG or DICOM, `Checker` with the prefix-shared
`torch` backend, the answers read from the yes/no margins. This is what chose the default reliance rule
and threshold, and what the model cards report.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from quadrant.reliance import DEFAULT_THRESHOLD, QUADRANTS, quadrant

RULES = ("flip", "margin", "either")
THRESHOLDS = (0.25, DEFAULT_THRESHOLD, 0.5, 1.0)
#: thresholds swept for the choice of the default reliance rule (either: flip, or |shift| >= t)
SWEEP = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)


def collect(preset: str, manifest: Path, batch: int = 8, ablate_all: bool = True) -> list[dict]:
    """One record per manifest row: label, finding, the with-image margins of every phrasing and the
    text-only margins of every phrasing (of prompt 0 only, without `ablate_all`)."""
    from quadrant.check import Checker, CheckOptions, CheckRequest
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(model=preset, device="cpu"))
    checker = Checker(loaded, "torch", CheckOptions(ablation="none", ablate_all=ablate_all))
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    studies: dict[str, object] = {}
    records = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        requests = []
        for row in chunk:
            if row["image"] not in studies:
                studies[row["image"]] = load_study(manifest.parent / row["image"])
            requests.append(CheckRequest(studies[row["image"]], row["question"], label=row["label"],
                                         study_id=row["study_id"]))
        for row, verdict in zip(chunk, checker.check_many(requests)):
            v = verdict.to_json()
            records.append({
                "study_id": row["study_id"],
                "finding": row["finding"],
                "label": row["label"],
                "texts": [p["text"] for p in v["prompts"]],
                "inverted": [p["inverted"] for p in v["prompts"]],
                "m_image": [p["margin"] for p in v["prompts"]],
                "m_text": [t["margin"] for t in (v.get("text_only_all") or [v["text_only"]])],
            })
    return records


def _answer(m: float, inverted: bool = False) -> str:
    yes = m > 0
    return "yes" if yes != inverted else "no"


def summarise(records: Sequence[dict], thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Accuracy (prompt 0), flip rate, text-only answers, quadrant fractions per rule, margin shifts."""
    n = len(records)
    findings = sorted({r["finding"] for r in records})
    correct = [_answer(r["m_image"][0]) == r["label"] for r in records]
    consistent = [
        all(_answer(m, inv) == _answer(r["m_image"][0]) for m, inv in zip(r["m_image"][1:], r["inverted"][1:]))
        for r in records
    ]
    flipped = [_answer(r["m_image"][0]) != _answer(r["m_text"][0]) for r in records]
    shift0 = [abs(r["m_image"][0] - r["m_text"][0]) for r in records]

    def fractions(reliant: Sequence[bool]) -> dict:
        counts = dict.fromkeys(QUADRANTS, 0)
        for c, rel in zip(consistent, reliant):
            counts[quadrant(c, rel)] += 1
        return {q: round(k / n, 4) for q, k in counts.items()}

    rules = {"flip": fractions(flipped)}
    for t in thresholds:
        rules[f"margin@{t:g}"] = fractions([s >= t for s in shift0])
        rules[f"either@{t:g}"] = fractions([f or s >= t for f, s in zip(flipped, shift0)])
    sweep = {}
    for t in SWEEP:
        f = fractions([fl or s >= t for fl, s in zip(flipped, shift0)])
        sweep[f"{t:g}"] = {"Ideal": f["Ideal"], "Dangerous": f["Dangerous"]}
    shifts = [abs(a - b) for r in records for a, b in zip(r["m_image"], r["m_text"])]
    shifts_sorted = sorted(shifts)
    per_finding_low = {
        f: round(sum(abs(a - b) < 0.5 for r in records if r["finding"] == f for a, b in zip(r["m_image"], r["m_text"]))
                 / max(1, sum(len(r["m_image"]) for r in records if r["finding"] == f)), 4)
        for f in findings
    }
    return {
        "n": n,
        "accuracy": round(sum(correct) / n, 4),
        "accuracy_by_finding": {
            f: round(sum(c for c, r in zip(correct, records) if r["finding"] == f)
                     / max(1, sum(r["finding"] == f for r in records)), 4)
            for f in findings
        },
        "accuracy_all_phrasings": round(
            sum(_answer(m, inv) == r["label"] for r in records for m, inv in zip(r["m_image"], r["inverted"]))
            / sum(len(r["m_image"]) for r in records), 4),
        "flip_rate": round(1 - sum(consistent) / n, 4),
        "text_only_yes_rate": round(sum(r["m_text"][0] > 0 for r in records) / n, 4),
        "text_only_agreement": round(1 - sum(flipped) / n, 4),
        "fractions": rules,
        "either_sweep": sweep,
        "margin_shift_per_prompt": {
            "n": len(shifts),
            "median": round(statistics.median(shifts_sorted), 4),
            "p10": round(shifts_sorted[len(shifts) // 10], 4),
            "p90": round(shifts_sorted[(9 * len(shifts)) // 10], 4),
            "share_ge_0.25": round(sum(s >= 0.25 for s in shifts) / len(shifts), 4),
            "share_ge_0.5": round(sum(s >= 0.5 for s in shifts) / len(shifts), 4),
            "share_ge_1": round(sum(s >= 1.0 for s in shifts) / len(shifts), 4),
            "share_below_0.5_by_finding": per_finding_low,
        },
        "margin_shift_prompt0_median": round(statistics.median(shift0), 4),
    }


def measure(presets: Sequence[str] = ("demo", "demo-shortcut"), n: int = 200, seed: int = 777,
            workdir: str | Path | None = None, records_out: str | Path | None = None) -> dict:
    """Generate n fresh studies (seed never used in training) and summarise every preset on them."""
    from quadrant.models.phantoms import generate_phantoms

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        manifest = generate_phantoms(root / f"phantoms-{seed}-{n}", n, seed)
        out = {"n_studies": n, "seed": seed, "presets": {}}
        for preset in presets:
            started = time.perf_counter()
            records = collect(preset, manifest)
            if records_out:
                with open(records_out, "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps({"preset": preset, **r}) + "\n" for r in records)
            summary = summarise(records)
            summary["wall_s"] = round(time.perf_counter() - started, 1)
            out["presets"][preset] = summary
        return out


def table(result: dict) -> str:
    """Markdown table of the headline numbers, one column per preset."""
    presets = list(result["presets"])
    lines = ["| | " + " | ".join(f"`{p}`" for p in presets) + " |", "|---|" + "---|" * len(presets)]

    def row(name, get):
        lines.append(f"| {name} | " + " | ".join(get(result["presets"][p]) for p in presets) + " |")

    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    row("accuracy (prompt 0)", lambda s: pct(s["accuracy"]))
    for f in result["presets"][presets[0]]["accuracy_by_finding"]:
        row(f"&nbsp;&nbsp;{f}", lambda s, f=f: pct(s["accuracy_by_finding"][f]))
    row("accuracy (all 6 phrasings)", lambda s: pct(s["accuracy_all_phrasings"]))
    row("flip rate", lambda s: pct(s["flip_rate"]))
    row("text-only answers yes", lambda s: pct(s["text_only_yes_rate"]))
    for rule in ("flip", "either@0.5", f"either@{DEFAULT_THRESHOLD:g}"):
        row(f"Ideal / Dangerous, `{rule}`",
            lambda s, r=rule: f"{pct(s['fractions'][r]['Ideal'])} / {pct(s['fractions'][r]['Dangerous'])}")
    row("median \\|m_image - m_text\\| per prompt", lambda s: f"{s['margin_shift_per_prompt']['median']:.2f}")
    row("prompts with \\|shift\\| >= 0.5", lambda s: pct(s["margin_shift_per_prompt"]["share_ge_0.5"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="fresh studies (each asked all five findings)")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--preset", action="append", help="default: demo and demo-shortcut")
    parser.add_argument("--out", help="write the full result as JSON here")
    parser.add_argument("--records", help="append every sample's margins here (JSON lines)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(int(os.environ.get("QUADRANT_TRAIN_THREADS", "2")))
    torch.set_flush_denormal(True)
    result = measure(args.preset or ("demo", "demo-shortcut"), args.n, args.seed, records_out=args.records)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
