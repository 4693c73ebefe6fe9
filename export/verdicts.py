"""Verdicts, not only logits, validate an export: the export and the PyTorch model it came from check the
same studies, and the share of studies that land in the same quadrant decides whether it is kept.

This is a safety check of the compiled artifact itself. A half-precision or quantized graph moves every
margin a little; what matters to a clinician is whether it moves a verdict, and margins near zero (where
an answer or a consistency flips) are exactly where rounding bites. So the export is run through the very
check a user runs, study by study, and compared with its source: the quadrant, the answer, consistency,
and the largest margin difference over all of a study's prompts. The report lies beside the export
(`validation.json`); its summary goes into the manifest, and from there into every verdict the export
gives ("int8, 99.2% of 1000 verdicts as fp32 on 200 phantoms").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from quadrant.backends import load_model
from quadrant.backends.onnx_format import VALIDATION_NAME, validation_summary
from quadrant.check import Checker, CheckRequest
from quadrant.errors import InputError, ModelError
from quadrant.images import load_study
from quadrant.loading import Loaded, ModelSpec
from quadrant.manifest import read_manifest

BATCH = 16  # studies per scoring call, for both models alike


@dataclass(frozen=True)
class ValidationSet:
    """The studies an export is validated on: a manifest, and what to call it in a report ("200 phantoms")."""

    manifest: Path
    description: str


def validate_verdicts(source: Loaded, export_dir: Path, on: ValidationSet, precision: str, min_agreement: float,
                      device: str, log) -> dict:
    """Check every manifest row with the source and with the export; write the report into `export_dir` and
    return its summary. Refused (ModelError) when fewer than `min_agreement` of the verdicts agree."""
    requests, unusable = _requests(on.manifest)
    if not requests:
        raise InputError(f"{on.manifest} has no row both models could check ({unusable} unusable)")
    exported = load_model(ModelSpec(model=str(export_dir), device=device))
    reference, candidate = Checker(source).prepare(), Checker(exported).prepare()
    studies = []
    for start in range(0, len(requests), BATCH):
        chunk = requests[start : start + BATCH]
        for request, ref, got in zip(chunk, reference.check_each(chunk), candidate.check_each(chunk), strict=True):
            if isinstance(ref, InputError) or isinstance(got, InputError):
                unusable += 1
                continue
            studies.append(_compare(request, ref, got))
    agreement = sum(s["quadrant_agrees"] for s in studies) / len(studies)
    report = {
        "precision": precision,
        "reference": f"{source.name} on PyTorch ({str(source.dtype).replace('torch.', '')})",
        "on": on.description,
        "manifest": str(on.manifest),
        "verdicts": len(studies),
        "images": len({s["image"] for s in studies}),
        "unusable_rows": unusable,
        "quadrant_agreement": agreement,
        "answer_agreement": sum(s["answer_agrees"] for s in studies) / len(studies),
        "consistency_agreement": sum(s["consistency_agrees"] for s in studies) / len(studies),
        "max_margin_diff": max((s["max_margin_diff"] for s in studies if s["max_margin_diff"] is not None),
                               default=None),
        "min_agreement": min_agreement,
        "changed": [s["study_id"] for s in studies if not s["quadrant_agrees"]],
        "studies": studies,
    }
    summary = {k: report[k] for k in ("precision", "on", "verdicts", "images", "quadrant_agreement",
                                      "answer_agreement", "max_margin_diff", "min_agreement")}
    summary["changed"] = len(report["changed"])
    summary["summary"] = validation_summary(summary)
    summary["report"] = VALIDATION_NAME
    log(f"verdicts: {summary['summary']}; answers {report['answer_agreement']:.1%} the same, largest margin "
        f"difference {report['max_margin_diff'] if report['max_margin_diff'] is not None else 'n/a'}")
    for study in studies:
        if not study["quadrant_agrees"]:
            log(f"  changed: {study['study_id']}  {study['quadrant'][0]} -> {study['quadrant'][1]}  "
                f"(largest margin difference {study['max_margin_diff']})")
    if agreement < min_agreement:
        raise ModelError(f"the {precision} export gives its PyTorch source's quadrant on {agreement:.1%} of "
                         f"{len(studies)} verdicts on {on.description}, below --min-agreement {min_agreement:g}; "
                         "nothing was kept (try another precision, or validate on studies closer to your use)")
    (export_dir / VALIDATION_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return summary


def _requests(manifest: Path) -> tuple[list[CheckRequest], int]:
    """The manifest's rows as check requests, each image read once; rows whose study cannot be read are
    counted, not checked."""
    studies, requests, unusable = {}, [], 0
    for row in read_manifest(manifest):
        try:
            if row.image not in studies:
                studies[row.image] = load_study(row.image)
        except InputError:
            unusable += 1
            continue
        requests.append(CheckRequest(studies[row.image], row.question, row.paraphrases, row.label, row.study_id))
    return requests, unusable


def _compare(request: CheckRequest, reference, candidate) -> dict:
    """One study, both ways: does the quadrant agree, the answer, consistency; the largest margin difference
    over every prompt (None in generate mode, which reads no margins)."""
    pairs = list(zip(reference.prompts, candidate.prompts, strict=True))
    pairs += [(reference.text_only, candidate.text_only)]
    if reference.content_free is not None and candidate.content_free is not None:
        pairs.append((reference.content_free, candidate.content_free))
    diffs = [abs(a.margin - b.margin) for a, b in pairs if a.margin is not None and b.margin is not None]
    largest = max(diffs) if diffs and all(math.isfinite(d) for d in diffs) else (math.inf if diffs else None)
    return {
        "study_id": request.study_id,
        "image": request.study.sha256,
        "quadrant": [reference.quadrant, candidate.quadrant],
        "quadrant_agrees": reference.quadrant == candidate.quadrant,
        "answer_agrees": reference.answer == candidate.answer,
        "consistency_agrees": reference.consistent == candidate.consistent,
        "max_margin_diff": largest,
    }
