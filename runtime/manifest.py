"""Dataset manifests (SPEC, Manifest): CSV or JSONL rows of image, question, optional label, paraphrases,
study_id and mask (a binary image of the finding: the evidence map's pointing game). Extra columns (such as
`finding`) are kept, so reports can break results down by them.

Image and mask paths are relative to the manifest's folder unless absolute: a manifest and its images move together.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ManifestError, ParaphraseError
from .paraphrases import Phrasing, phrasings_from_json

REQUIRED = ("image", "question")
_LABELS = {"yes": "yes", "no": "no", "1": "yes", "0": "no", "1.0": "yes", "0.0": "no", "true": "yes",
           "false": "no", "": None}


@dataclass(frozen=True)
class ManifestRow:
    image: Path
    question: str
    study_id: str
    label: str | None = None
    paraphrases: tuple[Phrasing, ...] | None = None
    extra: dict = field(default_factory=dict)
    mask: Path | None = None


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """All rows, validated; a ManifestError names the file, the row and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist or is not a file")
    records = list(_records(path))
    if not records:
        raise ManifestError(f"manifest {path} has no rows")
    rows = [_row(path, number, record) for number, record in records]
    seen: set[str] = set()
    for row in rows:
        if row.study_id in seen:
            raise ManifestError(f"manifest {path}: study_id {row.study_id!r} appears more than once")
        seen.add(row.study_id)
    return rows


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path} is not UTF-8 text") from exc
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"manifest {path}, line {number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise ManifestError(f"manifest {path}, line {number}: expected a JSON object")
            yield number, record
        return
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(f"manifest {path} lacks the column(s) {', '.join(missing)}")
    for number, record in enumerate(reader, start=2):
        yield number, record


def _row(path: Path, number: int, record: dict) -> ManifestRow:
    where = f"manifest {path.name}, row {number}"
    for column in REQUIRED:
        if not str(record.get(column) or "").strip():
            raise ManifestError(f"{where}: empty {column}")
    image = _relative_to(path, record["image"])
    mask = str(record.get("mask") or "").strip()
    raw_label = str(record.get("label") if record.get("label") is not None else "").strip().lower()
    if raw_label not in _LABELS:
        raise ManifestError(f"{where}: label must be yes or no, got {record.get('label')!r}")
    return ManifestRow(
        image=image,
        question=str(record["question"]).strip(),
        study_id=str(record.get("study_id") or "").strip() or f"row-{number}",
        label=_LABELS[raw_label],
        paraphrases=_paraphrases(where, record.get("paraphrases")),
        extra={k: v for k, v in record.items()
               if k not in ("image", "question", "label", "paraphrases", "study_id", "mask") and k},
        mask=_relative_to(path, mask) if mask else None,
    )


def _relative_to(manifest: Path, value) -> Path:
    """A path cell, relative to the manifest's folder unless absolute."""
    resolved = Path(str(value).strip())
    return resolved if resolved.is_absolute() else manifest.parent / resolved


def _paraphrases(where: str, value) -> tuple[Phrasing, ...] | None:
    """The optional `paraphrases` cell: a JSON list (a string in CSV, a list in JSONL), or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: paraphrases must be a JSON list ({exc.msg})") from exc
    try:
        return tuple(phrasings_from_json(value, source=f"{where}: paraphrases")) or None
    except ParaphraseError as exc:
        raise ManifestError(str(exc)) from exc
