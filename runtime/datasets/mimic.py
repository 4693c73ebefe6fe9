"""MIMIC-CXR-JPG as distributed (PhysioNet, credentialed): a manifest of one row per study and finding.

Reads, at the dataset's root:

    mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, and the 14 CheXpert label columns
                                      (1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned)
    mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ViewPosition, ...
    files/p{first two digits of subject_id}/p{subject_id}/s{study_id}/{dicom_id}.jpg
    mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split (only with --split-name)

Rules: a row per study and finding whose label is 1.0 (yes) or 0.0 (no); -1.0 and blank are skipped. The
study's image is its first by dicom_id whose ViewPosition is one of `views`; a study without one is skipped.

Identifiers: the row's study_id is "s{study_id}-{finding}". subject_id is a patient identifier and is
never copied into a column; it appears only inside the `image` path, because that path is the dataset's own
layout on the user's own disk (a manifest must point at the file, and the folder already names the patient
to anyone who holds both). Nothing new is disclosed, and no column or verdict carries it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import ManifestError
from ..manifest import ManifestRow
from .common import (
    BuildResult,
    check_images,
    extra_columns,
    find_file,
    label_table,
    no_rows,
    question_for,
    read_csv,
    resolve_findings,
    row_id,
)

NAME = "mimic-cxr"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv.gz"
METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
DEFAULT_VIEWS = ("PA", "AP")
_LABELS = {1.0: "yes", 0.0: "no"}
_SKIPPED = {None: "labels blank (not mentioned)", -1.0: "labels -1.0 (uncertain)"}


def build(root: str | Path, *, findings: str | None = None, views: tuple[str, ...] = DEFAULT_VIEWS,
          split: str | Path | None = None, split_name: str | None = None, skip_missing_images: bool = False,
          progress: bool | None = None) -> BuildResult:
    """The manifest rows for `root` under the rules above; `split_name` keeps one split of the split file
    (`split` defaults to the one at the root)."""
    root = Path(root).resolve()
    table = label_table(NAME)
    chosen = resolve_findings(NAME, findings, table)
    columns = {finding: table[finding] for finding in chosen}
    chexpert = find_file(root, [CHEXPERT], "the CheXpert label file")
    metadata = find_file(root, [METADATA], "the metadata file")
    in_split = None
    if split_name is not None:
        split_path = Path(split) if split is not None else find_file(root, [SPLIT], "the split file")
        in_split = _split_images(split_path, split_name, progress)
    elif split is not None:
        raise ManifestError("--split needs --split-name (train, validate or test)")

    images, view_counts = _first_images(metadata, views, in_split, progress)
    result = BuildResult(rows=[], findings=chosen)
    what = f"in split {split_name!r} with" if in_split is not None else "with"
    seen: set[str] = set()
    for number, record in read_csv(chexpert, ["study_id", *columns.values()], progress=progress):
        study = record["study_id"].strip()
        if study in seen:
            result.skipped["duplicate study rows in the label file"] += 1
            continue
        seen.add(study)
        if study not in images:
            result.skipped[f"studies {what} no {'/'.join(views)} image"] += 1
            continue
        dicom_id, subject, view = images[study]
        image = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg"
        for finding, column in columns.items():
            value = _label(chexpert, number, column, record[column])
            if value in _LABELS:
                result.rows.append(ManifestRow(
                    image=image, question=question_for(finding), study_id=row_id(f"s{study}", finding),
                    label=_LABELS[value], extra=extra_columns(finding, view),
                ))
            else:
                result.skipped[_SKIPPED[value]] += 1
    if not result.rows:
        seen_views = ", ".join(f"{v or '(blank)'} {n}" for v, n in view_counts.most_common(8))
        raise no_rows(chexpert, result, f"; ViewPosition values in {METADATA}: {seen_views or 'none'}")
    return check_images(result, drop_missing=skip_missing_images, progress=progress)


def _label(path: Path, number: int, column: str, text: str | None) -> float | None:
    """A CheXpert cell: 1.0, 0.0 or -1.0, or None for blank; anything else names the file, line and column."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value not in (1.0, 0.0, -1.0):
        raise ManifestError(f"{path.name}, line {number}: {column} is {text!r}; expected 1.0, 0.0, -1.0 or blank")
    return value


def _split_images(path: Path, name: str, progress: bool | None) -> set[str]:
    """The dicom_ids of one split; an unknown split name lists the ones the file has."""
    images, names = set(), Counter()
    for _, record in read_csv(path, ["dicom_id", "split"], progress=progress):
        split = record["split"].strip()
        names[split] += 1
        if split == name:
            images.add(record["dicom_id"].strip())
    if not images:
        raise ManifestError(f"{path.name} has no images in split {name!r}; its splits: "
                            f"{', '.join(sorted(names)) or 'none'}")
    return images


def _first_images(path: Path, views: tuple[str, ...], in_split: set[str] | None,
                  progress: bool | None) -> tuple[dict[str, tuple[str, str, str]], Counter]:
    """study_id -> (dicom_id, subject_id, view) of its first image by dicom_id among `views` (and the split),
    and how many images each ViewPosition had (for the message when nothing matched)."""
    first: dict[str, tuple[str, str, str]] = {}
    view_counts: Counter = Counter()
    for _, record in read_csv(path, ["dicom_id", "subject_id", "study_id", "ViewPosition"], progress=progress):
        view = record["ViewPosition"].strip()
        view_counts[view] += 1
        dicom_id = record["dicom_id"].strip()
        if view not in views or (in_split is not None and dicom_id not in in_split):
            continue
        study = record["study_id"].strip()
        if study not in first or dicom_id < first[study][0]:
            first[study] = (dicom_id, record["subject_id"].strip(), view)
    return first, view_counts
