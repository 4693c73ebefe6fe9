"""What a person reads after `quadrant evaluate`: plots and a short Markdown report beside summary.json.

Besides the quadrant shares, the report breaks them down by label and by whether prompt 0 was right, because
that is where the comparison shows what it can and cannot tell: against a content-free image a sound
reader's correct 'no' can be Dangerous; against a study of the opposite label it should not be. And it plots
prompt 0's entropy by quadrant, because Dangerous answers are often confident (the paper's point that
confidence screening does not catch them).
"""

from __future__ import annotations

from pathlib import Path

from .metrics import relative_content_shifts
from .reliance import Reliance
from .vocabulary import QUADRANTS, REFERENCES, dataset_note, reference_name

_COLOURS = {"Ideal": "#2e7d32", "Fragile": "#f9a825", "Dangerous": "#c62828", "Worst": "#6a1b9a"}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value) -> str:
    """A figure to three places, or "n/a" where the run has none (an AUROC needs both classes)."""
    return "n/a" if value is None else f"{value:.3f}"


#: the plots a report embeds, in order, and their alt text
PLOTS = {
    "quadrants.png": "quadrants",
    "quadrants_by_label.png": "quadrant by label and correctness",
    "entropy_by_quadrant.png": "entropy by quadrant",
    "margin_shift.png": "margin shift",
}


def write_report(out_dir: Path, summary: dict, samples: list[dict]) -> None:
    if samples:
        _plot_quadrants(out_dir / "quadrants.png", summary)
        _plot_entropy(out_dir / "entropy_by_quadrant.png", samples, summary)
        _plot_shifts(out_dir / "margin_shift.png", samples)
    if summary.get("by_label"):
        _plot_by_label(out_dir / "quadrants_by_label.png", summary)
    (out_dir / "report.md").write_text(render_markdown(summary), encoding="utf-8")


def _beside(summary: dict) -> str | None:
    """The content-free image a counterfactual run also judged against (an ablation name); None when it kept
    none."""
    if "fractions_content_free_reference" not in summary:
        return None
    return _content_free(summary["reliance"])


def _content_free(rule: dict) -> str:
    """The content-free image a run asked every study with (its reference, or blank beside a counterfactual)."""
    return Reliance(rule["rule"], rule["threshold"], rule.get("reference", "blank")).content_free


def render_markdown(summary: dict) -> str:
    rule = summary.get("reliance") or {}
    how = f"reliance rule `{rule.get('rule')}`"
    if rule.get("rule") == "content":
        how += f" (threshold {rule.get('threshold')}, reference `{rule.get('reference')}`)"
    beside = _beside(summary)
    compared = (f"Image reliance was judged by comparing each study with {reference_name(rule)}; the image 'did not "
                "move the answer' means only that this comparison did not move it.")
    if beside:
        compared += f" The same verdicts judged against {REFERENCES[beside]} are shown beside."
    note = dataset_note(rule)
    lines = [
        "# Quadrant evaluation",
        "",
        f"{summary['n']} samples; {how}; {summary.get('n_errors', 0)} rows could not be checked: unreadable, out "
        "of scope or a refused question (errors.jsonl).",
        "",
        compared + (f" {note}" if note else ""),
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {_pct(summary['accuracy'])} |",
        f"| flip rate | {_pct(summary['flip_rate'])} |",
        f"| pairwise flip rate | {_pct(summary['pairwise_flip_rate'])} |",
        f"| text-only agreement | {_pct(summary['text_only_agreement'])} |",
        f"| entropy AUROC for Dangerous | {_number(summary['entropy_auroc_dangerous'])} |",
        "",
        "| quadrant | share (95% CI) |" + (f" against the {beside} image |" if beside else "")
        + " paper's flip rule | accuracy | mean entropy |",
        "|---|---|---|---|---|" + ("---|" if beside else ""),
    ]
    for q in QUADRANTS:
        per = summary["per_quadrant"][q]
        entropy = _number(per["mean_entropy"])
        kept = f" {_share(summary, q, 'fractions_content_free_reference')} |" if beside else ""
        lines.append(f"| {q} | {_share(summary, q)} |{kept} {_pct(summary['fractions_flip_rule'][q])} "
                     f"| {_pct(per['accuracy'])} | {entropy} |")
    lines += _label_lines(summary.get("by_label"), beside)
    for key, groups in summary.items():
        if key.startswith("by_") and key != "by_label":
            lines += ["", f"## By {key[3:]}", "", "| group | n | accuracy | flip rate | Ideal | Dangerous |",
                      "|---|---|---|---|---|---|"]
            for name, g in groups.items():
                lines.append(f"| {name} | {g['n']} | {_pct(g['accuracy'])} | {_pct(g['flip_rate'])} "
                             f"| {_pct(g['fractions']['Ideal'])} | {_pct(g['fractions']['Dangerous'])} |")
    lines += _evidence_lines(summary.get("evidence"))
    for name, alt in PLOTS.items():
        if name != "quadrants_by_label.png" or summary.get("by_label"):
            lines += ["", f"![{alt}]({name})"]
    lines += ["", "Not for diagnostic use.", ""]
    return "\n".join(lines)


def _share(group: dict, q: str, key: str = "fractions") -> str:
    """A quadrant's share with its 95% interval."""
    ci = group[f"{key}_ci95"][q]
    return _pct(group[key][q]) + ("" if ci is None else f" ({_pct(ci[0])}-{_pct(ci[1])})")


def _label_lines(by_label: dict | None, beside: str | None) -> list[str]:
    """The quadrant shares by label and by whether prompt 0's answer was right (and, beside a counterfactual,
    the Dangerous share the content-free image would have given)."""
    if not by_label:
        return []
    extra = f" Dangerous against the {beside} image |" if beside else ""
    lines = ["", "## By label and correctness", "",
             "Prompt 0's answer against the label; a correct 'no' is where the choice of reference matters most.", "",
             "| label | answer | n | Ideal | Fragile | Dangerous (95% CI) | Worst |" + extra,
             "|---|---|---|---|---|---|---|" + ("---|" if beside else "")]
    for label, group in by_label.items():
        rows = (("all", group), ("correct", group["correct"]), ("wrong", group["wrong"]))
        for answer, g in rows:
            if not g["n"]:
                continue
            if answer == "all":
                answer = f"all (accuracy {_pct(group['accuracy'])})"
            kept = f" {_share(g, 'Dangerous', 'fractions_content_free_reference')} |" if beside else ""
            f = g["fractions"]
            lines.append(f"| {label} | {answer} | {g['n']} | {_pct(f['Ideal'])} | {_pct(f['Fragile'])} "
                         f"| {_share(g, 'Dangerous')} | {_pct(f['Worst'])} |{kept}")
    return lines


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


def _pyplot():
    """matplotlib's pyplot on the file-only backend (reports are written where no display may exist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_quadrants(path: Path, summary: dict) -> None:
    plt = _pyplot()
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
    """Prompt 0's relative shift against the content-free image, and against the other labelled study where the
    run compared with one (the rule's own figure then), with the content rule's threshold."""
    plt = _pyplot()
    rule = samples[0]["reliance"]
    series = [(f"against {_SHORT[_content_free(rule)]}", relative_content_shifts(samples), "#90a4ae")]
    other = relative_content_shifts(samples, "relative_counterfactual")
    if other:
        series.append((f"against {_SHORT.get(rule.get('reference'))}", other, "#263238"))
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, values, colour in series:
        if values:
            ax.hist(values, bins=30, range=(0, 2), color=colour, alpha=0.8 if other else 1.0, label=label)
    if rule["rule"] == "content":
        ax.axvline(rule["threshold"], color="#c62828", linestyle="--", label=f"threshold {rule['threshold']:g}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=9)
    ax.set_xlabel("|m(study) - m(reference)| / max(|m(study)|, |m(reference)|)   (1 or more: a flip)", fontsize=9)
    ax.set_ylabel("samples")
    ax.set_title("How far the image's content moved the answer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_by_label(path: Path, summary: dict) -> None:
    """Stacked quadrant shares for each label split by whether prompt 0 was right: one panel for the run's own
    reference, and one for the content-free image beside it where a counterfactual run kept that judgement."""
    plt = _pyplot()
    rows = [(f"label {label}, answer {'right' if answer == 'correct' else 'wrong'}", summary["by_label"][label][answer])
            for label in summary["by_label"] for answer in ("correct", "wrong")]
    rows = [(name, group) for name, group in rows if group["n"]][::-1]  # top to bottom: yes before no
    rule, beside = summary["reliance"], _beside(summary)
    reference = rule.get("reference")
    own = "without the image (flip rule)" if rule["rule"] == "flip" else f"against {_SHORT.get(reference, reference)}"
    panels = [("fractions", own)]
    if beside:
        panels.insert(0, ("fractions_content_free_reference", f"against {_SHORT[beside]}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.4, 0.55 * len(rows) + 1.9),
                             sharey=True, squeeze=False)
    labels = [f"{name} (n = {group['n']})" for name, group in rows]
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        left = [0.0] * len(rows)
        for q in QUADRANTS:
            widths = [100 * (group[key][q] or 0) for _, group in rows]
            ax.barh(labels, widths, left=left, color=_COLOURS[q], label=q, height=0.65)
            for y, (x0, w) in enumerate(zip(left, widths, strict=True)):
                if w >= 9:
                    ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", color="white", fontsize=8)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of the group's samples")
        ax.set_title(title, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Quadrant by label and correctness", fontsize=11)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(QUADRANTS), frameon=False,
               fontsize=9)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: a reference's name short enough for a plot's panel title
_SHORT = {"blank": "a blank image", "white": "a white image", "noise": "a noise image",
          "opposite": "an opposite-label study", "same-label": "a same-label study (control)"}


def _plot_entropy(path: Path, samples: list[dict], summary: dict) -> None:
    """Prompt 0's entropy by quadrant, every sample a dot over its quadrant's box: Dangerous answers sit low
    (confident), which is why screening by confidence does not catch them."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    rng = np.random.default_rng(0)  # the jitter only spreads the dots; fixed so a report redraws the same
    for i, q in enumerate(QUADRANTS):
        values = [s["entropy"] for s in samples if s["quadrant"] == q and s.get("entropy") is not None]
        if values:
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "#616161"})
            ax.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=9, color=_COLOURS[q], alpha=0.55,
                       linewidths=0, zorder=3)
    counts = [summary["per_quadrant"][q]["n"] for q in QUADRANTS]
    ax.set_xticks(range(len(QUADRANTS)), [f"{q}\n(n = {n})" for q, n in zip(QUADRANTS, counts, strict=True)])
    ax.set_xlim(-0.6, len(QUADRANTS) - 0.4)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("entropy of prompt 0 (bits)\nlower = more confident")
    auroc = summary.get("entropy_auroc_dangerous")
    ax.set_title("How confident each quadrant's answers are"
                 + ("" if auroc is None else f" (entropy AUROC for Dangerous {auroc:.2f})"), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
