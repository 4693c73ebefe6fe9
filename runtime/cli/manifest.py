"""`quadrant manifest mimic-cxr|padchest`: a manifest for `quadrant evaluate` from a dataset as distributed,
and a summary of what went in (rows per finding, yes/no balance) and what was left out, and why."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    datasets = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    mimic = datasets.add_parser("mimic-cxr", help="MIMIC-CXR-JPG: one row per study and finding labelled 1.0 or 0.0")
    _common(mimic)
    mimic.add_argument("--views", default="PA,AP", help="ViewPositions an image may have, comma-separated "
                       "(default PA,AP); each study's first such image by dicom_id is used")
    mimic.add_argument("--split", metavar="FILE", help="the split file (default: mimic-cxr-2.0.0-split.csv.gz "
                       "at --root, when --split-name is given)")
    mimic.add_argument("--split-name", metavar="NAME", help="keep only this split: train, validate or test")
    mimic.set_defaults(run=run_mimic)

    padchest = datasets.add_parser("padchest", help="PadChest: one row per image and finding")
    _common(padchest)
    padchest.add_argument("--projections", default="PA,AP", help="Projection values to keep, comma-separated, "
                          "compared as written (default PA,AP; AP_horizontal is its own value)")
    padchest.add_argument("--physician-only", action="store_true",
                          help="keep only images whose labels a physician assigned (MethodLabel Physician)")
    padchest.set_defaults(run=run_padchest)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="the dataset's folder, as downloaded")
    parser.add_argument("--out", required=True,
                        help="the manifest to write: .csv or .jsonl (image paths are written relative to it)")
    parser.add_argument("--findings", metavar="LIST", help="paraphrase-bank finding names, comma-separated "
                        "(default: every finding the dataset and the bank share)")
    parser.add_argument("--skip-missing-images", action="store_true",
                        help="leave out rows whose image file is not under --root (a partial download)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_mimic(args: argparse.Namespace) -> int:
    from ..datasets import mimic
    from ..datasets.common import parse_values
    from ..manifest import manifest_format

    manifest_format(args.out)  # a bad output name fails before a large dataset is read
    result = mimic.build(args.root, findings=args.findings, views=parse_values(args.views, "--views"),
                         split=args.split, split_name=args.split_name,
                         skip_missing_images=args.skip_missing_images, progress=False if args.quiet else None)
    return _write(args, result)


def run_padchest(args: argparse.Namespace) -> int:
    from ..datasets import padchest
    from ..datasets.common import parse_values
    from ..manifest import manifest_format

    manifest_format(args.out)
    result = padchest.build(args.root, findings=args.findings,
                            projections=parse_values(args.projections, "--projections"),
                            physician_only=args.physician_only, skip_missing_images=args.skip_missing_images,
                            progress=False if args.quiet else None)
    return _write(args, result)


def _write(args: argparse.Namespace, result) -> int:
    from ..manifest import manifest_format, write_manifest

    path = write_manifest(args.out, result.rows)
    print(f"wrote {len(result.rows)} rows to {path} ({manifest_format(path).upper()})")
    print(_summary(result))
    if result.missing_images:
        print(f"warning: {result.missing_images} image file(s) the rows point at are not under {args.root}: "
              "evaluate will list their rows in errors.jsonl; --skip-missing-images leaves them out")
    return 0


def _summary(result) -> str:
    """Rows per finding with the yes/no balance, then what was skipped and why."""
    counts = result.per_finding()
    width = max(len("finding"), *(len(f) for f in counts))
    lines = [f"{'finding':<{width}}  {'rows':>7}  {'yes':>7}  {'no':>7}  {'yes %':>6}"]
    total = {key: sum(c[key] for c in counts.values()) for key in ("rows", "yes", "no")}
    for finding, c in [*counts.items(), ("total", total)]:
        share = f"{100 * c['yes'] / c['rows']:.1f}" if c["rows"] else "-"
        lines.append(f"{finding:<{width}}  {c['rows']:>7}  {c['yes']:>7}  {c['no']:>7}  {share:>6}")
    lines.append("skipped:" if result.skipped else "skipped: nothing")
    lines += [f"  {reason}: {n}" for reason, n in sorted(result.skipped.items())]
    return "\n".join(lines)
