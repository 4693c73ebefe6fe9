"""`quadrant evaluate`: a whole manifest, resumable, with summary, plots, a report and CI gates."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engines import ENGINES
from .options import add_model_options, spec_and_options


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="CSV or JSONL: image, question[, label, paraphrases, study_id]")
    parser.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    parser.add_argument("--batch-size", type=int, default=8, help="studies scored together (default 8)")
    parser.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                        help="e.g. 'dangerous>0.2' or 'accuracy<90%%' (>, <, >=, <=; ideal, fragile, dangerous, "
                             "worst, flip_rate, accuracy, text_only_agreement), repeatable: exit 1 after writing "
                             "everything if one holds")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    results = parser.add_argument_group("results filed in each DICOM row's study, one per study image with all its "
                                        "questions (pip install 'quadrant[hospital]')")
    results.add_argument("--sr-dir", metavar="DIR", help="write a DICOM structured report per study here")
    results.add_argument("--sc-dir", metavar="DIR", help="write a DICOM secondary capture per study here")
    results.add_argument("--fhir-dir", metavar="DIR", help="write a FHIR R5 Bundle per study here")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", default="local", choices=list(ENGINES),
                        help="local: this process (default); ray: Ray workers, one model each "
                        "(pip install 'quadrant[ray]')")
    engine.add_argument("--workers", type=int, help="ray: workers to start (default: one per GPU, else 1)")
    engine.add_argument("--address", help="ray: join the Ray cluster at this address (default: start a local Ray)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engines import Settings, make_engine
    from ..errors import OptionError
    from ..evaluate import FailRule, evaluate
    from ..loading import resolve_source
    from ..manifest import read_manifest

    rules = [FailRule.parse(text) for text in args.fail_if]
    rows = read_manifest(args.manifest)  # a bad manifest fails before the model loads
    folders = _result_folders(args)
    if args.engine != "ray" and (args.workers is not None or args.address):
        raise OptionError("--workers and --address are options of --engine ray")
    spec, options = spec_and_options(args)
    resolve_source(spec)  # a model that is not there fails before the output folder is touched
    engine_options = {"workers": args.workers, "address": args.address} if args.engine == "ray" else {}
    engine = make_engine(args.engine, Settings(spec, options), **engine_options)
    from ..progress import progress_bar

    with progress_bar("checking", unit="rows", enabled=False if args.quiet else None) as progress:
        summary = evaluate(engine, args.manifest, args.out, batch_size=args.batch_size, progress=progress)
    _print_summary(summary, args.out)
    if folders:
        from ..evaluate import SAMPLES
        from ..results.dataset import write_dataset_results

        written = write_dataset_results(rows, Path(args.out) / SAMPLES, folders)
        print(f"results: {written.studies} DICOM studies written, {written.kept} already there, "
              f"{written.not_dicom} rows not DICOM (no UIDs to file a result under)", file=sys.stderr)
    for reason in filter(None, (rule.not_judged(summary) for rule in rules)):
        print(f"quadrant evaluate: {reason}", file=sys.stderr)
    held = [rule for rule in rules if rule.holds(summary)]
    for rule in held:
        print(f"quadrant evaluate: fail-if rule holds: {rule}", file=sys.stderr)
    return 1 if held else 0


def _print_summary(summary: dict, out: str) -> None:
    shown = {k: summary[k] for k in ("n", "flip_rate", "fractions", "accuracy", "text_only_agreement")}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}/samples.jsonl, summary.json, report.md and plots", file=sys.stderr)


def _result_folders(args: argparse.Namespace) -> dict:
    """The result folders asked for (made now, before the model loads), with the extra they need."""
    from ..errors import OptionError
    from ..results import require_formats

    asked = {kind: path for kind, path in (("sr", args.sr_dir), ("sc", args.sc_dir), ("fhir", args.fhir_dir)) if path}
    require_formats(**{kind: True for kind in asked})
    folders = {}
    for kind, path in asked.items():
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OptionError(f"--{kind}-dir {path}: cannot be made ({exc.strerror or exc})") from exc
        folders[kind] = Path(path)
    return folders
