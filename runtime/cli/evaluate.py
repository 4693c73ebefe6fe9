"""`quadrant evaluate`: a whole manifest, resumable, with summary, plots, a report and CI gates."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_model_options, build_checker


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="check every row of a manifest; resumable")
    parser.add_argument("--manifest", required=True, help="CSV or JSONL: image, question[, label, paraphrases, study_id]")
    parser.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    parser.add_argument("--batch-size", type=int, default=8, help="studies scored together (default 8)")
    parser.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                        help="e.g. 'dangerous>0.2': exit 1 after writing everything if it holds")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import FailRule, evaluate
    from ..manifest import read_manifest

    rules = [FailRule.parse(text) for text in args.fail_if]
    read_manifest(args.manifest)  # a bad manifest fails before the model loads
    checker = build_checker(args)
    if args.quiet:
        summary = evaluate(checker, args.manifest, args.out, batch_size=args.batch_size)
    else:
        summary = _evaluate_with_progress(checker, args)
    _print_summary(summary, args.out)
    held = [rule for rule in rules if rule.holds(summary)]
    for rule in held:
        print(f"quadrant evaluate: fail-if rule holds: {rule}", file=sys.stderr)
    return 1 if held else 0


def _evaluate_with_progress(checker, args) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..evaluate import evaluate

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("checking", total=None)
        return evaluate(checker, args.manifest, args.out, batch_size=args.batch_size,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))


def _print_summary(summary: dict, out: str) -> None:
    shown = {k: summary[k] for k in ("n", "flip_rate", "fractions", "accuracy", "text_only_agreement")}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}/samples.jsonl, summary.json, report.md and plots", file=sys.stderr)
