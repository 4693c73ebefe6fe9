"""What a person reads after `quadrant evaluate`: plots and a short Markdown report beside summary.json."""

from __future__ import annotations

from pathlib import Path

from .metrics import relative_content_shifts
from .vocabulary import QUADRANTS

_COLOURS = {"Ideal": "#2e7d32", "Fragile": "#f9a825", "Dangerous": "#c62828", "Worst": "#6a1b9a"}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_report(out_dir: Path, summary: dict, samples: list[dict]) -> None:
    if samples:
        _plot_quadrants(out_dir / "quadrants.png", summary)
        _plot_shifts(out_dir / "margin_shift.png", samples)
    (out_dir / "report.md").write_text(render_markdown(summary), encoding="utf-8")


def render_markdown(summary: dict) -> str:
    rule = summary.get("reliance") or {}
    lines = [
        "# Quadrant evaluation",
        "",
        f"{summary['n']} samples; reliance rule `{rule.get('rule')}` (threshold {rule.get('threshold')}); "
        f"{summary.get('n_errors', 0)} rows could not be read (errors.jsonl).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {_pct(summary['accuracy'])} |",
        f"| flip rate | {_pct(summary['flip_rate'])} |",
        f"| pairwise flip rate | {_pct(summary['pairwise_flip_rate'])} |",
        f"| text-only agreement | {_pct(summary['text_only_agreement'])} |",
        f"| entropy AUROC for Dangerous | {summary['entropy_auroc_dangerous'] if summary['entropy_auroc_dangerous'] is None else round(summary['entropy_auroc_dangerous'], 3)} |",
        "",
        "| quadrant | share (95% CI) | paper's flip rule | accuracy | mean entropy |",
        "|---|---|---|---|---|",
    ]
    for q in QUADRANTS:
        ci = summary["fractions_ci95"][q]
        ci_text = "" if ci is None else f" ({_pct(ci[0])}-{_pct(ci[1])})"
        per = summary["per_quadrant"][q]
        entropy = "n/a" if per["mean_entropy"] is None else f"{per['mean_entropy']:.3f}"
        lines.append(f"| {q} | {_pct(summary['fractions'][q])}{ci_text} | {_pct(summary['fractions_flip_rule'][q])} "
                     f"| {_pct(per['accuracy'])} | {entropy} |")
    for key, groups in summary.items():
        if key.startswith("by_"):
            lines += ["", f"## By {key[3:]}", "", "| group | n | accuracy | flip rate | Ideal | Dangerous |",
                      "|---|---|---|---|---|---|"]
            for name, g in groups.items():
                lines.append(f"| {name} | {g['n']} | {_pct(g['accuracy'])} | {_pct(g['flip_rate'])} "
                             f"| {_pct(g['fractions']['Ideal'])} | {_pct(g['fractions']['Dangerous'])} |")
    lines += _evidence_lines(summary.get("evidence"))
    lines += ["", "![quadrants](quadrants.png)", "", "![margin shift](margin_shift.png)", "",
              "Not for diagnostic use.", ""]
    return "\n".join(lines)


def _evidence_lines(evidence: dict | None) -> list[str]:
    """The evidence maps' section: how many are flat, and the pointing game beside its chance rate."""
    if not evidence:
        return []
    grid = "x".join(str(g) for g in evidence["grid"])
    lines = ["", "## Evidence maps", "",
             f"{evidence['n']} occlusion maps ({grid}, {evidence['fill']} fill); "
             f"{_pct(evidence['flat_share'])} flat (no region moves the answer); median largest |delta| "
             f"{evidence['median_max_abs_delta']:.3f}. A map shows what changes this model's answer, not where "
             "the finding is."]
    pointing = evidence["pointing"]
    if pointing["n"]:
        lines += ["", "Pointing game (the strongest cell touches the finding's mask), beside chance (the share of "
                  "cells touching it):", "", "| quadrant | n | pointing accuracy | chance |", "|---|---|---|---|",
                  f"| all | {pointing['n']} | {_pct(pointing['accuracy'])} | {_pct(pointing['chance'])} |"]
        for q in QUADRANTS:
            per = pointing["per_quadrant"][q]
            lines.append(f"| {q} | {per['n']} | {_pct(per['accuracy'])} | {_pct(per['chance'])} |")
    return lines


def _plot_quadrants(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    shares = [100 * (summary["fractions"][q] or 0) for q in QUADRANTS]
    paper = [100 * (summary["fractions_flip_rule"][q] or 0) for q in QUADRANTS]
    x = range(len(QUADRANTS))
    ax.bar([i - 0.2 for i in x], shares, 0.4, color=[_COLOURS[q] for q in QUADRANTS],
           label=f"rule {summary['reliance']['rule']}")
    ax.bar([i + 0.2 for i in x], paper, 0.4, color=[_COLOURS[q] for q in QUADRANTS], alpha=0.4,
           label="paper's flip rule")
    ax.set_xticks(list(x), QUADRANTS)
    ax.set_ylabel("% of samples")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False)
    ax.set_title(f"Quadrants (n = {summary['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_shifts(path: Path, samples: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relative = relative_content_shifts(samples)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if relative:
        ax.hist(relative, bins=30, range=(0, 2), color="#455a64")
        rule = samples[0]["reliance"]
        if rule["rule"] == "content":
            ax.axvline(rule["threshold"], color="#c62828", linestyle="--", label=f"threshold {rule['threshold']:g}")
            ax.legend(frameon=False)
    ax.set_xlabel("|m(image) - m(content-free)| / max(|m(image)|, |m(content-free)|)   (>= 1: a flip)")
    ax.set_ylabel("samples")
    ax.set_title("How far the image's content moved the answer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
