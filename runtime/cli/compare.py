"""`quadrant compare DIR ...`: one row per evaluated configuration, and the flip-rate vs Dangerous r."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders written by quadrant evaluate")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def run(args: argparse.Namespace) -> int:
    from ..compare import compare

    result = compare(args.dirs)
    if args.json:
        print(json.dumps(result))
        return 0
    header = "| configuration | model | n | accuracy | flip rate | Ideal | Fragile | Dangerous | Worst | Dangerous (flip rule) |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for row in result["rows"]:
        s = row["summary"]
        f = s["fractions"]
        print(f"| {row['config']} | {row['model']} | {s['n']} | {_pct(s['accuracy'])} | {_pct(s['flip_rate'])} "
              f"| {_pct(f['Ideal'])} | {_pct(f['Fragile'])} | {_pct(f['Dangerous'])} | {_pct(f['Worst'])} "
              f"| {_pct(s['fractions_flip_rule']['Dangerous'])} |")
    c = result["flip_vs_dangerous"]
    r = "n/a" if c["r"] is None else f"{c['r']:+.3f}"
    ci = "" if c["ci95"] is None else f", 95% CI {c['ci95'][0]:+.2f} to {c['ci95'][1]:+.2f}"
    print(f"\nPearson r (flip rate vs Dangerous fraction) = {r} over n = {c['n']} configurations{ci}")
    return 0
