"""`quadrant check`: one study, one question, one verdict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..images import load_study
from ..outputs import check_outputs
from ..paraphrases import paraphrase_plan, parse_paraphrase_text, read_paraphrase_file, validate_question
from .options import add_model_options, build_checker, single_study


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="PNG, JPEG or DICOM study")
    parser.add_argument("--frame", type=int, metavar="N",
                        help="the frame to check in a multi-frame study, counted from 1 (recorded in the verdict)")
    parser.add_argument("--question", required=True, help='a yes/no question, e.g. "Is there a pleural effusion?"')
    parser.add_argument("--paraphrase", action="append", default=[], metavar="TEXT",
                        help="a paraphrase (repeat for several); prefix with '!' to mark it inverted")
    parser.add_argument("--paraphrases", metavar="FILE", help="JSON list or one paraphrase a line")
    parser.add_argument("--label", choices=("yes", "no"), help="the true answer, if known")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object, the verdict")
    parser.add_argument("--evidence-png", metavar="FILE",
                        help="write the study with its evidence map overlaid (implies --evidence)")
    results = parser.add_argument_group("results filed in the study (DICOM studies only; pip install "
                                        "'quadrant[hospital]')")
    results.add_argument("--sr", metavar="FILE", help="write a DICOM structured report of the verdict")
    results.add_argument("--sc", metavar="FILE",
                         help="write a DICOM secondary capture: the study, the verdict card, the evidence map")
    results.add_argument("--fhir", metavar="FILE", help="write the verdict as a FHIR R5 transaction Bundle (JSON)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    validate_question(args.question)  # bad input fails before the model loads
    single_study(args)
    study = load_study(args.image, frame=args.frame)
    paraphrases = parse_paraphrase_text("\n".join(args.paraphrase))
    if args.paraphrases:
        paraphrases += read_paraphrase_file(args.paraphrases)
    _check_before_loading(args, study, paraphrases)
    args.evidence = args.evidence or bool(args.evidence_png)
    check_outputs({"--evidence-png": args.evidence_png, "--sr": args.sr, "--sc": args.sc, "--fhir": args.fhir},
                  reads={"--image": args.image, "--paraphrases": args.paraphrases,
                         "--paraphrase-bank": args.paraphrase_bank, "--chat-template": args.chat_template})
    source = _result_source(args)
    checker = build_checker(args)
    verdict = checker.check(study, args.question, paraphrases or None, label=args.label)
    overlay = None
    if args.evidence_png:
        from ..evidence_plot import verdict_overlay_png

        overlay = verdict_overlay_png(verdict, study.image)
        Path(args.evidence_png).write_bytes(overlay)
    if source is not None:
        from ..results import build_results

        results = build_results(source, [verdict], study.image, sr=bool(args.sr), sc=bool(args.sc),
                                fhir=bool(args.fhir), overlays=None if overlay is None else [overlay])
        results.save(sr=args.sr, sc=args.sc, fhir=args.fhir)
    if args.json:
        json.dump(verdict.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        from .report import print_verdict

        print_verdict(verdict)
    return 0


def _check_before_loading(args: argparse.Namespace, study, paraphrases) -> None:
    """What the checker would refuse (a study out of scope, a question in another language, too few or
    repeated paraphrases, a bad K), refused now, in a second, rather than after the model has loaded."""
    from ..bank import load_bank
    from ..scope import check_scope_options, require_scope

    scope, modalities = check_scope_options(args.scope, args.modalities)
    require_scope(study, scope, modalities)
    paraphrase_plan(args.question, k=args.k, user=paraphrases or None, bank=load_bank(args.paraphrase_bank))


def _result_source(args: argparse.Namespace):
    """The study's header when a result is asked for, checked before the model loads: a PNG or JPEG has no
    UIDs to file a result under, and the `hospital` extra must be installed."""
    asked = [option for option, path in (("--sr", args.sr), ("--sc", args.sc), ("--fhir", args.fhir)) if path]
    if not asked:
        return None
    from ..results import read_source, require_formats

    require_formats(sr=bool(args.sr), sc=bool(args.sc), fhir=bool(args.fhir))
    return read_source(args.image, "/".join(asked))
