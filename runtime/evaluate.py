"""Evaluating a whole dataset: every manifest row checked, appended to samples.jsonl as it finishes.

Resumable by construction: a finished sample is one flushed and fsynced line with its study_id, and a rerun
skips the ids already there (a half-written last line from a kill is dropped and redone). Rows that cannot
be checked (an unreadable study, a question that is not yes/no) go to errors.jsonl with the message, never
into the metrics, and never stop the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .check import Checker, CheckRequest
from .errors import InputError, OptionError
from .evidence import load_mask, pointing
from .images import load_study
from .manifest import ManifestRow, read_manifest
from .metrics import summarize

SAMPLES, ERRORS, SUMMARY = "samples.jsonl", "errors.jsonl", "summary.json"
RULE_NAMES = ("ideal", "fragile", "dangerous", "worst", "flip_rate", "accuracy", "text_only_agreement")


@dataclass(frozen=True)
class FailRule:
    """`NAME>VALUE` or `NAME<VALUE` over summary.json; a rule that holds fails the run (exit 1)."""

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "FailRule":
        for op in (">", "<"):
            name, sep, value = text.partition(op)
            if sep:
                name = name.strip().lower()
                if name not in RULE_NAMES:
                    raise OptionError(f"--fail-if {text!r}: unknown name {name!r}; known: {', '.join(RULE_NAMES)}")
                try:
                    return cls(name, op, float(value))
                except ValueError:
                    raise OptionError(f"--fail-if {text!r}: {value.strip()!r} is not a number") from None
        raise OptionError(f"--fail-if {text!r}: expected NAME>VALUE or NAME<VALUE")

    def holds(self, summary: dict) -> bool:
        if self.name in ("ideal", "fragile", "dangerous", "worst"):
            actual = summary["fractions"].get(self.name.capitalize())
        else:
            actual = summary.get(self.name)
        if actual is None:
            return False
        return actual > self.value if self.op == ">" else actual < self.value

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def finished_ids(out_dir: Path) -> set[str]:
    """study_ids already in samples.jsonl; a torn last line (killed mid-write) is cut off the file."""
    path = out_dir / SAMPLES
    if not path.exists():
        return set()
    ids, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for line in handle:
            try:
                ids.add(json.loads(line)["study_id"])
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                break
            good_bytes += len(line)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return ids


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _batches(rows: Sequence[ManifestRow], size: int) -> Iterator[list[ManifestRow]]:
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])


def evaluate(
    checker: Checker,
    manifest: str | Path,
    out_dir: str | Path,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Check every unfinished row, then write summary.json from all samples; returns the summary."""
    if batch_size < 1:
        raise OptionError("--batch-size must be at least 1")
    rows = read_manifest(manifest)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = finished_ids(out)
    todo = [r for r in rows if r.study_id not in done]
    swap_source = {r.study_id: rows[(i + 1) % len(rows)].image for i, r in enumerate(rows)}
    completed = len(rows) - len(todo)
    if progress:
        progress(completed, len(rows))
    for batch in _batches(todo, batch_size):
        requests, masks = [], []
        for row in batch:
            try:
                request = _request(checker, row, swap_source[row.study_id])
                mask = _mask(checker, row, request)
            except InputError as exc:
                _append(out / ERRORS, {"study_id": row.study_id, "image": str(row.image), "error": str(exc)})
                continue
            requests.append(request)
            masks.append(mask)
        for verdict, mask in zip(checker.check_many(requests) if requests else [], masks):
            record = verdict.to_json()
            if mask is not None:
                record["evidence"]["pointing"] = pointing(record["evidence"], mask)
            _append(out / SAMPLES, record)
        completed += len(batch)
        if progress:
            progress(completed, len(rows))
    return write_summary(out, rows)


def _request(checker: Checker, row: ManifestRow, swap_path: Path) -> CheckRequest:
    swap = load_study(swap_path).image if checker.ablation == "swap" else None
    request = CheckRequest(
        study=load_study(row.image), question=row.question, paraphrases=row.paraphrases, label=row.label,
        study_id=row.study_id, swap_image=swap, extra=row.extra,
    )
    checker.validate(request)
    return request


def _mask(checker: Checker, row: ManifestRow, request: CheckRequest):
    """The row's finding mask at the study's size, where it has one and maps are made (the pointing game)."""
    if row.mask is None or checker.options.evidence is None:
        return None
    return load_mask(row.mask, request.study.width, request.study.height)


def _failed_ids(out_dir: Path) -> set[str]:
    path = out_dir / ERRORS
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as handle:
        return {json.loads(line)["study_id"] for line in handle if line.strip()}


# what a summary does not need of a verdict: the bulk of each line (every prompt's rendered text and margins)
_HEAVY = ("prompts", "text_only_all", "model", "image", "timing_ms")


def read_outcomes(out_dir: str | Path) -> list[dict]:
    """Every verdict in samples.jsonl without its per-prompt detail: what a summary needs, a few hundred
    bytes per sample, so that summarising a large dataset does not hold every verdict whole."""
    path = Path(out_dir) / SAMPLES
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [{k: v for k, v in json.loads(line).items() if k not in _HEAVY} for line in handle if line.strip()]


def first_sample(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / SAMPLES
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        line = handle.readline()
    return json.loads(line) if line.strip() else None


def write_summary(out_dir: Path, rows: Sequence[ManifestRow] | None = None) -> dict:
    """summary.json, plots and report from samples.jsonl (only rows of the manifest, when given)."""
    samples = read_outcomes(out_dir)
    if rows is not None:
        wanted = {r.study_id for r in rows}
        samples = [s for s in samples if s["study_id"] in wanted]
    summary = summarize(samples)
    summary["n_errors"] = len(_failed_ids(out_dir) - {s["study_id"] for s in samples})
    with open(out_dir / SUMMARY, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    from .report import write_report

    write_report(out_dir, summary, samples)
    return summary
