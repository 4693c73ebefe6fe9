"""`quadrant export ...`: the export stage's commands."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="merge a LoRA adapter into its base model")
    steps = parser.add_subparsers(dest="step", required=True)
    merge = steps.add_parser("merge", help="fold a LoRA adapter into the base weights (parity 1e-4)")
    merge.add_argument("--model", default="demo-shortcut", help="preset, model directory or hub id")
    merge.add_argument("--adapter", help="LoRA adapter directory (default: the preset's)")
    merge.add_argument("--out", required=True, help="new folder for the merged model")
    merge.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from quadrant.export.merge import merge

    print(json.dumps(merge(args.model, args.adapter, args.out), indent=2))
    return 0
