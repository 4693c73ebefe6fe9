"""Comparing evaluations: one row per configuration, and the paper's headline correlation between flip
rate and Dangerous fraction across them (Pearson r with n and a 95% interval)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError
from .evaluate import SUMMARY, first_sample
from .metrics import pearson


def load_summaries(directories: list[str]) -> list[dict]:
    rows = []
    for directory in directories:
        path = Path(directory) / SUMMARY
        if not path.is_file():
            raise InputError(f"{directory} has no {SUMMARY}: run quadrant evaluate --out {directory} first")
        with open(path, encoding="utf-8") as handle:
            summary = json.load(handle)
        model = (first_sample(directory) or {}).get("model", {})
        rows.append({"config": str(directory), "model": model.get("name"), "summary": summary})
    return rows


def compare(directories: list[str]) -> dict:
    rows = load_summaries(directories)
    flip = [r["summary"]["flip_rate"] for r in rows]
    dangerous = [r["summary"]["fractions"]["Dangerous"] for r in rows]
    pairs = [(f, d) for f, d in zip(flip, dangerous, strict=True) if f is not None and d is not None]
    correlation = pearson([f for f, _ in pairs], [d for _, d in pairs])
    return {"rows": rows, "flip_vs_dangerous": correlation, "same_studies": same_studies(rows)}


def same_studies(rows: list[dict]) -> bool | None:
    """Whether every run answered the same questions about the same studies (`studies_digest`); None where a
    run's summary is from before the digest was recorded."""
    digests = [row["summary"].get("studies_sha256") for row in rows]
    return None if None in digests else len(set(digests)) == 1
