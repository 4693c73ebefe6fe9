"""The verdict's words, read off real checks of the bundled demo pair: every quadrant's sentence says what was
measured, names the comparison that decided it with its own figures, and never says the model did not look."""

from __future__ import annotations

import re

import pytest

from quadrant import vocabulary
from quadrant.check import Checker, CheckOptions, CheckRequest, OtherStudy
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.models.presets import MODELS_DIR
from quadrant.reliance import CONTENT_FREE, REFERENCES, Reliance, quadrant

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


def test_a_study_out_of_scope_is_never_a_plain_or_green_quadrant(checkers):
    from pydicom.data import get_testdata_file

    checker = Checker(checkers["demo"].loaded, options=CheckOptions(scope="any"))
    v = checker.check(load_study(get_testdata_file("CT_small.dcm")), "Is there cardiomegaly?")
    assert not v.in_scope
    assert vocabulary.title(v) == vocabulary.OUT_OF_SCOPE
    assert vocabulary.verdict_tone(v) == "grey" != vocabulary.tone(v.quadrant)
    assert vocabulary.advice(v) == vocabulary.OUT_OF_SCOPE_ADVICE


# -- a study compared with another labelled study (the example: a correct 'no' on a normal heart) --------


@pytest.fixture(scope="module")
def against_studies(checkers):
    """consolidation.png asked "Is there cardiomegaly?" (label no): against a study with cardiomegaly (opposite)
    and against the normal study (same-label), by the reader and by the shortcut."""
    study = load_study(SAMPLES / "consolidation.png")
    others = {"opposite": OtherStudy(load_study(SAMPLES / "cardiomegaly-effusion.png"), "cardiomegaly-effusion", "yes"),
              "same-label": OtherStudy(load_study(SAMPLES / "normal.png"), "normal", "no")}
    verdicts = {}
    for model, checker in checkers.items():
        for mode, other in others.items():
            judge = Checker(checker.loaded, options=CheckOptions(reliance=Reliance(reference=mode)))
            request = CheckRequest(study, "Is there cardiomegaly?", label="no", other_study=other)
            (verdicts[(model, mode)],) = judge.check_many([request])
    return verdicts


def test_every_reference_has_words_and_the_caveat_points_at_one_that_exists():
    assert set(vocabulary.REFERENCES) == set(REFERENCES)
    assert vocabulary.CONTENT_FREE == set(CONTENT_FREE)
    assert "--reference opposite" in vocabulary.NO_CAVEAT and "opposite" in REFERENCES
    assert "--reference opposite" in vocabulary.DATASET_NO_CAVEAT


def test_a_correct_no_against_an_opposite_study_is_judged_by_it_and_has_no_caveat(verdicts, against_studies):
    blank, v = verdicts["dangerous-no"], against_studies[("demo", "opposite")]
    assert blank.quadrant == "Dangerous" and v.answer == blank.answer == "no" and v.correct
    assert v.quadrant == "Ideal" and v.content_free_reliant is False  # the blank image's call, kept beside
    other = "another study of this dataset whose label is the opposite (cardiomegaly-effusion)"
    assert vocabulary.compared_with(v) == other
    assert vocabulary.meaning(v) == f"Every phrasing gave the same answer, and the study's image moved it, compared with {other}."
    assert vocabulary.decided_by(v) == (
        f"Decided by comparing the study with {other}: the chance of \u201cyes\u201d was {v.prompts[0].p_yes:.2f} "
        f"with the study and {v.counterfactual.p_yes:.2f} with the other study, so the study's image turned the "
        "answer round (a flip always counts).")
    assert vocabulary.advice(v) == vocabulary.ADVICE["Ideal"]


def test_a_shortcut_unmoved_by_an_opposite_study_is_dangerous_without_the_excuse(against_studies):
    v = against_studies[("demo-shortcut", "opposite")]
    assert v.quadrant == "Dangerous" and v.answer == "no" and not vocabulary.needs_no_caveat(v)
    text = vocabulary.meaning(v)
    assert text.endswith("but the study's image did not move it, compared with another study of this dataset whose "
                         "label is the opposite (cardiomegaly-effusion).")
    assert vocabulary.NO_CAVEAT not in text and not re.search(r"without looking|did not look|text alone", text)
    relative = v.shifts["relative_counterfactual"]
    assert f"by {relative:.0%} of its size, less than the 20%" in vocabulary.decided_by(v)


def test_a_same_label_run_says_it_is_a_control(against_studies):
    for model in ("demo", "demo-shortcut"):
        v = against_studies[(model, "same-label")]
        assert vocabulary.meaning(v).endswith(vocabulary.CONTROL_NOTE)
        assert vocabulary.advice(v) == vocabulary.CONTROL_ADVICE
        assert "another study of this dataset with the same label (normal)" in vocabulary.meaning(v)


def test_a_run_level_note_for_each_comparison():
    assert vocabulary.dataset_note({"rule": "content", "reference": "blank"}) == vocabulary.DATASET_NO_CAVEAT
    assert vocabulary.dataset_note({"rule": "content", "reference": "opposite"}) is None
    assert vocabulary.dataset_note({"rule": "content", "reference": "same-label"}) == vocabulary.CONTROL_NOTE
    assert vocabulary.dataset_note({"rule": "flip", "reference": "blank"}) is None
    assert vocabulary.reference_name({"rule": "flip", "reference": "blank"}) == vocabulary.WITHOUT_IMAGE


def test_what_was_judged_is_named_by_facts_never_by_an_identifier(verdicts):
    v = verdicts["dangerous-yes"]
    fingerprint = v.model["fingerprint"].removeprefix("sha256:")
    assert vocabulary.model_version(v.model) == fingerprint[:12]
    assert vocabulary.model_line(v.model) == f"demo-shortcut, version {fingerprint[:12]}"
    assert vocabulary.model_version({"name": "x"}) == "unknown"
    assert vocabulary.study_line(v.image, "2026-12-03 10:00:00 UTC") == (
        f"PNG, 256 x 256 pixels, image hash {v.image['sha256'][:12]}, uploaded 2026-12-03 10:00:00 UTC")


def test_rows_and_comparisons_in_the_readers_words(verdicts):
    assert [vocabulary.as_question_reads(a, inv) for a, inv in
            (("yes", True), ("no", True), ("yes", False), ("unclear", True))] == ["no", "yes", "yes", "unclear"]
    v = verdicts["dangerous-no"]
    assert vocabulary.asked(v.text_only) == "with no image at all"
    assert vocabulary.asked(v.content_free) == "with a blank mid-gray image of the same size"
    assert vocabulary.deciding(v) == "content_free"
    assert vocabulary.evidence_legend("no") == ("supports the answer \u201cno\u201d", "argues against it")
    assert vocabulary.evidence_key("no").startswith("Red cells support the answer \u201cno\u201d")


def test_a_verdict_out_of_scope_is_never_worded_as_a_quadrant(verdicts):
    from dataclasses import replace

    v = verdicts["ideal-yes"]
    out = replace(v, scope={"in_scope": False, "reasons": ["a CT study, not a chest radiograph"]})
    assert not out.in_scope and v.in_scope
    assert vocabulary.title(out) == vocabulary.OUT_OF_SCOPE and "Ideal" not in vocabulary.title(out)
    assert vocabulary.verdict_tone(out) == "grey" and vocabulary.verdict_tone(v) == "green"
    assert vocabulary.advice(out) == vocabulary.OUT_OF_SCOPE_ADVICE
    assert "(a CT study, not a chest radiograph)" in vocabulary.scope_line(out)
