"""PadChest as distributed (BIMCV): a manifest of one row per image and finding.

Reads `PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv` (or `.csv.gz`) at the dataset's root; images
are at `{root}/{ImageDir}/{ImageID}`, 16-bit grayscale PNGs that `quadrant.images` windows to their own
value range (never truncated to 8 bits).

Rules, in this order (an image is counted under the first rule that drops it):
1. its Projection equals one of `projections`, compared as written ("AP_horizontal" is its own value);
2. with `physician_only`, its MethodLabel is "Physician" (not a label the report-reading model assigned);
3. its Labels cell reads as a Python list of strings (`ast.literal_eval`, never `eval`), and 'exclude' is
   not among them.
Each kept image gives one row per finding: yes when one of the finding's PadChest labels (findings.json;
names trimmed, case-insensitive) is in the image's list, no otherwise ('normal' included).

Identifiers: the row's study_id is "{ImageID without .png}-{finding}". PatientID and PatientBirth are
patient identifiers and are never read into a row; the image path is the dataset's own folder and file
name, which carry neither.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePath

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

NAME = "padchest"
LABELS_FILE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
DEFAULT_PROJECTIONS = ("PA", "AP")
PHYSICIAN = "Physician"
EXCLUDE = "exclude"


def build(root: str | Path, *, findings: str | None = None,
          projections: tuple[str, ...] = DEFAULT_PROJECTIONS, physician_only: bool = False,
          skip_missing_images: bool = False, progress: bool | None = None) -> BuildResult:
    """The manifest rows for `root` under the rules above."""
    root = Path(root).resolve()
    table = label_table(NAME)
    chosen = resolve_findings(NAME, findings, table)
    names = {finding: {label.strip().lower() for label in table[finding]} for finding in chosen}
    path = find_file(root, [LABELS_FILE, LABELS_FILE + ".gz"], "the PadChest label file")
    required = ["ImageID", "ImageDir", "Projection", "Labels"] + (["MethodLabel"] if physician_only else [])
    result = BuildResult(rows=[], findings=chosen)
    seen: set[str] = set()
    for _, record in read_csv(path, required, progress=progress):
        image_id, image_dir = record["ImageID"].strip(), record["ImageDir"].strip()
        reason = _skip_reason(record, image_id, image_dir, seen, projections, physician_only)
        labels = None if reason else _labels(record["Labels"])
        if reason is None and labels is None:
            reason = "images whose Labels is not a list"
        elif reason is None and EXCLUDE in labels:
            reason = f"images labelled '{EXCLUDE}'"
        if reason:
            result.skipped[reason] += 1
            continue
        seen.add(image_id)
        for finding, wanted in names.items():
            result.rows.append(ManifestRow(
                image=root / image_dir / image_id, question=question_for(finding),
                study_id=row_id(PurePath(image_id).stem, finding), label="yes" if wanted & labels else "no",
                extra=extra_columns(finding, record["Projection"].strip()),
            ))
    if not result.rows:
        raise no_rows(path, result, "")
    return check_images(result, drop_missing=skip_missing_images, progress=progress)


def _skip_reason(record: dict, image_id: str, image_dir: str, seen: set[str], projections: tuple[str, ...],
                 physician_only: bool) -> str | None:
    """Why an image is left out before its labels are read, or None."""
    if not image_id or not image_dir or PurePath(image_id).name != image_id:
        return "rows without a usable ImageID or ImageDir"
    if image_id in seen:
        return "duplicate ImageID rows"
    if record["Projection"].strip() not in projections:
        return f"images whose Projection is not {' or '.join(projections)}"
    if physician_only and record["MethodLabel"].strip() != PHYSICIAN:
        return "images not labelled by a physician (--physician-only)"
    return None


def _labels(cell: str | None) -> set[str] | None:
    """The Labels cell ("['pleural effusion', ' cardiomegaly']") as trimmed lowercase names, or None when it
    is not a list of strings. literal_eval reads Python literals only: no code in a cell ever runs."""
    try:
        value = ast.literal_eval((cell or "").strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        return None
    return {item.strip().lower() for item in value if item.strip()}
