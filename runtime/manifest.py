"""Dataset manifests (README, "Commands"): CSV or JSONL rows of image, question, optional label, paraphrases,
study_id, mask (a binary image of the finding: the evidence map's pointing game) and frame (which frame of a
multi-frame study to check, counted from 1). Extra columns (such as
`finding`) are kept, so reports can break results down by them.

Image and mask paths are relative to the manifest's folder unless absolute: a manifest and its images move
together. `write_manifest` writes what `read_manifest` reads: the rows read back equal the rows written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .atomic import write_atomically
from .errors import ManifestError, ParaphraseError
from .paraphrases import Phrasing, phrasings_from_json

REQUIRED = ("image", "question")
#: the extra column reports break results down by, and counterfactual references pair rows within
FINDING = "finding"
COLUMNS = ("image", "question", "label", "paraphrases", "study_id", "mask", "frame")
#: the file types by their name's ending; anything else is read as CSV, but written only when asked plainly
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: the delimiters a header may use, by name: Excel saves ";" where the decimal mark is a comma, ".tsv" uses tabs
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
#: the true answer to the row's question, as spreadsheets and label files write it; not "present"/"positive",
#: which name the finding's state and would read backwards for a question about absence
_LABELS = {"yes": "yes", "no": "no", "y": "yes", "n": "no", "1": "yes", "0": "no", "1.0": "yes", "0.0": "no",
           "true": "yes", "false": "no", "": None}


@dataclass(frozen=True)
class ManifestRow:
    image: Path
    question: str
    study_id: str
    label: str | None = None
    paraphrases: tuple[Phrasing, ...] | None = None
    extra: dict = field(default_factory=dict)
    mask: Path | None = None
    frame: int | None = None  # the frame of a multi-frame study to check, counted from 1


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
    yield from _csv_records(path, text)


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """CSV rows as a spreadsheet saves them: the delimiter read off the header, the documented column names
    in any case and spacing, a quoted cell's line breaks kept (its text is then refused by the question
    rule, not glued into one word). A row with more cells than the header is refused: its cells would
    otherwise shift or vanish, e.g. the end of a question holding an unquoted comma."""
    lines = text.splitlines(keepends=True)
    delimiter = _delimiter(path, lines[0] if lines else "")
    reader = csv.reader(lines, delimiter=delimiter)
    names = [_column_name(cell) for cell in next(reader, [])]
    twice = sorted({name for name in names if name and names.count(name) > 1})
    if twice:
        raise ManifestError(f"manifest {path}: the column(s) {', '.join(twice)} appear more than once")
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or a spreadsheet's row of empty cells
        if len(cells) > len(names) and any(cell.strip() for cell in cells[len(names):]):
            raise ManifestError(
                f"manifest {path.name}, row {number} has {len(cells)} cells where the header names "
                f"{len(names)} columns: put a cell that holds a {_DELIMITER_NAMES[delimiter]} in double quotes")
        yield number, dict(zip(names, cells, strict=False))  # short rows: missing cells are empty


def _delimiter(path: Path, header: str) -> str:
    """The delimiter with which the header names the required columns, or a ManifestError."""
    for delimiter in _DELIMITER_NAMES:
        names = {_column_name(cell) for cell in next(csv.reader([header], delimiter=delimiter), [])}
        if all(column in names for column in REQUIRED):
            return delimiter
    # the first line is not echoed: without a header it is a data row, whose file names can hold identifiers
    names = {_column_name(cell) for cell in next(csv.reader([header]), [])}
    missing = [c for c in REQUIRED if c not in names]
    raise ManifestError(f"manifest {path} lacks the column(s) {', '.join(missing)}: its first line must name "
                        f"the columns ({', '.join(COLUMNS)}), separated by commas, semicolons or tabs")


def _column_name(cell: str) -> str:
    """A header cell as a column name: one of ours (or `finding`, which reports break results down by) in any
    case and spacing, any other as written, trimmed."""
    name = cell.strip()
    return name.lower() if name.lower() in (*COLUMNS, FINDING) else name


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
        extra={k: v for k, v in record.items() if k not in COLUMNS and k},
        mask=_relative_to(path, mask) if mask else None,
        frame=_frame(where, record.get("frame")),
    )


def _frame(where: str, value) -> int | None:
    """The optional `frame` cell: a whole number from 1, or empty; "2.0" is 2, as pandas writes a column of
    whole numbers with gaps (and as labels read "1.0")."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    whole = text[:-2] if text.endswith(".0") else text
    if not (whole.isascii() and whole.isdigit()) or int(whole) < 1:
        raise ManifestError(f"{where}: frame must be a whole number from 1, got {value!r}")
    return int(whole)


def _relative_to(manifest: Path, value) -> Path:
    """A path cell, relative to the manifest's folder unless absolute. A cell written on Windows
    (`images\\a.png`, no forward slash) names the same file here: its backslashes are separators."""
    text = str(value).strip()
    if "\\" in text and "/" not in text and os.sep == "/":
        text = text.replace("\\", "/")
    resolved = Path(text)
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


# ------------------------------------------------------------------------------------------------ writing
def manifest_format(path: str | Path) -> str:
    """"csv" or "jsonl", from the file name; a ManifestError for any other ending."""
    kind = SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise ManifestError(f"{path}: a manifest's name must end in {', '.join(SUFFIXES)} (CSV or JSONL)")
    return kind


def write_manifest(path: str | Path, rows: Sequence[ManifestRow]) -> Path:
    """Write rows as CSV or JSONL (by the name's ending), image paths relative to the manifest's folder.

    Streamed to a temporary file and renamed into place, so an interrupted build never leaves a half
    manifest that `evaluate` would take for a whole one.
    """
    path = Path(path)
    kind = manifest_format(path)
    if not rows:
        raise ManifestError(f"{path}: no rows to write (a manifest needs at least one)")
    path.parent.mkdir(parents=True, exist_ok=True)
    relative = _relative_paths(path.parent)

    def write(binary: BinaryIO) -> None:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        (_write_jsonl if kind == "jsonl" else _write_csv)(text, rows, relative)
        text.flush()
        text.detach()  # the handle stays open for write_atomically to sync and close

    return write_atomically(path, write)


def _relative_paths(folder: Path) -> Callable[[Path], str]:
    """image -> its path relative to `folder`, as read_manifest joins it back. The folder is resolved once
    (a symlinked folder followed by '..' would lead elsewhere); each distinct image is computed once, since
    a dataset's rows repeat an image for every finding."""
    start, done = str(folder.resolve()), {}

    def relative(image: Path) -> str:
        if image not in done:
            done[image] = Path(os.path.relpath(os.path.abspath(image), start)).as_posix()
        return done[image]

    return relative


def row_digests(path: str | Path, rows: Sequence[ManifestRow]) -> dict[str, str]:
    """study_id -> a digest of the row as the manifest holds it (paths relative to its folder, so a dataset
    moved whole keeps its digests): how a resumed run tells a row edited since it was checked."""
    relative = _relative_paths(Path(path).parent)
    return {row.study_id: hashlib.sha256(json.dumps(_record(row, relative), sort_keys=True,
                                                    ensure_ascii=False).encode("utf-8")).hexdigest()
            for row in rows}


def _record(row: ManifestRow, relative: Callable[[Path], str]) -> dict:
    clash = sorted(set(row.extra) & set(COLUMNS))
    if clash:
        raise ManifestError(f"study {row.study_id}: extra column(s) {', '.join(clash)} clash with the manifest's own")
    paraphrases = [p.to_json() for p in row.paraphrases] if row.paraphrases else None
    return {"image": relative(row.image), "question": row.question, "label": row.label,
            "paraphrases": paraphrases, "study_id": row.study_id,
            "mask": relative(row.mask) if row.mask else None, "frame": row.frame, **row.extra}


def _write_jsonl(handle, rows: Sequence[ManifestRow], relative: Callable[[Path], str]) -> None:
    for row in rows:
        record = {k: v for k, v in _record(row, relative).items() if v is not None}
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_csv(handle, rows: Sequence[ManifestRow], relative: Callable[[Path], str]) -> None:
    given = {"mask": any(row.mask for row in rows), "frame": any(row.frame for row in rows)}
    own = [c for c in COLUMNS if given.get(c, True)]  # mask and frame only where given
    columns = list(dict.fromkeys([*own, *(key for row in rows for key in row.extra)]))
    writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = _record(row, relative)
        if record["paraphrases"] is not None:
            record["paraphrases"] = json.dumps(record["paraphrases"], ensure_ascii=False)
        writer.writerow({k: "" if record.get(k) is None else record[k] for k in columns})
