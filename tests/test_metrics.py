"""Every number of summary.json and of `quadrant compare`, against an independent computation.

Two references for each statistic: scipy.stats (Wilson intervals from binomtest, Pearson r and its Fisher-z
interval from pearsonr, the AUROC as the Mann-Whitney U over n_pos * n_neg) and values worked by hand,
written out below. The points include small n and extreme proportions (0/7, 7/7, 1/1, 5/20), where a
formula slip shows most. Then summarize() on built verdicts, an evaluation of a model whose quadrants are
known by construction, and compare() on summaries whose correlation is known.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from scipy import stats

from quadrant.cli.main import main
from quadrant.compare import compare
from quadrant.metrics import Z95, auroc, pearson, summarize, wilson_interval
from quadrant.vocabulary import QUADRANTS
from toy_reader import build_toy_reader, toy_picture

WILSON_POINTS = [(5, 20), (0, 7), (7, 7), (1, 1), (0, 1), (197, 200), (1, 1000), (999, 1000), (3, 9), (50, 100)]


def scipy_wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def scipy_auroc(positive, negative) -> float:
    return stats.mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative))


# -- the formulas ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, n", WILSON_POINTS)
def test_wilson_interval_matches_scipy(k, n):
    assert wilson_interval(k, n) == pytest.approx(scipy_wilson(k, n), abs=1e-9)


def test_wilson_interval_by_hand():
    assert Z95 == pytest.approx(stats.norm.ppf(0.975), abs=1e-12)
    # 5/20: p = 0.25, z^2 = 3.841459; denominator 1 + z^2/n = 1.192073; centre (0.25 + 0.096036) / 1.192073
    # = 0.290281; half-width z * sqrt(0.25 * 0.75 / 20 + z^2 / 1600) / 1.192073 = 1.959964 * 0.108517 / 1.192073
    # = 0.178421  ->  (0.111862, 0.468701)
    assert wilson_interval(5, 20) == pytest.approx((0.111862, 0.468701), abs=2e-6)
    # 0 of n: the interval is [0, z^2 / (n + z^2)]; n of n its mirror image
    upper = Z95**2 / (7 + Z95**2)
    assert upper == pytest.approx(0.354331, abs=1e-6)
    assert wilson_interval(0, 7) == pytest.approx((0.0, upper), abs=1e-12)
    assert wilson_interval(7, 7) == pytest.approx((1 - upper, 1.0), abs=1e-12)
    assert wilson_interval(1, 1) == pytest.approx((1 / (1 + Z95**2), 1.0), abs=1e-12)
    assert wilson_interval(0, 0) is None


PEARSON_POINTS = [
    ([1, 2, 3, 4], [1, 3, 2, 4]),
    ([0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.7, 0.6, 0.3, 0.2]),
    ([0.093, 0.0, 0.093, 0.0, 0.093, 0.0], [0.128, 1.0, 0.088, 1.0, 0.118, 1.0]),  # the README's six runs
    ([0.015, 0.08, 0.2, 0.35, 0.12, 0.58, 0.03, 0.27, 0.44, 0.09],
     [0.985, 0.6, 0.41, 0.2, 0.7, 0.1, 0.8, 0.5, 0.2, 0.66]),
    ([3.0, 1.0, 2.0, 5.0, 4.0], [1.0, 2.0, 2.5, 2.0, 1.5]),  # weak
]


@pytest.mark.parametrize("xs, ys", PEARSON_POINTS)
def test_pearson_matches_scipy(xs, ys):
    result = pearson(xs, ys)
    reference = stats.pearsonr(xs, ys)
    interval = reference.confidence_interval(confidence_level=0.95)  # scipy's default: Fisher z
    assert result["n"] == len(xs)
    assert result["r"] == pytest.approx(reference.statistic, abs=1e-12)
    assert result["ci95"] == pytest.approx((interval.low, interval.high), abs=1e-9)


def test_pearson_by_hand():
    # x = 1..4, y = 1,3,2,4: deviations (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5); products sum to 4,
    # both sums of squares are 5: r = 0.8. Fisher z = atanh(0.8) = 1.098612, se = 1 / sqrt(4 - 3) = 1:
    # tanh(1.098612 -+ 1.959964) = (-0.696953, 0.995600)
    result = pearson([1, 2, 3, 4], [1, 3, 2, 4])
    assert result["r"] == pytest.approx(0.8, abs=1e-12)
    assert result["ci95"] == pytest.approx((-0.696953, 0.995600), abs=1e-6)
    flipped = pearson([1, 2, 3, 4], [4, 2, 3, 1])
    assert flipped["r"] == pytest.approx(-0.8, abs=1e-12)
    assert flipped["ci95"] == pytest.approx((-0.995600, 0.696953), abs=1e-6)
    # too few points for an interval (n - 3 = 0), too few for r at all, and a constant side
    assert pearson([1, 2, 4], [1, 3, 2])["ci95"] is None and pearson([1, 2, 4], [1, 3, 2])["r"] is not None
    assert pearson([1, 2], [3, 4]) == {"r": None, "n": 2, "ci95": None}
    assert pearson([1, 2, 3, 4], [5, 5, 5, 5])["r"] is None
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == {"r": pytest.approx(1.0), "n": 4, "ci95": None}  # |r| = 1


AUROC_POINTS = [
    ([0.9, 0.8, 0.4], [0.7, 0.4, 0.1]),
    ([1.0, 1.0, 1.0], [1.0, 1.0]),  # all tied
    ([0.2], [0.1, 0.3, 0.5, 0.7]),
    ([-0.01, -0.5, -0.02, -0.3, -0.3], [-0.9, -0.3, -0.6, -0.05]),
    ([5.0, 6.0], [1.0, 2.0, 3.0]),
]


@pytest.mark.parametrize("positive, negative", AUROC_POINTS)
def test_auroc_matches_mann_whitney(positive, negative):
    assert auroc(positive, negative) == pytest.approx(scipy_auroc(positive, negative), abs=1e-12)


def test_auroc_by_hand():
    # pairs won by the positive: 0.9 beats all 3, 0.8 beats all 3, 0.4 beats 0.1 and ties 0.4 (half): 7.5 of 9
    assert auroc([0.9, 0.8, 0.4], [0.7, 0.4, 0.1]) == pytest.approx(7.5 / 9, abs=1e-12)
    assert auroc([0.2], [0.1, 0.3, 0.5, 0.7]) == pytest.approx(0.25, abs=1e-12)
    assert auroc([1.0], [1.0, 1.0]) == 0.5
    assert auroc([], [1.0]) is None and auroc([1.0], []) is None


# -- summarize(): built verdicts, recomputed independently -----------------------------------------------------


def verdict(quadrant: str, *, correct=None, entropy=0.5, text_only_agrees=True, flip_reliant=None,
            pairwise=0.0, shift=1.0, finding="effusion", in_scope=True) -> dict:
    """The fields of a verdict that a summary reads, consistent with one another."""
    consistent = quadrant in ("Ideal", "Dangerous")
    reliant = quadrant in ("Ideal", "Fragile")
    answer = "yes" if correct in (True, None) else "no"
    other = {"yes": "no", "no": "yes"}[answer]
    return {
        "quadrant": quadrant, "consistent": consistent, "image_reliant": reliant,
        "flip_reliant": reliant if flip_reliant is None else flip_reliant,
        "answer": answer, "text_only": {"answer": answer if text_only_agrees else other},
        "pairwise_disagreement": 0.0 if consistent else pairwise, "entropy": entropy, "margin_shift": shift,
        "label": None if correct is None else ("yes" if correct else "no"), "correct": correct,
        "reliance": {"rule": "flip", "threshold": 0.0}, "extra": {"finding": finding},
        "scope": {"in_scope": in_scope},
    }


def dataset_twenty() -> list[dict]:
    """20 verdicts: Ideal 5, Fragile 3, Dangerous 12 (two out of scope), Worst 0; mixed labels, entropies and agreement."""
    rows = []
    for i in range(5):
        rows.append(verdict("Ideal", correct=i != 0, entropy=(5 + i) / 16, text_only_agrees=i == 4,
                            shift=2.0 + i, finding="heart" if i % 2 else "effusion"))
    for i in range(3):
        rows.append(verdict("Fragile", correct=i == 1, entropy=(12 + i) / 16, text_only_agrees=False,
                            pairwise=(i + 1) / 15, shift=-1.5 - i, finding="ptx"))
    for i in range(12):
        rows.append(verdict("Dangerous", correct=None if i < 2 else i % 3 != 0, entropy=i / 16,
                            text_only_agrees=True, flip_reliant=i < 4, shift=0.1 * (i - 6),
                            finding="effusion" if i < 7 else "heart", in_scope=i not in (5, 8)))
    return rows


def dataset_all_dangerous() -> list[dict]:
    return [verdict("Dangerous", correct=True, entropy=0.01 * (i + 1)) for i in range(7)]


def dataset_one() -> list[dict]:
    return [verdict("Worst", correct=False, entropy=0.9, text_only_agrees=False, pairwise=0.4, shift=-0.2)]


def independent_summary(verdicts: list[dict]) -> dict:
    """The summary's numbers computed another way: counts, scipy's intervals and U statistic."""
    n = len(verdicts)
    counts = Counter(v["quadrant"] for v in verdicts)
    paper = Counter(("Ideal" if v["flip_reliant"] else "Dangerous") if v["consistent"]
                    else ("Fragile" if v["flip_reliant"] else "Worst") for v in verdicts)
    labelled = [v for v in verdicts if v["correct"] is not None]
    flips = sum(1 for v in verdicts if not v["consistent"])
    dangerous = [-v["entropy"] for v in verdicts if v["quadrant"] == "Dangerous"]
    rest = [-v["entropy"] for v in verdicts if v["quadrant"] != "Dangerous"]
    groups: dict[str, list[dict]] = {}
    for v in verdicts:
        groups.setdefault(v["extra"]["finding"], []).append(v)

    def mean_or_none(values):
        return statistics.fmean(values) if values else None

    return {
        "n": n,
        "flip_rate": flips / n,
        "flip_rate_ci95": scipy_wilson(flips, n),
        "pairwise_flip_rate": statistics.fmean(v["pairwise_disagreement"] for v in verdicts),
        "fractions": {q: counts[q] / n for q in QUADRANTS},
        "fractions_ci95": {q: scipy_wilson(counts[q], n) for q in QUADRANTS},
        "fractions_flip_rule": {q: paper[q] / n for q in QUADRANTS},
        "fractions_flip_rule_ci95": {q: scipy_wilson(paper[q], n) for q in QUADRANTS},
        "accuracy": mean_or_none([float(v["correct"]) for v in labelled]),
        "n_labelled": len(labelled),
        "n_out_of_scope": sum(1 for v in verdicts if v["scope"]["in_scope"] is False),
        "text_only_agreement": sum(v["text_only"]["answer"] == v["answer"] for v in verdicts) / n,
        "per_quadrant": {
            q: {"n": counts[q],
                "accuracy": mean_or_none([float(v["correct"]) for v in labelled if v["quadrant"] == q]),
                "mean_entropy": mean_or_none([v["entropy"] for v in verdicts if v["quadrant"] == q])}
            for q in QUADRANTS
        },
        "entropy_auroc_dangerous": scipy_auroc(dangerous, rest) if dangerous and rest else None,
        "median_abs_margin_shift": statistics.median(abs(v["margin_shift"]) for v in verdicts),
        "by_finding": {finding: independent_group(group) for finding, group in groups.items()},
    }


def independent_group(verdicts: list[dict]) -> dict:
    labelled = [v["correct"] for v in verdicts if v["correct"] is not None]
    counts = Counter(v["quadrant"] for v in verdicts)
    return {
        "n": len(verdicts),
        "accuracy": statistics.fmean(labelled) if labelled else None,
        "flip_rate": statistics.fmean(not v["consistent"] for v in verdicts),
        "fractions": {q: counts[q] / len(verdicts) for q in QUADRANTS},
    }


def assert_matches(summary: dict, expected: dict) -> None:
    """Every number of `expected` in `summary` (tuples and lists alike, None where None)."""
    for key, value in expected.items():
        actual = summary[key]
        if isinstance(value, dict):
            assert set(value) <= set(actual), key
            assert_matches(actual, value)
        elif value is None:
            assert actual is None, key
        elif isinstance(value, (tuple, list)):
            assert actual is not None and list(actual) == pytest.approx(list(value), abs=1e-9), key
        else:
            assert actual == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("build", [dataset_twenty, dataset_all_dangerous, dataset_one])
def test_summary_matches_an_independent_computation(build):
    verdicts = build()
    assert_matches(summarize(verdicts), independent_summary(verdicts))


def test_summary_of_twenty_by_hand():
    """dataset_twenty's headline numbers worked out by hand from its construction."""
    summary = summarize(dataset_twenty())
    assert summary["n"] == 20
    assert summary["fractions"] == {"Ideal": 0.25, "Fragile": 0.15, "Dangerous": 0.6, "Worst": 0.0}
    assert summary["fractions_ci95"]["Ideal"] == pytest.approx((0.111862, 0.468701), abs=2e-6)  # 5/20 above
    assert summary["fractions_ci95"]["Worst"] == pytest.approx((0.0, Z95**2 / (20 + Z95**2)), abs=1e-9)
    assert summary["flip_rate"] == 0.15  # the three Fragile
    # flip rule: 4 of the 12 Dangerous flipped, so they count as Ideal under it
    assert summary["fractions_flip_rule"]["Ideal"] == pytest.approx(9 / 20)
    assert summary["fractions_flip_rule"]["Dangerous"] == pytest.approx(8 / 20)
    # text-only answer equals the with-image one: 1 Ideal + 12 Dangerous
    assert summary["text_only_agreement"] == pytest.approx(13 / 20)
    # labelled: 5 Ideal (4 right), 3 Fragile (1 right), 10 Dangerous (i = 2..11, wrong where i % 3 == 0: 3, 6, 9)
    assert summary["n_labelled"] == 18
    assert summary["n_out_of_scope"] == 2  # two Dangerous checked under --scope any
    assert summary["accuracy"] == pytest.approx((4 + 1 + 7) / 18)
    assert summary["per_quadrant"]["Dangerous"]["accuracy"] == pytest.approx(7 / 10)
    assert summary["per_quadrant"]["Worst"] == {"n": 0, "accuracy": None, "mean_entropy": None}
    # pairwise: (1 + 2 + 3) / 15 over the Fragile, 0 elsewhere, averaged over 20
    assert summary["pairwise_flip_rate"] == pytest.approx(6 / 15 / 20)
    # entropies in sixteenths (exact in binary): Dangerous 0..11, the rest 5..9 (Ideal) and 12..14 (Fragile).
    # A Dangerous sample wins a pair when its entropy is lower, half when equal: against rest k = 5..9 it wins
    # k + 0.5 pairs (37.5 in all), against 12..14 all 12 (36): 73.5 of 12 * 8 = 96 pairs
    assert summary["entropy_auroc_dangerous"] == pytest.approx(73.5 / 96)
    assert summary["per_quadrant"]["Ideal"]["mean_entropy"] == pytest.approx(7 / 16)
    assert summary["by_finding"]["ptx"] == {"n": 3, "accuracy": pytest.approx(1 / 3), "flip_rate": 1.0,
                                            "fractions": {"Ideal": 0.0, "Fragile": 1.0, "Dangerous": 0.0,
                                                          "Worst": 0.0}}


def test_summary_of_one_and_of_all_dangerous_by_hand():
    one = summarize(dataset_one())
    assert one["fractions_ci95"]["Worst"] == pytest.approx((1 / (1 + Z95**2), 1.0), abs=1e-12)
    assert one["fractions_ci95"]["Ideal"] == pytest.approx((0.0, Z95**2 / (1 + Z95**2)), abs=1e-12)
    assert one["text_only_agreement"] == 0.0 and one["accuracy"] == 0.0 and one["flip_rate"] == 1.0
    assert one["entropy_auroc_dangerous"] is None  # no Dangerous sample to separate
    seven = summarize(dataset_all_dangerous())
    assert seven["fractions"]["Dangerous"] == 1.0
    assert seven["fractions_ci95"]["Dangerous"] == pytest.approx((7 / (7 + Z95**2), 1.0), abs=1e-12)
    assert seven["fractions_ci95"]["Ideal"] == pytest.approx((0.0, Z95**2 / (7 + Z95**2)), abs=1e-12)
    assert seven["text_only_agreement"] == 1.0 and seven["flip_rate"] == 0.0
    assert seven["per_quadrant"]["Dangerous"]["mean_entropy"] == pytest.approx(0.04)


# -- by label and correctness, and the content-free judgement kept beside a counterfactual run ------------------


def labelled(quadrant: str, label: str | None, correct: bool | None, blank_reliant: bool) -> dict:
    """A verdict of a counterfactual run: its quadrant, its label, and what the blank image would have said."""
    v = verdict(quadrant, correct=correct)
    answer = None if label is None else (label if correct else {"yes": "no", "no": "yes"}[label])
    return {**v, "label": label, "answer": answer or "no", "content_free_reliant": blank_reliant,
            "reliance": {"rule": "content", "threshold": 0.2, "reference": "opposite"}}


def counterfactual_run() -> list[dict]:
    """19 verdicts. Correct 'no' (10): Ideal 7 (3 of them not moved by the blank image), Fragile 1, Dangerous 2.
    Wrong 'no' (2): Fragile 1 (not moved by the blank: Worst there), Dangerous 1. Correct 'yes' (6): Ideal 5,
    Dangerous 1, the blank agreeing. One unlabelled Worst."""
    rows = [labelled("Ideal", "no", True, i < 4) for i in range(7)]
    rows += [labelled("Fragile", "no", True, True)] + [labelled("Dangerous", "no", True, False)] * 2
    rows += [labelled("Fragile", "no", False, False), labelled("Dangerous", "no", False, False)]
    rows += [labelled("Ideal", "yes", True, True)] * 5 + [labelled("Dangerous", "yes", True, False)]
    return rows + [labelled("Worst", None, None, False)]


def test_by_label_by_hand():
    summary = summarize(counterfactual_run())
    no, yes = summary["by_label"]["no"], summary["by_label"]["yes"]
    assert set(summary["by_label"]) == {"yes", "no"}  # the unlabelled one belongs to neither
    assert no["n"] == 12 and no["accuracy"] == pytest.approx(10 / 12)
    assert no["accuracy_ci95"] == pytest.approx(scipy_wilson(10, 12), abs=1e-9)
    assert no["fractions"] == pytest.approx({"Ideal": 7 / 12, "Fragile": 2 / 12, "Dangerous": 3 / 12, "Worst": 0})
    correct, wrong = no["correct"], no["wrong"]
    assert correct["n"] == 10 and wrong["n"] == 2
    assert correct["fractions"] == pytest.approx({"Ideal": 0.7, "Fragile": 0.1, "Dangerous": 0.2, "Worst": 0.0})
    assert correct["fractions_ci95"]["Dangerous"] == pytest.approx(scipy_wilson(2, 10), abs=1e-9)
    # against the blank image the three unmoved Ideal answers are Dangerous: 5 of the 10 correct 'no'
    assert correct["fractions_content_free_reference"] == pytest.approx(
        {"Ideal": 0.4, "Fragile": 0.1, "Dangerous": 0.5, "Worst": 0.0})
    assert correct["fractions_content_free_reference_ci95"]["Dangerous"] == pytest.approx(scipy_wilson(5, 10))
    assert wrong["fractions"] == pytest.approx({"Ideal": 0, "Fragile": 0.5, "Dangerous": 0.5, "Worst": 0})
    assert wrong["fractions_content_free_reference"] == pytest.approx(
        {"Ideal": 0, "Fragile": 0, "Dangerous": 0.5, "Worst": 0.5})
    assert yes["n"] == 6 and yes["accuracy"] == 1.0 and yes["correct"]["fractions"]["Dangerous"] == pytest.approx(1 / 6)
    assert yes["wrong"] == {"n": 0, **{key: dict.fromkeys(QUADRANTS) for key in (
        "fractions", "fractions_ci95", "fractions_content_free_reference", "fractions_content_free_reference_ci95")}}
    # the whole run against the blank image: 19 verdicts, Dangerous 5 + 1 + 1 = 7
    assert summary["fractions_content_free_reference"]["Dangerous"] == pytest.approx(7 / 19)
    assert summary["fractions_content_free_reference_ci95"]["Worst"] == pytest.approx(scipy_wilson(2, 19))


def test_a_run_without_a_counterfactual_has_no_beside_figures():
    plain = [{k: v for k, v in row.items() if k != "content_free_reliant"} for row in counterfactual_run()]
    summary = summarize(plain)
    assert "fractions_content_free_reference" not in summary
    assert set(summary["by_label"]["no"]["correct"]) == {"n", "fractions", "fractions_ci95"}
    assert "by_label" not in summarize(dataset_all_dangerous()[:0] + [labelled("Worst", None, None, False)])


# -- summary.json of a real evaluation whose quadrants are known by construction -------------------------------

# The toy reader (tests/toy_reader.py): a bright study is answered yes with the image and no without it
# (image-reliant under the flip rule), a dark one no either way; "fluid" makes a phrasing yes, "angles" no.
FOLLOWS = "Does this radiograph show a pleural effusion?"  # no marker word: the toy follows the image
ROWS = (
    [("bright", ["Is a pleural effusion present?", FOLLOWS], "yes")] * 3  # Ideal
    + [("bright", ["Are the angles blunted by an effusion?", FOLLOWS], "yes")]  # Fragile
    + [("dark", ["Is a pleural effusion present?", FOLLOWS], "no")] * 3  # Dangerous
    + [("dark", ["Is a pleural effusion present?", FOLLOWS], "yes")]  # Dangerous, answered wrongly
    + [("dark", ["Is there fluid in the pleural space?", FOLLOWS], None)]  # Worst, no label
)


@pytest.fixture(scope="module")
def toy_evaluation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-eval")
    model = build_toy_reader(folder / "model")
    for name in ("bright", "dark"):
        toy_picture(name == "bright").save(folder / f"{name}.png")
    lines = []
    for i, (image, paraphrases, label) in enumerate(ROWS):
        row = {"image": f"{image}.png", "question": "Is there a pleural effusion?", "paraphrases": paraphrases,
               "study_id": f"t{i}", "finding": image}
        if label:
            row["label"] = label
        lines.append(json.dumps(row))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    out = folder / "run"
    code = main(["evaluate", "--manifest", str(folder / "manifest.jsonl"), "--out", str(out), "--model", str(model),
                 "--reliance", "flip", "--quiet"])
    assert code == 0
    return out


def test_summary_json_of_a_known_evaluation(toy_evaluation):
    summary = json.loads((toy_evaluation / "summary.json").read_text())
    samples = [json.loads(line) for line in (toy_evaluation / "samples.jsonl").read_text().splitlines()]
    assert [s["quadrant"] for s in sorted(samples, key=lambda s: int(s["study_id"][1:]))] == (
        ["Ideal"] * 3 + ["Fragile"] + ["Dangerous"] * 4 + ["Worst"])
    # by construction
    assert summary["n"] == 9 and summary["n_errors"] == 0
    assert summary["fractions"] == pytest.approx({"Ideal": 3 / 9, "Fragile": 1 / 9, "Dangerous": 4 / 9,
                                                  "Worst": 1 / 9})
    assert summary["flip_rate"] == pytest.approx(2 / 9)
    assert summary["text_only_agreement"] == pytest.approx(5 / 9)  # the dark ones: no with and without the image
    assert summary["n_labelled"] == 8 and summary["accuracy"] == pytest.approx(7 / 8)
    assert summary["per_quadrant"]["Dangerous"]["accuracy"] == pytest.approx(3 / 4)
    # three phrasings each (K >= 2): 3 pairs; the Fragile and the Worst row disagree on 2 of them
    assert summary["pairwise_flip_rate"] == pytest.approx((2 / 3 + 2 / 3) / 9)
    assert summary["reliance"]["rule"] == "flip"
    assert summary["fractions_flip_rule"] == summary["fractions"]  # the run's rule is the flip rule
    assert summary["by_finding"]["bright"]["fractions"]["Fragile"] == pytest.approx(1 / 4)
    # and every number against the independent computation from the samples themselves
    assert_matches(summary, independent_summary(samples))


def test_a_report_without_a_figure_says_n_a_not_none(toy_evaluation, tmp_path):
    """With no Dangerous sample the entropy AUROC has no value: the report once printed Python's None."""
    from quadrant.report import write_report

    samples = [json.loads(line) for line in (toy_evaluation / "samples.jsonl").read_text().splitlines()]
    ideal = [s for s in samples if s["quadrant"] == "Ideal"]
    summary = summarize(ideal)
    assert summary["entropy_auroc_dangerous"] is None
    write_report(tmp_path, summary, ideal)
    report = (tmp_path / "report.md").read_text()
    assert "| entropy AUROC for Dangerous | n/a |" in report and "None" not in report
    assert "| entropy AUROC for Dangerous | 0." in (toy_evaluation / "report.md").read_text()


# -- compare ----------------------------------------------------------------------------------------------------

CONFIGS = [  # flip rate, Dangerous fraction
    (0.015, 0.985), (0.09, 0.13), (0.31, 0.22), (0.58, 0.04), (0.22, 0.51), (0.0, 1.0), (0.12, 0.35),
]


def write_configs(tmp_path: Path, configs) -> list[str]:
    """summary.json files as evaluate writes them (compare reads nothing else of a run's folder)."""
    dirs = []
    for i, (flip, dangerous) in enumerate(configs):
        folder = tmp_path / f"config{i}"
        folder.mkdir()
        rest = (1 - dangerous) / 3
        summary = {"n": 100, "flip_rate": flip, "accuracy": 0.9, "fractions": {"Ideal": rest, "Fragile": rest,
                   "Dangerous": dangerous, "Worst": rest}, "fractions_flip_rule": {"Dangerous": dangerous}}
        (folder / "summary.json").write_text(json.dumps(summary))
        dirs.append(str(folder))
    return dirs


@pytest.mark.parametrize("count", [4, 5, 7])
def test_compare_correlation_matches_scipy(tmp_path, count):
    configs = CONFIGS[:count]
    result = compare(write_configs(tmp_path, configs))["flip_vs_dangerous"]
    reference = stats.pearsonr(*zip(*configs))
    interval = reference.confidence_interval(confidence_level=0.95)
    assert result["n"] == count
    assert result["r"] == pytest.approx(reference.statistic, abs=1e-12)
    assert result["ci95"] == pytest.approx((interval.low, interval.high), abs=1e-9)


def test_compare_by_hand_and_on_the_command_line(tmp_path, capsys):
    # flip rates 1..4 against Dangerous 1, 3, 2, 4 (scaled): r = 0.8 with (-0.697, 0.996), as worked above;
    # a run with no samples (flip rate None) is left out of the correlation
    dirs = write_configs(tmp_path, [(0.1, 0.1), (0.2, 0.3), (0.3, 0.2), (0.4, 0.4)])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.json").write_text(json.dumps({"n": 0, "flip_rate": None, "accuracy": None, "fractions": {
        q: None for q in QUADRANTS}, "fractions_flip_rule": {"Dangerous": None}}))
    result = compare(dirs + [str(empty)])
    assert len(result["rows"]) == 5
    assert result["flip_vs_dangerous"]["n"] == 4
    assert result["flip_vs_dangerous"]["r"] == pytest.approx(0.8, abs=1e-12)
    assert result["flip_vs_dangerous"]["ci95"] == pytest.approx((-0.696953, 0.995600), abs=1e-6)
    assert main(["compare", *dirs]) == 0
    text = capsys.readouterr().out
    assert ("Pearson r (flip rate vs Dangerous fraction) = +0.800 over n = 4 configurations, "
            "95% CI -0.70 to +1.00") in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "config1" in line]
    assert rows and "| 20.0% |" in rows[0] and "| 30.0% |" in rows[0]  # flip rate, Dangerous


def test_compare_says_when_runs_did_not_answer_the_same_questions(tmp_path, capsys):
    dirs = write_configs(tmp_path, [(0.1, 0.1), (0.2, 0.3), (0.3, 0.2)])
    for folder, digest in zip(dirs, ["a", "a", "b"], strict=True):  # the third: cut short, or another manifest
        summary = json.loads(Path(folder, "summary.json").read_text())
        Path(folder, "summary.json").write_text(json.dumps({**summary, "studies_sha256": digest}))
    assert compare(dirs[:2])["same_studies"] is True and compare(dirs)["same_studies"] is False
    assert main(["compare", *dirs]) == 0
    assert "These runs did not answer the same questions about the same studies (n = 100, 100, 100)" in (
        capsys.readouterr().out)
    assert main(["compare", *dirs[:2]]) == 0 and "did not answer" not in capsys.readouterr().out
    (tmp_path / "older").mkdir()
    older = write_configs(tmp_path / "older", [(0.1, 0.1)])
    assert compare([dirs[2], *older])["same_studies"] is None  # a summary from before the digest: unknown


def test_compare_names_each_runs_reference_and_its_correct_negatives(tmp_path, capsys):
    from quadrant import vocabulary

    dirs = write_configs(tmp_path, [(0.1, 0.1), (0.1, 0.05), (0.1, 0.4), (0.2, 0.3)])
    runs = {"blank": (0.18, 150), "opposite": (0.02, 150), "same-label": (0.45, 150)}
    for folder, (reference, (dangerous, n)) in zip(dirs, runs.items(), strict=False):
        summary = json.loads(Path(folder, "summary.json").read_text())
        summary["reliance"] = {"rule": "content", "threshold": 0.2, "reference": reference}
        summary["by_label"] = {"no": {"correct": {"n": n, "fractions": {"Dangerous": dangerous}}}}
        Path(folder, "summary.json").write_text(json.dumps(summary))
    assert main(["compare", *dirs]) == 0  # the fourth is a run from before references were recorded
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| ") and "/config" in line]
    assert "| blank |" in rows[0] and "| 18.0% of 150 |" in rows[0]
    assert "| opposite |" in rows[1] and "| 2.0% of 150 |" in rows[1]
    assert "| same-label (control) |" in rows[2] and "| 45.0% of 150 |" in rows[2]
    assert "| - |" in rows[3] and "| n/a |" in rows[3]
    assert text.count(vocabulary.DATASET_NO_CAVEAT) == 1 and text.count(vocabulary.CONTROL_NOTE) == 1
