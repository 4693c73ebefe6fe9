"""Dataset metrics (README, "Commands": evaluate's summary.json), computed from verdict JSON alone so that a summary can be
rebuilt from samples.jsonl at any time.

Confidence intervals are Wilson score intervals for proportions and Fisher-z intervals for Pearson r:
both behave at the small n and extreme proportions these reports meet (Dangerous at 98.5% of 200 samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .evidence import summarize_evidence
from .reliance import quadrant
from .vocabulary import QUADRANTS

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def pearson(xs: Sequence[float], ys: Sequence[float]) -> dict:
    """Pearson r with n and a 95% Fisher-z interval: r is None below 3 points or with a constant side; the
    interval is None below 4 points (Fisher's z has standard error 1 / sqrt(n - 3)) and at |r| = 1."""
    n = len(xs)
    result = {"r": None, "n": n, "ci95": None}
    if n < 3:
        return result
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return result
    r = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)
    result["r"] = r
    if n > 3 and abs(r) < 1:
        z, se = math.atanh(r), 1 / math.sqrt(n - 3)
        result["ci95"] = (math.tanh(z - Z95 * se), math.tanh(z + Z95 * se))
    return result


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    if not positive or not negative:
        return None
    ranked = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2
        rank_sum += average_rank * sum(label for _, label in ranked[i:j])
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fractions(quadrants: Sequence[str]) -> tuple[dict, dict]:
    n = len(quadrants)
    counts = {q: sum(x == q for x in quadrants) for q in QUADRANTS}
    share = {q: (counts[q] / n if n else None) for q in QUADRANTS}
    return share, {q: wilson_interval(counts[q], n) for q in QUADRANTS}


def summarize(verdicts: Sequence[dict], by: str | None = "finding") -> dict:
    """The summary.json of an evaluation: the documented keys first, then the breakdowns."""
    n = len(verdicts)
    quadrants = [v["quadrant"] for v in verdicts]
    share, ci = fractions(quadrants)
    paper = [quadrant(v["consistent"], v["flip_reliant"]) for v in verdicts]
    paper_share, paper_ci = fractions(paper)
    labelled = [v for v in verdicts if v.get("correct") is not None]
    flips = sum(not v["consistent"] for v in verdicts)
    entropies_dangerous = [v["entropy"] for v in verdicts if v["quadrant"] == "Dangerous" and v["entropy"] is not None]
    entropies_rest = [v["entropy"] for v in verdicts if v["quadrant"] != "Dangerous" and v["entropy"] is not None]
    summary = {
        "n": n,
        "flip_rate": flips / n if n else None,
        "flip_rate_ci95": wilson_interval(flips, n),
        "pairwise_flip_rate": _mean([v["pairwise_disagreement"] for v in verdicts]),
        "fractions": share,
        "fractions_ci95": ci,
        "accuracy": (sum(v["correct"] for v in labelled) / len(labelled)) if labelled else None,
        "n_labelled": len(labelled),
        "n_out_of_scope": sum(not (v.get("scope") or {}).get("in_scope", True) for v in verdicts),  # --scope any
        "text_only_agreement": (sum(v["text_only"]["answer"] == v["answer"] for v in verdicts) / n) if n else None,
        "reliance": verdicts[0]["reliance"] if verdicts else None,
        "fractions_flip_rule": paper_share,
        "fractions_flip_rule_ci95": paper_ci,
        "per_quadrant": {
            q: {
                "n": sum(x == q for x in quadrants),
                "accuracy": _mean([float(v["correct"]) for v in labelled if v["quadrant"] == q]),
                "mean_entropy": _mean([v["entropy"] for v in verdicts if v["quadrant"] == q]),
            }
            for q in QUADRANTS
        },
        # entropy is LOWER on confident answers: AUROC of (-entropy) for "is Dangerous" shows how well
        # confidence screening would find the Dangerous samples (0.5 = not at all)
        "entropy_auroc_dangerous": auroc([-e for e in entropies_dangerous], [-e for e in entropies_rest]),
        "median_abs_margin_shift": _median([abs(v["margin_shift"]) for v in verdicts if v["margin_shift"] is not None]),
        "median_relative_content_shift": _median(relative_content_shifts(verdicts)),
    }
    beside = kept_content_free(verdicts)
    if beside:
        summary.update(_beside(verdicts))
    if labelled:
        summary["by_label"] = by_label(labelled, beside)
    evidence = summarize_evidence(verdicts)
    if evidence is not None:
        summary["evidence"] = evidence
    if by and any(by in (v.get("extra") or {}) for v in verdicts):
        summary[f"by_{by}"] = {
            key: _group_summary([v for v in verdicts if (v.get("extra") or {}).get(by) == key])
            for key in sorted({(v.get("extra") or {}).get(by) for v in verdicts} - {None})
        }
    return summary


def kept_content_free(verdicts: Sequence[dict]) -> bool:
    """Whether the run compared with another labelled study and kept the content-free image's judgement beside
    (every verdict's content_free_reliant)."""
    return bool(verdicts) and all(v.get("content_free_reliant") is not None for v in verdicts)


def _beside(verdicts: Sequence[dict]) -> dict:
    """The quadrant shares had the verdicts been judged against the content-free image, with their intervals."""
    share, ci = fractions([quadrant(v["consistent"], v["content_free_reliant"]) for v in verdicts])
    return {"fractions_content_free_reference": share, "fractions_content_free_reference_ci95": ci}


def by_label(verdicts: Sequence[dict], beside: bool = False) -> dict:
    """For each label (yes, no): n, accuracy, and the quadrant shares with their intervals, overall and among
    the answers that were right and wrong. Among correct 'no' answers is where a content-free reference calls a
    sound reader Dangerous, so a report shows it apart."""
    groups = {}
    for label in ("yes", "no"):
        group = [v for v in verdicts if v.get("label") == label]
        if group:
            right = [v for v in group if v["correct"]]
            groups[label] = {
                "n": len(group),
                "accuracy": len(right) / len(group),
                "accuracy_ci95": wilson_interval(len(right), len(group)),
                **_shares(group, beside),
                "correct": {"n": len(right), **_shares(right, beside)},
                "wrong": {"n": len(group) - len(right), **_shares([v for v in group if not v["correct"]], beside)},
            }
    return groups


def _shares(verdicts: Sequence[dict], beside: bool) -> dict:
    """The quadrant shares of some verdicts with their intervals, and the content-free reference's beside."""
    share, ci = fractions([v["quadrant"] for v in verdicts])
    return {"fractions": share, "fractions_ci95": ci, **(_beside(verdicts) if beside else {})}


def relative_content_shifts(verdicts: Sequence[dict], key: str = "relative_content") -> list[float]:
    """Each verdict's relative content shift (or, with key="relative_counterfactual", its shift against the
    other labelled study), where it has one (verdicts in generate mode have none)."""
    shifts = [(v.get("shifts") or {}).get(key) for v in verdicts]
    return [s for s in shifts if s is not None]


def _group_summary(verdicts: Sequence[dict]) -> dict:
    n = len(verdicts)
    labelled = [v for v in verdicts if v.get("correct") is not None]
    share, _ = fractions([v["quadrant"] for v in verdicts])
    return {
        "n": n,
        "accuracy": (sum(v["correct"] for v in labelled) / len(labelled)) if labelled else None,
        "flip_rate": sum(not v["consistent"] for v in verdicts) / n,
        "fractions": share,
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
