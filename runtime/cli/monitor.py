"""`quadrant monitor`: the verdict mix over time per model, from an audit log; exit 1 when a stop rule holds."""

from __future__ import annotations

import argparse
import json
import sys


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("The verdict mix over time per model fingerprint, read from the audit log of "
                          "`quadrant app` or `quadrant node`. Exit 1 when a --fail-if rule holds for any model.")
    parser.add_argument("--audit", required=True, metavar="FILE", help="the SQLite audit log")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    parser.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                        help="e.g. 'dangerous>0.2', as evaluate takes them, judged per model: exit 1 if it holds")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--window", type=int, metavar="N", help="each model's latest N checks only")
    scope.add_argument("--since", metavar="DATE", help="checks at or after DATE (ISO, UTC unless it says)")
    parser.add_argument("--period", default="day", choices=("hour", "day", "week", "month"),
                        help="the rows of the mix over time (default: day)")
    parser.add_argument("--plot", metavar="FILE", help="also draw the mix over time as a PNG")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import OptionError
    from ..evaluate import FailRule
    from ..monitor import judge, mix, parse_since, plot, read_checks
    from ..outputs import check_outputs

    rules = [FailRule.parse(text) for text in args.fail_if]
    for rule in rules:
        if rule.name == "accuracy":
            raise OptionError(f"--fail-if {rule}: an audit log holds no labels, so it has no accuracy to judge; "
                              "measure accuracy with quadrant evaluate on a labelled manifest")
    since = parse_since(args.since) if args.since else None
    check_outputs({"--plot": args.plot}, reads={"--audit": args.audit})
    checks = read_checks(args.audit, window=args.window, since=since)
    report = mix(checks, args.period)
    outcomes = judge(report, rules)
    if args.plot and report:
        plot(report, args.plot)
    if args.json:
        json.dump({"audit": args.audit, "window": args.window, "since": since.isoformat() if since else None,
                   "period": args.period, "models": report, "rules": outcomes}, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_table(report, args)
    held = [o for o in outcomes if o["holds"]]
    for o in held:
        print(f"quadrant monitor: fail-if rule holds: {o['rule']} for {o['model']} ({o['fingerprint'][:23]}...): "
              f"{o['value']:.3f} over {o['n']} checks", file=sys.stderr)
    return 1 if held else 0


def _print_table(report: list[dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..vocabulary import QUADRANTS

    console = Console()
    scope = (f"latest {args.window} checks per model" if args.window else
             f"checks since {args.since}" if args.since else "all checks")
    if not report:
        console.print(f"No checks in {args.audit} ({scope}).")
        return
    for model in report:
        console.print(f"[bold]{model['model']}[/bold]  {model['fingerprint']}  {model['n']} checks, {scope}, "
                      f"{model['first'][:16]} to {model['last'][:16]}")
        table = Table(show_edge=False, pad_edge=False)
        for column in (args.period, "n", *QUADRANTS):
            table.add_column(column, justify="left" if column == args.period else "right")
        for p in model["periods"]:
            table.add_row(p["period"], str(p["n"]), *(f"{p['fractions'][q]:.1%}" for q in QUADRANTS))
        summary = model["summary"]
        table.add_row("[bold]all[/bold]", str(summary["n"]), *(f"{summary['fractions'][q]:.1%}" for q in QUADRANTS))
        console.print(table)
        intervals = ", ".join(f"{q} {lo:.0%}-{hi:.0%}" for q, (lo, hi) in summary["fractions_ci95"].items())
        console.print(f"95% intervals: {intervals}; flip rate {summary['flip_rate']:.1%}, text-only agreement "
                      f"{summary['text_only_agreement']:.1%}\n")
