"""What the dataset builders share: the label table, finding and list options, reading the distributed CSVs
(plain or gzip) with their columns checked, the rows' questions and ids, and the image-file check.

Every problem with the user's dataset files is a ManifestError naming the file and, where there is one, the
column or line: the command line turns it into one line and exit 2.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ManifestError, OptionError
from ..manifest import ManifestRow
from ..paraphrases import FINDING_QUESTIONS, FINDINGS, find_finding
from ..progress import progress_bar, reading

TABLE = "findings.json"


@dataclass
class BuildResult:
    """A builder's rows, and what it left out and why (reason -> count; each reason names its unit)."""

    rows: list[ManifestRow]
    findings: list[str]
    skipped: Counter = field(default_factory=Counter)
    missing_images: int = 0  # distinct image files the rows point at that are not there (kept unless asked)

    def per_finding(self) -> dict[str, dict[str, int]]:
        """finding -> {"rows", "yes", "no"}, in the order the findings were asked for."""
        counts = {f: {"rows": 0, "yes": 0, "no": 0} for f in self.findings}
        for row in self.rows:
            entry = counts[row.extra["finding"]]
            entry["rows"] += 1
            entry[row.label] += 1
        return counts


def label_table(dataset: str) -> dict:
    """The dataset's section of findings.json: bank finding -> its label(s) in that dataset."""
    text = resources.files(__package__).joinpath(TABLE).read_text(encoding="utf-8")
    return json.loads(text)[dataset]


def resolve_findings(dataset: str, text: str | None, table: dict) -> list[str]:
    """`--findings` as bank names, comma-separated, any case; default: every finding the table maps."""
    if text is None:
        return [f for f in table if f in FINDINGS]
    names = list(dict.fromkeys(" ".join(part.lower().split()) for part in text.split(",") if part.strip()))
    if not names:
        raise OptionError("--findings is empty: give bank finding names, comma-separated")
    for name in names:
        if name not in FINDINGS:
            guess = find_finding(name) or next(iter(difflib.get_close_matches(name, FINDINGS, n=1)), None)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise OptionError(f"--findings: {name!r} is not a finding of the paraphrase bank{hint} "
                              f"({dataset} has: {', '.join(table)})")
        if name not in table:
            raise OptionError(f"--findings: {dataset} has no label for {name!r}; it has: {', '.join(table)}")
    return names


def parse_values(text: str, option: str) -> tuple[str, ...]:
    """A comma-separated option (`--views PA,AP`), each value trimmed and kept exactly as written."""
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not values:
        raise OptionError(f"{option} is empty")
    return values


def question_for(finding: str) -> str:
    """The bank's plain question for the finding: the same prompt 0 a user gets when picking it in the app."""
    return FINDING_QUESTIONS[finding]


def row_id(dataset_id: str, finding: str) -> str:
    """A study_id unique per row: the dataset's own study or image id, and the finding, joined as the phantoms'
    ids are ("s50414267-pleural-effusion"), so that it is also a safe file name."""
    return f"{dataset_id}-{finding.replace(' ', '-')}"


_EXTRAS: dict[tuple[str, str], dict[str, str]] = {}


def extra_columns(finding: str, view: str) -> dict[str, str]:
    """A row's extra manifest columns. One dict per (finding, view), shared by every row that has them
    (read-only): a dataset has millions of rows and a handful of these."""
    return _EXTRAS.setdefault((finding, view), {"finding": finding, "view": view})


def find_file(root: Path, names: Sequence[str], what: str) -> Path:
    """The first of `names` present in `root`, else a ManifestError naming what was looked for."""
    if not root.is_dir():
        raise ManifestError(f"--root {root}: not a folder")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise ManifestError(f"{what} not found: no {' or '.join(names)} in {root}")


def read_csv(path: Path, required: Sequence[str], *, progress: bool | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV as distributed, gzip when the name ends in .gz; the header must hold every
    `required` column. A bar shows the bytes read on a terminal."""
    if not path.is_file():
        raise ManifestError(f"{path} not found")
    with reading(path, f"reading {path.name}", enabled=progress) as raw:
        try:
            binary = gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise ManifestError(f"{path.name} lacks the column(s) {', '.join(missing)}")
            for row in reader:
                yield reader.line_num, row
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            # gzip.BadGzipFile is an OSError; a truncated download ends in EOFError
            raise ManifestError(f"{path.name} cannot be read as a CSV{' (gzip)' if path.name.endswith('.gz') else ''}"
                                f": {exc}") from exc


def check_images(result: BuildResult, *, drop_missing: bool, progress: bool | None = None) -> BuildResult:
    """Count the rows' image files that are not there (a partial download); drop their rows when asked."""
    exists: dict[Path, bool] = {}
    with progress_bar("checking images", total=len(result.rows), unit="rows", enabled=progress) as update:
        for done, row in enumerate(result.rows, 1):
            if row.image not in exists:
                exists[row.image] = row.image.is_file()
            if done % 1000 == 0 or done == len(result.rows):
                update(done)
    missing = sum(not present for present in exists.values())
    if drop_missing and missing:
        result.rows = [row for row in result.rows if exists[row.image]]
        result.skipped["images not found under --root (--skip-missing-images)"] = missing
    else:
        result.missing_images = missing
    return result


def no_rows(path: Path, result: BuildResult, hint: str) -> ManifestError:
    """The error for a build that kept nothing, with what was left out and why."""
    reasons = "; ".join(f"{reason}: {n}" for reason, n in result.skipped.most_common()) or "nothing skipped"
    return ManifestError(f"no rows to write from {path.name} ({reasons}){hint}")
