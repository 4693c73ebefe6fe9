"""Measures the evidence map on the bundled pair: the figures behind its defaults and the README.

    python -m quadrant.models.measure_evidence --n 60 --seed 2028 --grids 6 8 12 --fills blur gray

On fresh phantoms (a `generate_phantoms` seed never used in training), every positive study with a finding
mask is checked by `demo` and `demo-shortcut` with an occlusion map, through Quadrant's own pipeline
(`load_study` on the written files, `Checker`, the default backend). Per model, grid and fill: the pointing
game (the strongest cell touches the finding) beside its chance rate, the same game with the strongest cell
taken by |delta| instead of by support for the answer (`pointing_abs`, for comparison), the median strongest
|delta|, the share of flat maps, and the range of strongest |delta| / |m0|.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.evidence import EvidenceOptions, load_mask, pointing
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.manifest import read_manifest
from quadrant.models.phantoms import generate_phantoms
from quadrant.paraphrases import MIN_K

BATCH = 8


def positive_rows(out_dir: str, n: int, seed: int):
    """The manifest rows of n fresh phantoms that have a finding mask (the finding is present)."""
    manifest = generate_phantoms(out_dir, n, seed)
    return [row for row in read_manifest(manifest) if row.mask is not None]


def measure(model: str, rows, options: EvidenceOptions) -> list[dict]:
    """One record per row: pointing hit and chance, the strongest |delta|, m0, flatness."""
    checker = Checker(load_model(ModelSpec(model=model)), options=CheckOptions(k=MIN_K, evidence=options))
    records = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        studies = [load_study(row.image) for row in batch]
        requests = [CheckRequest(s, row.question, label=row.label, study_id=row.study_id)
                    for s, row in zip(studies, batch, strict=True)]
        for row, study, verdict in zip(batch, studies, checker.check_many(requests), strict=True):
            evidence = verdict.evidence
            mask = load_mask(row.mask, study.width, study.height)
            game = pointing(evidence, mask)
            by_size = max(range(len(evidence["cells"])), key=lambda i: abs(evidence["cells"][i]["delta"]))
            game_abs = pointing({**evidence, "strongest": by_size}, mask)
            records.append({
                "study_id": row.study_id, "finding": row.extra.get("finding"), "m0": verdict.prompts[0].margin,
                "answer": verdict.answer, "quadrant": verdict.quadrant, "max_abs_delta": evidence["max_abs_delta"],
                "flat": evidence["flat"], "hit": None if game is None else game["hit"],
                "chance": None if game is None else game["chance"], "reading": evidence["reading"],
                "hit_abs": None if game_abs is None else game_abs["hit"],
            })
    return records


def summary(records: list[dict]) -> dict:
    played = [r for r in records if r["hit"] is not None]
    return {
        "n": len(records),
        "pointing": sum(r["hit"] for r in played) / len(played),
        "chance": statistics.fmean(r["chance"] for r in played),
        "pointing_abs": sum(r["hit_abs"] for r in played) / len(played),
        "median_max_abs_delta": statistics.median(r["max_abs_delta"] for r in records),
        "flat_share": sum(r["flat"] for r in records) / len(records),
        "max_ratio": max(r["max_abs_delta"] / abs(r["m0"]) for r in records),
        "min_ratio": min(r["max_abs_delta"] / abs(r["m0"]) for r in records),
        "by_finding": {
            f: sum(r["hit"] for r in played if r["finding"] == f) / max(1, sum(r["finding"] == f for r in played))
            for f in sorted({r["finding"] for r in played})
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="phantom studies (about half of each finding positive)")
    parser.add_argument("--seed", type=int, default=2028)
    parser.add_argument("--grids", type=int, nargs="+", default=[8])
    parser.add_argument("--fills", nargs="+", default=["blur"])
    parser.add_argument("--models", nargs="+", default=["demo", "demo-shortcut"])
    parser.add_argument("--records", help="also write every record to this JSON file")
    args = parser.parse_args()
    results, everything = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = positive_rows(tmp, args.n, args.seed)
        for grid in args.grids:
            for fill in args.fills:
                for model in args.models:
                    records = measure(model, rows, EvidenceOptions(grid=grid, fill=fill))
                    row = {"model": model, "grid": grid, "fill": fill, **summary(records)}
                    everything[f"{model}-{grid}-{fill}"] = records
                    results.append(row)
                    print(json.dumps(row), flush=True)
    if args.records:
        with open(args.records, "w", encoding="utf-8") as handle:
            json.dump(everything, handle)


if __name__ == "__main__":
    main()
