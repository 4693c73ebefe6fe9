"""Write the bundled sample studies (models/samples/): a few phantoms with known findings, one as DICOM.

    python -m quadrant.models.make_samples --out models/samples      # a second or two

Each sample is study i of `generate_phantoms(seed=SEED)` (the same random stream, so the same picture),
picked as the first study whose findings are exactly the wanted set. None of them was used in training
(training phantoms come from a different kind of seed). README.md in the folder lists the ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from .phantoms import FINDINGS, QUESTIONS, render_phantom, to_uint8, write_dicom

SEED = 2026
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

#: (file stem, findings present, format): what the app's examples and the README show
WANTED: tuple[tuple[str, frozenset[str], str], ...] = (
    ("normal", frozenset(), "png"),
    ("effusion", frozenset({"pleural effusion"}), "png"),
    ("cardiomegaly-effusion", frozenset({"cardiomegaly", "pleural effusion"}), "png"),
    ("pneumothorax", frozenset({"pneumothorax"}), "png"),
    ("nodule", frozenset({"nodule"}), "png"),
    ("consolidation", frozenset({"consolidation"}), "png"),
    ("cardiomegaly-dicom", frozenset({"cardiomegaly"}), "dcm"),
)


def find_studies(seed: int = SEED, limit: int = 5000) -> dict[str, tuple[int, dict[str, bool], np.ndarray]]:
    """For each wanted set, the first study index of `seed` with exactly those findings, and its picture."""
    found: dict[str, tuple[int, dict[str, bool], np.ndarray]] = {}
    used: set[int] = set()
    for i in range(limit):
        rng = np.random.default_rng([seed, i])
        draws = rng.random(len(FINDINGS))  # as sample_phantom draws them, p_finding = 0.5
        findings = {name: bool(d < 0.5) for name, d in zip(FINDINGS, draws, strict=True)}
        present = frozenset(f for f, v in findings.items() if v)
        for stem, wanted, _ in WANTED:
            if stem not in found and present == wanted and i not in used:
                found[stem] = (i, findings, render_phantom(rng, findings, 256))
                used.add(i)
                break
        if len(found) == len(WANTED):
            return found
    raise RuntimeError("not every wanted finding set occurred; raise the limit")


def model_answers(out_dir: str | Path, presets=("demo", "demo-shortcut")) -> dict[str, dict[str, list[tuple]]]:
    """What each bundled preset answers to each sample's five phantom questions, through Quadrant's checker:
    {preset: {file: [(finding, answer, correct, quadrant), ...]}} (default reliance rule)."""
    from quadrant.check import Checker, CheckRequest
    from quadrant.images import load_study
    from quadrant.backends import load_model
    from quadrant.loading import ModelSpec

    out = Path(out_dir)
    result: dict[str, dict[str, list[tuple]]] = {}
    for preset in presets:
        checker = Checker(load_model(ModelSpec(model=preset, device="cpu")), "torch").prepare()
        result[preset] = {}
        for stem, present, fmt in WANTED:
            study = load_study(out / f"{stem}.{fmt}")
            requests = [CheckRequest(study, QUESTIONS[f], label="yes" if f in present else "no") for f in FINDINGS]
            result[preset][f"{stem}.{fmt}"] = [
                (f, v.answer, v.correct, v.quadrant) for f, v in zip(FINDINGS, checker.check_many(requests), strict=True)
            ]
    return result


def make_samples(out_dir: str | Path = SAMPLES_DIR, seed: int = SEED, with_answers: bool = False) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = find_studies(seed)
    written = []
    rows = []
    for stem, _, fmt in WANTED:
        i, findings, image = found[stem]
        study = f"phantom-{seed}-{i:05d}"
        path = out / f"{stem}.{fmt}"
        if fmt == "dcm":
            write_dicom(path, image, study, monochrome1=False, seed=seed)
        else:
            Image.fromarray(to_uint8(image)).save(path, format="PNG")
        written.append(path)
        rows.append((path.name, study, findings))
    answers = model_answers(out) if with_answers else None
    (out / "README.md").write_text(_readme(rows, seed, answers), encoding="utf-8")
    return written


def _readme(rows, seed: int, answers: dict | None = None) -> str:
    head = "| file | study | " + " | ".join(FINDINGS) + " |"
    lines = [
        "# Sample studies",
        "",
        "Synthetic chest phantoms (not patients) for the app's examples and the README: each file is study",
        f"*i* of `quadrant phantoms --seed {seed}` (`models/phantoms.py`), the first whose findings are the set",
        "shown. They were never used to train the demo models. Ground truth (yes = the finding is drawn):",
        "",
        head,
        "|---|---|" + "---|" * len(FINDINGS),
    ]
    for name, study, findings in rows:
        lines.append(f"| `{name}` | {study} | " + " | ".join("**yes**" if findings[f] else "no" for f in FINDINGS) + " |")
    if answers:
        from quadrant.reliance import DEFAULT_RULE, DEFAULT_THRESHOLD

        lines += [
            "",
            "What the bundled models answer to each file's five phantom questions (answer, then the quadrant",
            f"under the default reliance rule, `{DEFAULT_RULE}` at {DEFAULT_THRESHOLD:g}; a wrong answer is marked ✗):",
        ]
        for preset, per_file in answers.items():
            lines += ["", f"`{preset}`:", "", head.replace("| study ", ""), "|---|" + "---|" * len(FINDINGS)]
            for name, readings in per_file.items():
                cells = [f"{a}{'' if ok else ' ✗'}, {q}" for _, a, ok, q in readings]
                lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The DICOM file is a 16-bit CR (12 bits stored, MONOCHROME2, window over the full range) with no real",
        'identifiers (PatientName "PHANTOM"). The questions the phantoms were labelled for:',
        "",
        *[f"- {f}: \"{QUESTIONS[f]}\"" for f in FINDINGS],
        "",
        "Try `quadrant check --image models/samples/cardiomegaly-effusion.png --question \"Is there a pleural",
        "effusion?\"`, then the same with `--model demo-shortcut`. `effusion.png` is a subtle one: `demo`",
        "misses its effusion on most phrasings (a Fragile verdict).",
        "",
        "Regenerate (about a second; `--with-answers` adds the tables above, a few seconds more):",
        "`python -m quadrant.models.make_samples --out models/samples --with-answers`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAMPLES_DIR))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--with-answers", action="store_true", help="add what the bundled models answer")
    args = parser.parse_args(argv)
    for path in make_samples(args.out, args.seed, args.with_answers):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
