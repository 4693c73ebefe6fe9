"""The verdict mix over time, read from an audit log (the app's and the node's), per model fingerprint.

Why per fingerprint: a model that drifts into answering from the text shows as a Dangerous share that grows,
and only the same weights make a series (a new fine-tune, a new adapter: a new fingerprint, a new line). Why
stop rules: a scheduler runs `quadrant monitor --fail-if dangerous>0.2 --window 200` and takes a model out of
service on exit 1, with the rules `evaluate --fail-if` takes, judged on each model's recent checks.

The audit log is opened read-only: monitoring never writes to it, never blocks a writer, and reads the
verdicts' outcomes only (no study, no user).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import OptionError
from .evaluate import FailRule
from .metrics import summarize
from .vocabulary import QUADRANTS

PERIODS = ("hour", "day", "week", "month")
#: what a summary of outcomes does not need of a verdict (as evaluate's read_outcomes leaves out)
_HEAVY = ("prompts", "text_only_all", "content_free_all", "image", "timing_ms", "evidence")


@dataclass(frozen=True)
class Check:
    time: datetime
    model: str
    fingerprint: str
    verdict: dict  # the outcome parts of the verdict JSON


def read_checks(audit: str | Path, *, window: int | None = None, since: datetime | None = None) -> list[Check]:
    """Checks in time order: all of them, those at or after `since`, or each model's latest `window`."""
    if window is not None and window < 1:
        raise OptionError(f"--window must be at least 1, got {window}")
    checks = list(_rows(Path(audit)))
    if since is not None:
        checks = [c for c in checks if c.time >= since]
    if window is not None:
        latest: dict[str, list[Check]] = {}
        for check in reversed(checks):
            kept = latest.setdefault(check.fingerprint, [])
            if len(kept) < window:
                kept.append(check)
        checks = sorted((c for kept in latest.values() for c in kept), key=lambda c: c.time)
    return checks


def mix(checks: Sequence[Check], period: str = "day") -> list[dict]:
    """Per model (first seen first): its summary (as `evaluate` writes it: fractions with 95% intervals, flip
    rate, text-only agreement) and its quadrant fractions per period."""
    if period not in PERIODS:
        raise OptionError(f"unknown period {period!r}; choose one of {', '.join(PERIODS)}")
    models: dict[str, list[Check]] = {}
    for check in checks:
        models.setdefault(check.fingerprint, []).append(check)
    report = []
    for fingerprint, own in models.items():
        periods: dict[str, list[str]] = {}
        for check in own:
            periods.setdefault(period_of(check.time, period), []).append(check.verdict["quadrant"])
        summary = summarize([c.verdict for c in own], by=None)
        report.append({
            "model": own[-1].model, "fingerprint": fingerprint, "n": len(own),
            "first": own[0].time.isoformat(), "last": own[-1].time.isoformat(),
            "summary": {k: summary[k] for k in ("n", "fractions", "fractions_ci95", "flip_rate", "accuracy",
                                                "text_only_agreement")},
            "periods": [{"period": key, "n": len(quadrants),
                         "fractions": {q: quadrants.count(q) / len(quadrants) for q in QUADRANTS}}
                        for key, quadrants in periods.items()],
        })
    return report


def judge(report: Sequence[dict], rules: Sequence[FailRule]) -> list[dict]:
    """Each rule on each model's summary: what it measured and whether it holds."""
    outcomes = []
    for model in report:
        for rule in rules:
            summary = model["summary"]
            outcomes.append({"rule": str(rule), "model": model["model"], "fingerprint": model["fingerprint"],
                             "n": model["n"], "value": rule.measured(summary), "holds": rule.holds(summary)})
    return outcomes


def period_of(moment: datetime, period: str) -> str:
    if period == "hour":
        return moment.strftime("%Y-%m-%d %H:00")
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def parse_since(text: str) -> datetime:
    """An ISO date or date and time; UTC unless it names a zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OptionError(f"--since {text!r}: expected a date such as 2026-12-01 or 2026-12-01T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _rows(path: Path) -> Iterator[Check]:
    if not path.is_file():
        raise OptionError(f"audit log {path}: no such file")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise OptionError(f"audit log {path}: cannot be opened ({exc})") from exc
    try:
        rows = connection.execute("SELECT time, model_name, model_fingerprint, verdict FROM checks ORDER BY id")
        for time, model, fingerprint, verdict in rows:
            outcome = {k: v for k, v in json.loads(verdict).items() if k not in _HEAVY}
            yield Check(datetime.fromisoformat(time), model, fingerprint, outcome)
    except sqlite3.DatabaseError as exc:
        raise OptionError(f"audit log {path}: not a Quadrant audit log ({exc})") from exc
    finally:
        connection.close()


def plot(report: Sequence[dict], path: str | Path) -> Path:
    """The verdict mix per period as stacked bars, one panel per model, each bar's n above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"Ideal": "#1b6e34", "Fragile": "#d08a1e", "Dangerous": "#b00020", "Worst": "#4b1d5e"}
    fig, axes = plt.subplots(len(report), 1, figsize=(9, 3.2 * len(report)), squeeze=False)
    for ax, model in zip(axes[:, 0], report, strict=True):
        labels = [p["period"] for p in model["periods"]]
        bottom = [0.0] * len(labels)
        for q in QUADRANTS:
            heights = [p["fractions"][q] for p in model["periods"]]
            ax.bar(labels, heights, bottom=bottom, color=colours[q], label=q, width=0.7)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for x, p in enumerate(model["periods"]):
            ax.text(x, 1.01, f"n={p['n']}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("share of checks")
        ax.set_title(f"{model['model']}  {model['fingerprint'][:23]}...  ({model['n']} checks)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
