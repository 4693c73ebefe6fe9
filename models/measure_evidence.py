"""Measures the evidence map on the bundled pair: the figures behind its defaults and the README.

    python -m quadrant.models.measure_evidence --n 60 --seed 2028 --grids 6 8 12 --fills blur gray

On fresh phantoms (a `generate_phantoms` seed never used in training), every positive study with a finding
mask is checked by `demo` and `demo-shortcut` with an occlusion map, through Quadrant's own pipeline
(`load_study` on the written files, `Checker`, the default backend). Per model, grid and fill: the pointing
game (the strongest cell touches the finding) beside its chance rate, the same game with the strongest cell
taken by |delta| instead of by support for the answer (`pointing_abs`, for comparison), the median strongest
|delta|, the share of flat maps, and the range of strongest |delta| / |m0|.

    python -m quadrant.models.measure_evidence --compare --positives 100 --seed 2031

`--compare` sets the adaptive map against the full one on the same studies, in one run: per model, the check
alone, then each mode's maps from the same scorer and margins (`evidence_maps`), timed; it prints the forwards
per map, each map's time as a multiple of the check's, how often the adaptive map's strongest cell is the
full map's, and both maps' pointing game. `--bench-model` adds `quadrant bench`'s LLaVA-1.5-shaped model (576
image tokens, random weights: its times count, its agreement and pointing do not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.evidence import EvidenceOptions, evidence_maps, load_mask, pointing
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
    checker = Checker(load_model(ModelSpec(model=model)), options=CheckOptions(k=MIN_K, evidence=options)).prepare()
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


def compare(model: str, rows, grid: int, fill: str, name: str | None = None) -> dict:
    """The adaptive map against the full one on the same studies: forwards, time beside the check's,
    agreement of the strongest cell, and the pointing game of each."""
    checker = Checker(load_model(ModelSpec(model=model)), options=CheckOptions(k=MIN_K)).prepare()
    modes = {mode: EvidenceOptions(grid=grid, fill=fill, mode=mode) for mode in ("full", "adaptive")}
    ms = {"check": 0.0, "full": 0.0, "adaptive": 0.0}
    same, forwards, hits = [], {"full": [], "adaptive": []}, {"full": [], "adaptive": []}
    checker.check(load_study(rows[0].image), rows[0].question)  # warm-up, out of the timing
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        studies = [load_study(row.image) for row in batch]
        requests = [CheckRequest(s, row.question) for s, row in zip(studies, batch, strict=True)]
        started = time.perf_counter()
        verdicts = checker.check_many(requests)
        ms["check"] += (time.perf_counter() - started) * 1000
        prompts = [(v.prompts[0].rendered, s.image, v.prompts[0].margin) for v, s in zip(verdicts, studies, strict=True)]
        maps = {}
        for mode, options in modes.items():
            started = time.perf_counter()
            maps[mode] = evidence_maps(checker.scorer.margins, prompts, options)
            ms[mode] += (time.perf_counter() - started) * 1000
        for index, (row, study) in enumerate(zip(batch, studies, strict=True)):
            full, adaptive = maps["full"][index], maps["adaptive"][index]
            same.append(full["strongest"] == adaptive["strongest"])
            mask = load_mask(row.mask, study.width, study.height)
            for mode, evidence in (("full", full), ("adaptive", adaptive)):
                forwards[mode].append(evidence["forwards"])
                game = pointing(evidence, mask)
                if game is not None:
                    hits[mode].append(game["hit"])
    return {
        "model": name or model, "grid": grid, "fill": fill, "n": len(same),
        "forwards": {mode: statistics.fmean(f) for mode, f in forwards.items()},
        "check_ms_per_study": ms["check"] / len(same),
        "vs_check": {mode: ms[mode] / ms["check"] for mode in modes},
        "same_strongest": sum(same) / len(same),
        "pointing": {mode: sum(h) / len(h) for mode, h in hits.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="phantom studies (about half of each finding positive)")
    parser.add_argument("--seed", type=int, default=2028)
    parser.add_argument("--grids", type=int, nargs="+", default=[8])
    parser.add_argument("--fills", nargs="+", default=["blur"])
    parser.add_argument("--models", nargs="*", default=["demo", "demo-shortcut"])
    parser.add_argument("--records", help="also write every record to this JSON file")
    parser.add_argument("--compare", action="store_true",
                        help="set the adaptive map against the full one (forwards, time, agreement, pointing)")
    parser.add_argument("--positives", type=int, default=100,
                        help="with --compare: positive studies compared (enough phantoms are drawn)")
    parser.add_argument("--bench-model", action="store_true",
                        help="with --compare: also time the maps on quadrant bench's LLaVA-1.5-shaped model")
    args = parser.parse_args()
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            rows = positive_rows(tmp, args.n, args.seed)[: args.positives]
            models = [(model, model) for model in args.models]
            if args.bench_model:
                from quadrant.models.tiny import llava_15_shaped

                models.append((str(llava_15_shaped(f"{tmp}/llava15")), "bench (LLaVA-1.5-shaped)"))
            for model, name in models:
                for grid in args.grids:
                    print(json.dumps(compare(model, rows, grid, args.fills[0], name)), flush=True)
        return
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
