"""The verdict's words, read off real checks of the bundled demo pair: every quadrant's sentence says what was
measured, names the comparison that decided it with its own figures, and never says the model did not look."""

from __future__ import annotations

import re

import pytest

from quadrant import vocabulary
from quadrant.check import Checker, CheckOptions
from quadrant.images import load_study
from quadrant.loading import ModelSpec, load_model
from quadrant.models.presets import MODELS_DIR
from quadrant.reliance import Reliance, quadrant

SAMPLES = MODELS_DIR / "samples"
#: the demo pair's verdicts on its sample studies (models/samples/README.md)
CASES = {
    "ideal-yes": ("demo", "cardiomegaly-effusion.png", "Is there a pleural effusion?"),
    "fragile": ("demo", "pneumothorax.png", "Is there a pneumothorax?"),
    "dangerous-no": ("demo", "consolidation.png", "Is there cardiomegaly?"),
    "dangerous-yes": ("demo-shortcut", "cardiomegaly-effusion.png", "Is there a pleural effusion?"),
}


@pytest.fixture(scope="module")
def checkers():
    return {name: Checker(load_model(ModelSpec(name))) for name in ("demo", "demo-shortcut")}


@pytest.fixture(scope="module")
def verdicts(checkers):
    return {case: checkers[model].check(load_study(SAMPLES / image), question)
            for case, (model, image, question) in CASES.items()}


def test_the_grid_and_the_quadrant_rule_share_one_layout():
    cells = {quadrant(c, r) for c in (True, False) for r in (True, False)}
    assert cells == set(vocabulary.QUADRANTS) == set(vocabulary.TONES) == set(vocabulary.ADVICE)
    assert quadrant(True, False) == "Dangerous" and quadrant(False, True) == "Fragile"


def test_the_verdict_word_qualifies_the_answer_not_the_finding(verdicts):
    v = verdicts["dangerous-yes"]
    assert v.quadrant == "Dangerous"
    assert vocabulary.title(v) == "Dangerous answer"
    assert vocabulary.answer_line(v) == "The model answered \u201cyes\u201d to \u201cIs there a pleural effusion?\u201d."


def test_each_quadrant_says_what_moved_and_against_what(verdicts):
    assert [verdicts[c].quadrant for c in CASES] == ["Ideal", "Fragile", "Dangerous", "Dangerous"]
    blank = "compared with a blank mid-gray image of the same size"
    assert vocabulary.meaning(verdicts["ideal-yes"]) == f"Every phrasing gave the same answer, and the study's image moved it, {blank}."
    fragile = verdicts["fragile"]
    k, n = fragile.flip_count, len(fragile.prompts) - 1
    assert f"but {k} of the {n} rewordings of the question gave the other answer" in vocabulary.meaning(fragile)
    for case in ("dangerous-no", "dangerous-yes"):
        text = vocabulary.meaning(verdicts[case])
        assert f"the study's image did not move it, {blank}" in text
        assert not re.search(r"without looking|did not look at|wording alone|text alone", text.split(". A content")[0])


def test_an_unmoved_no_against_a_blank_image_carries_its_caveat(verdicts):
    assert verdicts["dangerous-no"].answer == "no"
    assert vocabulary.meaning(verdicts["dangerous-no"]).endswith(vocabulary.NO_CAVEAT)
    assert vocabulary.NO_CAVEAT not in vocabulary.meaning(verdicts["dangerous-yes"])  # a 'yes' has no such excuse
    assert vocabulary.NO_CAVEAT not in vocabulary.meaning(verdicts["ideal-yes"])


def test_the_content_rule_states_its_own_figures(verdicts):
    v = verdicts["dangerous-no"]
    text = vocabulary.decided_by(v)
    relative, threshold = v.shifts["relative_content"], v.reliance["threshold"]
    assert f"{v.prompts[0].p_yes:.2f} with the study and {v.content_free.p_yes:.2f} with the reference" in text
    assert f"by {relative:.0%} of its size, less than the {threshold:.0%}" in text
    ideal = verdicts["ideal-yes"]
    assert ideal.content_free.answer == "no" and ideal.answer == "yes"
    assert vocabulary.decided_by(ideal).endswith("so the study's image turned the answer round (a flip always counts).")


def test_the_flip_rule_names_the_pass_without_the_image(checkers):
    checker = Checker(checkers["demo"].loaded, options=CheckOptions(reliance=Reliance("flip")))
    v = checker.check(load_study(SAMPLES / "cardiomegaly-effusion.png"), "Is there a pleural effusion?")
    assert v.quadrant == "Ideal" and v.text_only.answer == "no"
    assert vocabulary.compared_with(v) == vocabulary.WITHOUT_IMAGE
    assert ("\u201cyes\u201d with it, \u201cno\u201d without it, so removing the image changed the answer"
            in vocabulary.decided_by(v))
    assert vocabulary.NO_CAVEAT not in vocabulary.meaning(v)


def test_the_text_only_answer_is_a_fact_of_its_own(verdicts):
    v = verdicts["dangerous-no"]
    assert vocabulary.without_image(v) == (f"Asked with no image at all, the model answers \u201c{v.text_only.answer}"
                                           f"\u201d (chance of \u201cyes\u201d {v.text_only.p_yes:.2f}).")
