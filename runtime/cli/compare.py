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


def _reference(summary: dict) -> str:
    """What the run compared each study with: the flip rule's pass without the image, or the content rule's
    reference (`blank`, `opposite`, ...); a run from before references were recorded shows "-"."""
    from ..vocabulary import is_control

    rule = summary.get("reliance") or {}
    if rule.get("rule") == "flip":
        return "no image (flip rule)"
    return rule.get("reference", "-") + (" (control)" if is_control(rule) else "")


def _correct_negatives(summary: dict) -> str:
    """The Dangerous share among correct 'no' answers: where a content-free reference cannot tell a model that
    looked and saw nothing from one that did not look (n/a without labels)."""
    group = ((summary.get("by_label") or {}).get("no") or {}).get("correct")
    return "n/a" if not group else f"{_pct(group['fractions']['Dangerous'])} of {group['n']}"


def run(args: argparse.Namespace) -> int:
    from ..compare import compare

    result = compare(args.dirs)
    if args.json:
        print(json.dumps(result))
        return 0
    header = ("| configuration | model | compared with | n | accuracy | flip rate | Ideal | Fragile | Dangerous | Worst "
              "| Dangerous among correct 'no' | Dangerous (flip rule) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for row in result["rows"]:
        s = row["summary"]
        f = s["fractions"]
        print(f"| {row['config']} | {row['model']} | {_reference(s)} | {s['n']} | {_pct(s['accuracy'])} "
              f"| {_pct(s['flip_rate'])} | {_pct(f['Ideal'])} | {_pct(f['Fragile'])} | {_pct(f['Dangerous'])} "
              f"| {_pct(f['Worst'])} | {_correct_negatives(s)} | {_pct(s['fractions_flip_rule']['Dangerous'])} |")
    from ..vocabulary import dataset_note

    notes = dict.fromkeys(dataset_note(row["summary"].get("reliance") or {}) for row in result["rows"])
    for note in filter(None, notes):
        print(f"\n{note}")
    if result["same_studies"] is False:
        sizes = ", ".join(str(row["summary"]["n"]) for row in result["rows"])
        print(f"\nThese runs did not answer the same questions about the same studies (n = {sizes}): a run cut "
              "short, or another manifest. The rows and r compare different data, not only configurations.")
    c = result["flip_vs_dangerous"]
    r = "n/a" if c["r"] is None else f"{c['r']:+.3f}"
    ci = "" if c["ci95"] is None else f", 95% CI {c['ci95'][0]:+.2f} to {c['ci95'][1]:+.2f}"
    print(f"\nPearson r (flip rate vs Dangerous fraction) = {r} over n = {c['n']} configurations{ci}")
    return 0
