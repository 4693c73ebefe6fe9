"""Measure the demo pair, and models built from it, the way Quadrant sees them: every reliance rule.

    python -m quadrant.models.measure_demo --n 60 --seed 31337 --out /tmp/reliance.json

Each fresh phantom study (a seed never used in training) is asked each finding's question (prompt 0, never
trained on) plus five phrasings of Quadrant's own paraphrase bank (never trained on either), with the image,
without it (ablation `none`), and with each content-free image (`blank`, `white`, `noise`). Everything goes
through Quadrant's own pipeline: `load_study` on the written PNG or DICOM, the family's rendering, the
prefix-shared `torch` backend, margins from the yes/no logits.

Besides `demo` and `demo-shortcut` as committed it measures the two traps a reliance rule must avoid:
`demo-blind` (the projector's output weights zeroed: every image becomes the same tokens, so the model cannot
see any image's content, though it still sees that an image is there) and every model with its language
head scaled (`@0.2`, `@5`: the same answers at another temperature). This is what chose the default reliance
rule, its reference image and its threshold (README, "Choosing the default reliance rule").
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from quadrant.reliance import quadrant, relative_shift
from quadrant.vocabulary import QUADRANTS

#: (preset, blind) pairs and head scales measured by default
MODELS = (("demo", False), ("demo", True), ("demo-shortcut", False))
SCALES = (0.2, 1.0, 5.0)
REFERENCES = ("blank", "white", "noise", "none")
#: relative content-shift thresholds swept for the default rule
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
OLD_DEFAULT = 0.4  # the absolute text-only shift threshold of the `either` rule this measurement replaced


def build(preset: str, blind: bool = False, scale: float = 1.0):
    """A loaded model: the committed weights, the projector's output zeroed if blind, the head scaled."""
    import torch

    from quadrant.backends import load_model

    from quadrant.loading import ModelSpec

    loaded = load_model(ModelSpec(model=preset, device="cpu"))
    with torch.no_grad():
        if blind:
            loaded.model.model.multi_modal_projector.linear_2.weight.zero_()
        loaded.model.lm_head.weight.mul_(scale)
    return loaded


def collect(loaded, manifest: Path, batch: int = 10) -> list[dict]:
    """One record per manifest row: every phrasing's margin with the image, without it, and with each
    content-free image."""
    from quadrant.ablation import ablated_image
    from quadrant.backends import BACKENDS, ScoreRequest
    from quadrant.images import load_study
    from quadrant.paraphrases import paraphrase_set

    scorer = BACKENDS.get("torch")(loaded)
    scorer.prepare()

    def render(text: str, with_image: bool) -> str:
        return loaded.family.render(loaded.processor, loaded.wrap(text), with_image, loaded.chat_template)

    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    studies: dict[str, object] = {}
    records = []
    for start in range(0, len(rows), batch):
        requests, spans = [], []
        for row in rows[start : start + batch]:
            study = studies.setdefault(row["image"], load_study(manifest.parent / row["image"]))
            phrasings = paraphrase_set(row["question"], k=5)
            images = {"image": study.image, "none": None}
            images.update({m: ablated_image(m, study.image, study.sha256) for m in REFERENCES if m != "none"})
            first = len(requests)
            for image in images.values():
                requests += [ScoreRequest(render(p.text, image is not None), image) for p in phrasings]
            spans.append((row, phrasings, list(images), first))
        margins = [r.margin for r in scorer.margins(requests)]
        for row, phrasings, modes, first in spans:
            k = len(phrasings)
            record = {"study_id": row["study_id"], "finding": row["finding"], "label": row["label"],
                      "texts": [p.text for p in phrasings], "inverted": [p.inverted for p in phrasings]}
            for i, mode in enumerate(modes):
                record[f"m_{mode}"] = margins[first + i * k : first + (i + 1) * k]
            records.append(record)
    return records


def _answer(m: float, inverted: bool = False) -> str:
    return "yes" if (m > 0) != inverted else "no"


def summarise(records: Sequence[dict]) -> dict:
    """Accuracy, flip rate, and the Ideal / image-reliant shares of prompt 0 under every rule compared."""
    n = len(records)
    consistent = [
        all(_answer(m, inv) == _answer(r["m_image"][0]) for m, inv in zip(r["m_image"][1:], r["inverted"][1:], strict=True))
        for r in records
    ]

    def shares(reliant: Sequence[bool]) -> dict:
        counts = dict.fromkeys(QUADRANTS, 0)
        for c, rel in zip(consistent, reliant, strict=True):
            counts[quadrant(c, rel)] += 1
        return {"reliant": round(sum(reliant) / n, 4), **{q: round(k / n, 4) for q, k in counts.items()}}

    first = [(r["m_image"][0], r) for r in records]
    rules = {
        "flip": shares([_answer(m) != _answer(r["m_none"][0]) for m, r in first]),
        f"either@{OLD_DEFAULT:g}(none)": shares(
            [_answer(m) != _answer(r["m_none"][0]) or abs(m - r["m_none"][0]) >= OLD_DEFAULT for m, r in first]),
    }
    for reference in REFERENCES:
        relative = [relative_shift(m, r[f"m_{reference}"][0]) for m, r in first]
        for t in SWEEP:
            rules[f"content@{t:g}({reference})"] = shares([x >= t for x in relative])
    text_shift = [abs(m - r["m_none"][0]) for m, r in first]
    content_shift = [abs(m - r["m_blank"][0]) for m, r in first]
    relative_blank = [relative_shift(m, r["m_blank"][0]) for m, r in first]
    return {
        "n": n,
        "accuracy": round(sum(_answer(m) == r["label"] for m, r in first) / n, 4),
        "flip_rate": round(1 - sum(consistent) / n, 4),
        "rules": rules,
        "median_abs_text_only_shift": round(statistics.median(text_shift), 4),
        "median_abs_content_shift": round(statistics.median(content_shift), 4),
        "median_relative_content_shift": round(statistics.median(relative_blank), 4),
        "max_relative_content_shift": round(max(relative_blank), 4),
    }


def measure(n: int = 60, seed: int = 31337, models: Sequence[tuple[str, bool]] = MODELS,
            scales: Sequence[float] = SCALES) -> dict:
    """Generate n fresh studies and summarise every model variant on them."""
    from quadrant.models.phantoms import generate_phantoms

    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_phantoms(Path(tmp) / "phantoms", n, seed)
        out = {"n_studies": n, "seed": seed, "configs": {}}
        for preset, blind in models:
            for scale in scales:
                name = f"{preset}{'-blind' if blind else ''}@{scale:g}"
                out["configs"][name] = summarise(collect(build(preset, blind, scale), manifest))
        return out


def table(result: dict, rules: Sequence[str]) -> str:
    """Markdown: one row per rule, one column per model variant, `image-reliant / Ideal` in each cell."""
    configs = list(result["configs"])
    lines = ["| rule | " + " | ".join(f"`{c}`" for c in configs) + " |", "|---|" + "---|" * len(configs)]
    for rule in rules:
        cells = [result["configs"][c]["rules"][rule] for c in configs]
        lines.append(f"| {rule} | " + " | ".join(f"{100 * x['reliant']:.0f} / {100 * x['Ideal']:.0f}" for x in cells)
                     + " |")
    return "\n".join(lines)


def measured(argv, doc: str, seed: int, measure: Callable[[int, int], dict]) -> dict:
    """The command line the demo measurements share: --n fresh studies, --seed, --out for the JSON; offline, on
    the CPU threads training used. Returns what `measure(n, seed)` measured."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="fresh studies (each asked all five findings)")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--out", help="write the full result as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(int(os.environ.get("QUADRANT_TRAIN_THREADS", "2")))
    result = measure(args.n, args.seed)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv=None) -> int:
    result = measured(argv, __doc__, 31337, measure)
    rules = ["flip", f"either@{OLD_DEFAULT:g}(none)"] + [f"content@{t:g}(blank)" for t in SWEEP]
    rules += ["content@0.25(white)", "content@0.25(noise)", "content@0.25(none)"]
    print(table(result, rules))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
