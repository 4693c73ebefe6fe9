"""The default reliance rule judges the image's content, not its presence, and ignores the logits' scale.

The measured claims of the README's "Choosing the default reliance rule", re-measured on fresh phantoms with
models built from the committed demo weights: a blind projector (every image becomes the same tokens), and
the language model's head scaled by 0.2 and 5 (the same answers at another temperature).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from quadrant.answers import Answer
from quadrant.check import Checker, CheckOptions, CheckRequest
from quadrant.errors import OptionError
from quadrant.images import load_study
from quadrant.models import measure_demo
from quadrant.models.phantoms import generate_phantoms
from quadrant.reliance import DEFAULT_THRESHOLD, Reliance, relative_shift, shifts

SEED = 5150  # never used in training or in any other measurement
STUDIES = 40  # x 5 findings = 200 samples
SCALES = (0.2, 1.0, 5.0)


def test_relative_shift_does_not_change_when_every_logit_is_scaled():
    for m_image, m_reference in ((2.0, 0.5), (-3.0, 1.0), (0.01, 0.02), (-4.0, -4.0), (0.0, 0.0)):
        r = relative_shift(m_image, m_reference)
        for scale in (1e-3, 0.2, 5.0, 1e3):
            assert relative_shift(scale * m_image, scale * m_reference) == pytest.approx(r)
    assert relative_shift(2.0, 0.5) == pytest.approx(0.75)
    assert relative_shift(1.0, -1.0) == pytest.approx(2.0)  # a flip is at least 1
    assert relative_shift(0.0, 0.0) == 0.0


def test_the_threshold_is_inclusive_and_a_flip_always_counts():
    rule = Reliance("content", 0.25)
    none = Answer.from_margin(-9.0)  # the text-only pass: whatever it says, the content rule ignores it
    assert rule.is_reliant(Answer.from_margin(4.0), none, Answer.from_margin(3.0))  # exactly 0.25
    assert not rule.is_reliant(Answer.from_margin(4.0), none, Answer.from_margin(3.01))
    assert rule.is_reliant(Answer.from_margin(0.01), none, Answer.from_margin(-0.01))  # a flip, however small


def test_presence_is_not_content():
    """Taking the image out moves the margin (and here flips it), but a content-free image does not: the
    paper's flip rule calls this reliant, the content rule does not."""
    with_image, text_only, blank = Answer.from_margin(2.0), Answer.from_margin(-1.0), Answer.from_margin(1.9)
    assert Reliance("flip").is_reliant(with_image, text_only, blank)
    assert not Reliance("content").is_reliant(with_image, text_only, blank)
    assert shifts(with_image, text_only, blank) == pytest.approx(
        {"text_only": 3.0, "presence": 2.9, "content": 0.1, "relative_content": 0.05})


def test_generated_answers_without_margins_are_judged_by_a_flip_against_the_reference():
    rule = Reliance("content")
    yes, no = Answer("yes", None, "Yes."), Answer("no", None, "No.")
    assert rule.is_reliant(yes, yes, no)
    assert not rule.is_reliant(yes, no, yes)


def test_an_unknown_reference_is_refused():
    with pytest.raises(OptionError, match="unknown reference image 'static'"):
        Reliance("content", 0.25, "static")


# -- measured on the demo pair and models built from it --------------------------------------------------


@pytest.fixture(scope="module")
def fresh_phantoms(tmp_path_factory) -> list[CheckRequest]:
    manifest = generate_phantoms(tmp_path_factory.mktemp("phantoms"), STUDIES, SEED)
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    studies: dict[str, object] = {}
    for row in rows:
        studies.setdefault(row["image"], load_study(Path(manifest).parent / row["image"]))
    return [CheckRequest(studies[r["image"]], r["question"], label=r["label"], study_id=r["study_id"]) for r in rows]


def build(preset: str, *, blind: bool = False, scale: float = 1.0, reliance: Reliance = Reliance()) -> Checker:
    """The committed weights as measure_demo builds its variants: the projector's output zeroed (blind), the
    head scaled; the same models the README's table was measured on."""
    return Checker(measure_demo.build(preset, blind, scale), "torch", CheckOptions(reliance=reliance))


def shares(checker: Checker, requests: list[CheckRequest]) -> dict[str, float]:
    verdicts = [v for start in range(0, len(requests), 20) for v in checker.check_many(requests[start : start + 20])]
    n = len(verdicts)
    return {
        "reliant": sum(v.image_reliant for v in verdicts) / n,
        "Ideal": sum(v.quadrant == "Ideal" for v in verdicts) / n,
        "accuracy": sum(bool(v.correct) for v in verdicts) / n,
    }


@pytest.mark.parametrize("preset, blind", [("demo", True), ("demo-shortcut", False)])
def test_models_that_do_not_read_the_image_are_never_called_image_reliant(preset, blind, fresh_phantoms):
    for scale in SCALES:
        result = shares(build(preset, blind=blind, scale=scale), fresh_phantoms)
        assert result["reliant"] <= 0.05, (preset, blind, scale, result)


def test_a_model_that_reads_the_image_is_image_reliant_at_every_temperature(fresh_phantoms):
    results = {scale: shares(build("demo", scale=scale), fresh_phantoms) for scale in SCALES}
    for scale, result in results.items():
        assert result["accuracy"] >= 0.9, (scale, result)
        assert result["reliant"] >= 0.80, (scale, result)
        assert result["Ideal"] >= 0.70, (scale, result)
    reliant = [r["reliant"] for r in results.values()]
    assert max(reliant) - min(reliant) <= 0.05, results


def test_the_old_absolute_rule_was_fooled_where_the_content_rule_is_not(fresh_phantoms):
    """The trap this rule replaces, kept visible: an absolute threshold on the text-only shift calls a blind
    model reliant (presence) and a cooled shortcut model reliant (scale). Recomputed here from the verdicts'
    recorded shifts, which is also what a reader of a verdict can do."""
    blind = build("demo", blind=True).check_many(fresh_phantoms[:60])
    cooled = build("demo-shortcut", scale=5.0).check_many(fresh_phantoms[:60])
    for verdicts in (blind, cooled):
        absolute = sum(abs(v.shifts["text_only"]) >= 0.4 for v in verdicts) / len(verdicts)
        assert absolute >= 0.2
        assert sum(v.image_reliant for v in verdicts) / len(verdicts) <= 0.05


def test_at_and_around_the_threshold_through_the_checker(fresh_phantoms):
    """The real Checker, a real verdict's own relative shift as the threshold: reliant at it, not above it."""
    request = fresh_phantoms[0]
    r = build("demo").check_many([request])[0].shifts["relative_content"]
    assert 0 < r
    at = build("demo", reliance=Reliance("content", r)).check_many([request])[0]
    above = build("demo", reliance=Reliance("content", r * (1 + 1e-6))).check_many([request])[0]
    assert at.image_reliant and not above.image_reliant
    assert at.quadrant in ("Ideal", "Fragile") and above.quadrant in ("Dangerous", "Worst")
    assert at.consistent == above.consistent


def test_the_default_is_the_measured_one():
    assert Reliance() == Reliance("content", DEFAULT_THRESHOLD, "blank")
