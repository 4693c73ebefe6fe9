"""Measure what each reference makes of correct negatives: the figures behind the README's counterfactual table.

    python -m quadrant.models.measure_references --n 60 --seed 8675 --out /tmp/references.json

A content-free image shows no finding either, so a model that reads a normal study and correctly answers 'no'
answers the blank image the same way, and the content rule calls that answer Dangerous. This measures how
often, and what a counterfactual reference (another study of the same question whose label is the opposite)
and its control (one with the same label) make of the same samples.

n fresh phantom studies (a seed never used in training or in another measurement) x 5 findings, each asked
prompt 0 plus five bank paraphrases, go through Quadrant's own evaluation path: the manifest read back,
partners chosen by `reference_partners`, batches checked by `check_jobs` (what both engines run), summaries
by `summarize`. Models: `demo` and `demo-shortcut` as committed, and `demo-blind` (`measure_demo.build`: the
projector's output zeroed, so every image becomes the same tokens). The blank reference's figures are the
`opposite` run's content_free_reliant judgement, which is the default rule's verdict on the same margins.
Also swept: the blank reference's threshold, for the question whether the single-study default should move.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from quadrant.reliance import Reliance, quadrant

from .measure_demo import MODELS, build, measured

#: counterfactual references measured (the blank one comes with the first, beside it)
REFERENCES = ("opposite", "same-label")
#: the blank reference's thresholds swept for the single-study question
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3)
BATCH = 10


def check_all(loaded, rows, reference: str) -> list[dict]:
    """Every row's verdict record under `reference`, as `quadrant evaluate` writes them."""
    from quadrant.check import Checker, CheckOptions
    from quadrant.engines import Job, check_jobs
    from quadrant.evaluate import reference_partners

    reliance = Reliance(reference=reference)
    checker = Checker(loaded, "torch", CheckOptions(reliance=reliance)).prepare()
    partners = reference_partners(rows, reliance)
    samples = []
    for start in range(0, len(rows), BATCH):
        result = check_jobs(checker, [Job(row, partner=partners[row.study_id]) for row in rows[start : start + BATCH]])
        if result.errors:
            raise RuntimeError(f"rows failed: {result.errors}")
        samples += result.samples
    return samples


def figures(summary: dict, key: str = "fractions") -> dict:
    """What the table shows of one summary under one reference (`key`: the run's own fractions, or the
    content-free image's kept beside them)."""
    shares, no, yes = summary[key], summary["by_label"]["no"], summary["by_label"]["yes"]
    return {
        "accuracy": summary["accuracy"],
        "Ideal": shares["Ideal"],
        "not_reliant": shares["Dangerous"] + shares["Worst"],
        "dangerous_correct_negatives": no["correct"][key]["Dangerous"],
        "dangerous_correct_negatives_ci95": no["correct"][f"{key}_ci95"]["Dangerous"],
        "n_correct_negatives": no["correct"]["n"],
        "dangerous_positives": yes[key]["Dangerous"],
        "n_positives": yes["n"],
    }


def sweep(samples: Sequence[dict]) -> dict:
    """The blank reference at other thresholds, recomputed from each verdict's recorded relative shift."""
    out = {}
    for threshold in THRESHOLDS:
        cells = [quadrant(s["consistent"], s["shifts"]["relative_content"] >= threshold) for s in samples]
        negatives = [c for c, s in zip(cells, samples, strict=True) if s["label"] == "no" and s["correct"]]
        out[f"{threshold:g}"] = {
            "Ideal": cells.count("Ideal") / len(cells),
            "not_reliant": (cells.count("Dangerous") + cells.count("Worst")) / len(cells),
            "dangerous_correct_negatives": negatives.count("Dangerous") / max(len(negatives), 1),
        }
    return out


def measure(n: int, seed: int, models: Sequence[tuple[str, bool]] = MODELS) -> dict:
    from quadrant.manifest import read_manifest
    from quadrant.metrics import summarize
    from quadrant.models.phantoms import generate_phantoms

    out = {"n_studies": n, "seed": seed, "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        rows = read_manifest(generate_phantoms(Path(tmp) / "phantoms", n, seed))
        for preset, blind in models:
            loaded = build(preset, blind)
            config = {}
            for reference in REFERENCES:
                samples = check_all(loaded, rows, reference)
                summary = summarize(samples)
                if reference == REFERENCES[0]:
                    config["blank"] = figures(summary, "fractions_content_free_reference")
                    config["blank_sweep"] = sweep(samples)
                config[reference] = figures(summary)
            out["configs"][f"{preset}{'-blind' if blind else ''}"] = config
    return out


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def table(result: dict) -> str:
    """Markdown: one row per model and reference."""
    lines = ["| model | reference | accuracy | Dangerous among correct negatives | Dangerous among positives "
             "| Ideal | not image-reliant |", "|---|---|---|---|---|---|---|"]
    for name, config in result["configs"].items():
        for reference in ("blank", *REFERENCES):
            f = config[reference]
            low, high = f["dangerous_correct_negatives_ci95"]
            lines.append(
                f"| `{name}` | {reference} | {_pct(f['accuracy'])} | {_pct(f['dangerous_correct_negatives'])} "
                f"({_pct(low)}-{_pct(high)}, n = {f['n_correct_negatives']}) | {_pct(f['dangerous_positives'])} "
                f"(n = {f['n_positives']}) | {_pct(f['Ideal'])} | {_pct(f['not_reliant'])} |"
            )
    return "\n".join(lines)


def sweep_table(result: dict) -> str:
    """Markdown: the blank reference's threshold against each model's figures."""
    names = list(result["configs"])
    lines = ["| blank threshold | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for threshold in (f"{t:g}" for t in THRESHOLDS):
        cells = []
        for name in names:
            s = result["configs"][name]["blank_sweep"][threshold]
            cells.append(f"{_pct(s['dangerous_correct_negatives'])} / {_pct(s['Ideal'])} / {_pct(s['not_reliant'])}")
        lines.append(f"| {threshold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    result = measured(argv, __doc__, 8675, measure)
    print(table(result))
    print("\nDangerous among correct negatives / Ideal / not image-reliant, blank reference by threshold:\n")
    print(sweep_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
