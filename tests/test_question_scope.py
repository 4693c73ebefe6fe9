"""Question scope: what is refused (wh-questions in every spelling, either/or, requests, markup, code, links,
another language with no phrasings of the user's own, K < 2, repeated paraphrases) and what Quadrant's
paraphrases now do to accepted ones (abbreviations written out, "I'm" kept, misspelt findings corrected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quadrant.bank import load_bank
from quadrant.check import CheckOptions
from quadrant.cli.main import main
from quadrant.errors import OptionError, ParaphraseError, QuestionError
from quadrant.language import identify, known_english_words
from quadrant.paraphrases import Phrasing, paraphrase_plan, paraphrase_set, parse_paraphrase_text
from quadrant.questions import key, validate_question

LANGUAGES = json.loads((Path(__file__).parent / "data" / "languages.json").read_text(encoding="utf-8"))
CORPUS = json.loads((Path(__file__).parent / "data" / "questions_corpus.json").read_text(encoding="utf-8"))


def refusal(question: str) -> str:
    with pytest.raises(QuestionError) as info:
        validate_question(question)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- not yes/no ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("question, why, fix", [
    ("What's the most likely diagnosis?", "'what' question", "'Is this chest X-ray normal?' (one finding at a time)"),
    ("What\u2019s the ETT position?", "'what' question", "'Is the endotracheal tube in a satisfactory position?'"),
    ("Where's the NG tube?", "'where' question", "'Is the nasogastric tube in a satisfactory position?'"),
    ("Where is the chest tube?", "'where' question", "'Is the chest tube in a satisfactory position?'"),
    ("How's the heart size?", "'how' question", "'Is there cardiomegaly?'"),
    ("Whats the diagnosis", "'what' question", "one finding at a time"),
    ("Who's the patient?", "'who' question", "one finding at a time"),
    ("Why's the heart big?", "'why' question", "one finding at a time"),
    ("Which side is the effusion on?", "'which' question", "'Is there a pleural effusion?'"),
    ("And where's the pneumothorax?", "'where' question", "'Is there a pneumothorax?'"),
    ("Is the effusion on which side?", "'which' question inside it", "'Is there a pleural effusion?'"),
    ("Can you tell me what lines and tubes are present?", "'what' question inside it",
     "one device at a time, e.g. 'Is there an endotracheal tube?'"),
    ("Based on this film, what's the most likely diagnosis?", "'what' question", "one finding at a time"),
])
def test_wh_questions_in_every_spelling_are_refused_with_a_fix_that_fits(question, why, fix):
    message = refusal(question)
    assert f"must be answerable with yes or no (got a {why}" in message and fix in message


@pytest.mark.parametrize("question, separate", [
    ("Is it pneumonia or atelectasis?", ["Is it pneumonia?", "Is it atelectasis?"]),
    ("Left or right effusion?", ["Left effusion?", "Right effusion?"]),
    ("Is the effusion small, moderate or large?",
     ["Is the effusion small?", "Is the effusion moderate?", "Is the effusion large?"]),
    ("Is this an AP or PA film?", ["Is this an AP film?", "Is this a PA film?"]),
    ("Is there a pleural effusion or a pneumothorax?", ["Is there a pleural effusion?", "Is there a pneumothorax?"]),
    ("Is there pulmonary edema or pneumonia?", ["Is there pulmonary edema?", "Is there pneumonia?"]),
    ("Is the heart enlarged or normal?", ["Is the heart enlarged?", "Is the heart normal?"]),
    ("Pneumonia vs atelectasis?", ["Pneumonia?", "Atelectasis?"]),
    ("AP/PA film?", ["AP film?", "PA film?"]),
])
def test_either_or_questions_are_refused_naming_the_separate_yes_no_questions(question, separate):
    message = refusal(question)
    assert "(got an either/or question): ask one yes/no question for each, e.g. " in message
    assert message.endswith(" and ".join(repr(q) for q in separate))


@pytest.mark.parametrize("question", [
    "Yes or no: is there a pneumothorax?", "Is there a pacemaker, yes or no?", "Is there an effusion or not?",
    "Any effusion or pneumothorax?", "Is there no effusion or pneumothorax?", "Is there effusion and/or consolidation?",
    "Are there any lines, tubes or other support devices?", "Is there an effusion (yes/no)?",
    "Is the ETT s/p repositioning in good position?",
    "Do you see what looks like a pneumothorax?",  # "what" as "the thing that": still a yes/no question
])
def test_an_or_that_asks_for_yes_or_no_or_for_any_of_several_stays_accepted(question):
    assert validate_question(question) == question
    assert len(paraphrase_set(question)) == 6


@pytest.mark.parametrize("question, asked", [
    ("Is there a pleural effusion? Is there a pneumothorax?",
     ["Is there a pleural effusion?", "Is there a pneumothorax?"]),
    ("Effusion? Pneumothorax?", ["Effusion?", "Pneumothorax?"]),
    ("Is there a pleural effusion? And a pneumothorax?", ["Is there a pleural effusion?", "And a pneumothorax?"]),
    ("Is there a pleural effusion. Is there a pneumothorax?",
     ["Is there a pleural effusion.", "Is there a pneumothorax?"]),
    ("Is there a pleural effusion; is there a pneumothorax?",
     ["Is there a pleural effusion;", "is there a pneumothorax?"]),
    ("Is there cardiomegaly? If so, is it severe?", ["Is there cardiomegaly?", "If so, is it severe?"]),
    ("Is there an effusion? Is there an effusion?", ["Is there an effusion?", "Is there an effusion?"]),
    ("\u00bfHay derrame pleural? \u00bfY neumot\u00f3rax?", ["\u00bfHay derrame pleural?", "\u00bfY neumot\u00f3rax?"]),
])
def test_two_questions_in_one_are_refused_naming_each(question, asked):
    """One answer cannot answer two questions, and their phrasings came back as word salad ("Is a pleural
    effusion? Is there a pneumothorax present?"); the fix is the first question, ending in '?'."""
    message = refusal(question)
    named = " and ".join(repr(q) for q in asked)
    first = asked[0].rstrip(".;") + ("" if asked[0].endswith("?") else "?")
    assert f"must be one yes/no question (got 2: {named}): ask each on its own, e.g. {first!r}" in message


@pytest.mark.parametrize("question, other, fix", [
    ("Post-op day 1. Any pneumothorax?", "Post-op day 1.", "Any pneumothorax?"),
    ("Patient with dyspnea. Is there a pleural effusion?", "Patient with dyspnea.", "Is there a pleural effusion?"),
    ("Is there a pleural effusion? Patient is post-op.", "Patient is post-op.", "Is there a pleural effusion?"),
    ("Is there a pleural effusion? Known CHF.", "Known CHF.", "Is there a pleural effusion?"),
])
def test_a_sentence_of_context_or_a_remark_beside_the_question_is_refused(question, other, fix):
    """Context ("Post-op day 1.") is no part of what the phrasings ask again ("Is a post-op day 1. Any
    pneumothorax present?" was one of them); the fix is the question alone."""
    assert refusal(question).endswith(f"(got another sentence, {other!r}): leave context and remarks out, e.g. {fix!r}")


@pytest.mark.parametrize("question, core", [
    ("Is there a cervical rib? Thanks.", "Is there a cervical rib?"),
    ("Is there a cervical rib? Thank you!", "Is there a cervical rib?"),
    ("Is there a cervical rib, please?", "Is there a cervical rib?"),
    ("Is there a cervical rib? Please answer.", "Is there a cervical rib?"),
    ("Is there a cervical rib? Yes or no, thanks.", "Is there a cervical rib?"),
    ("Cervical rib? Yes/no", "Cervical rib?"),
    ("Is there a pleural effusion? Thanks in advance.", "Is there a pleural effusion?"),
])
def test_a_closing_courtesy_or_yes_no_tag_is_accepted_and_left_out_of_the_paraphrases(question, core):
    """Not a second sentence: prompt 0 is the question as typed, and no paraphrase carries the courtesy along
    ("Is a cervical rib? Thanks present?" was one)."""
    assert validate_question(question) == question
    phrasings = [p.text for p in paraphrase_set(question)]
    assert phrasings[0] == question and core in phrasings[1:]
    for text in phrasings[1:]:
        assert not any(word in text.lower() for word in ("thank", "please", "yes/no", "yes or no,"))
        assert validate_question(text) == text


@pytest.mark.parametrize("question, core", [
    ("?PTX", "Pneumothorax?"), ("?pneumothorax", "Is there a pneumothorax?"),
    ("? pneumothorax", "Is there a pneumothorax?"), ("??cervical rib", "Is cervical rib present?"),
])
def test_a_request_forms_query_mark_before_the_finding_asks_about_it(question, core):
    """"?PTX" is how a request form asks "pneumothorax?"; it was refused as a statement, with the fix '?PTX?'."""
    assert validate_question(question) == question
    phrasings = [p.text for p in paraphrase_set(question)]
    assert phrasings[0] == question and core in phrasings[1:]
    assert all(not text.startswith("?") and validate_question(text) == text for text in phrasings[1:])


@pytest.mark.parametrize("question, order, fix", [
    ("r/o PTX", "r/o", "'Is there a pneumothorax?'"), ("R/O pneumothorax?", "r/o", "'Is there a pneumothorax?'"),
    ("Rule out pneumothorax?", "rule out", "'Is there a pneumothorax?'"),
    ("Eval for PNA?", "eval", "'Is there pneumonia?'"),
])
def test_a_work_up_order_is_refused_as_an_instruction_with_the_findings_question(question, order, fix):
    """As "Evaluate for pneumothorax?" is; their rewrites were word salad ("Is a r/O pneumothorax present?")."""
    assert f"(got an instruction, '{order}'): ask e.g. {fix}" in refusal(question)


@pytest.mark.parametrize("question", [
    "Is the ETT approx. 5 cm above the carina?", "Is there a 2.5 cm nodule?", "Q. Is there an effusion?",
    "Is there a PICC in the R. arm?", "Is there an effusion (e.g. blunting)?", "Is there an effusion?? ",
    "Is the pt. intubated?", "Dr. Smith asks: is there a pneumothorax?", "Is there... an effusion?",
])
def test_a_full_stop_inside_an_abbreviation_a_number_an_initial_or_an_ellipsis_ends_no_sentence(question):
    assert validate_question(question.strip()) == question.strip()


@pytest.mark.parametrize("question, what, fix", [
    ("<img src=x onerror=alert(1)>?", "markup", "e.g. 'Is there a pleural effusion?'"),
    ("Is there <b>effusion</b>?", "markup", "e.g. 'Is there effusion?'"),
    ("Is there an effusion? https://example.com/x", "a link", "e.g. 'Is there an effusion?'"),
    ("Is there an effusion? www.example.org", "a link", "e.g. 'Is there an effusion?'"),
    ("alert(1)?", "code", "e.g. 'Is there a pleural effusion?'"),
    ("Is there effusion {{7*7}}?", "markup", "plain words"),
    ("Is `rm -rf` an effusion?", "code", "plain words"),
    ("Is CTR = 0.6?", "a formula", "e.g. 'Is CTR 0.6?'"),
    ("Is x^2 greater than 4?", "a formula", "plain words"),
])
def test_markup_code_links_and_formulas_are_refused(question, what, fix):
    message = refusal(question)
    assert f"contains {what} (" in message and "write the question in plain words" in message and fix in message


def test_the_same_rule_holds_for_every_paraphrase():
    for bad, why in (("Is it pneumonia or atelectasis?", "either/or"), ("What's shown?", "'what' question"),
                     ("<i>Effusion?</i>", "markup")):
        with pytest.raises(ParaphraseError, match=why):
            parse_paraphrase_text(f"Is there fluid?\n{bad}")
    for name, finding in load_bank().findings.items():  # the bank's own phrasings pass the new rules
        for phrasing in finding.phrasings:
            validate_question(phrasing.text)


def test_every_english_yes_no_question_of_the_corpus_is_still_accepted():
    for question in CORPUS["accepted"]:
        plan = paraphrase_plan(question)
        assert plan.language == "English" and len(plan.phrasings) == 6, question


# -- languages -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["measurement", "held_out"])
def test_the_language_rule_refuses_what_the_readme_says_and_never_english(part):
    known = known_english_words()
    groups = dict(LANGUAGES[part])
    if part == "measurement":
        groups = {"en_corpus": CORPUS["accepted"], **groups}
    refused = {group: sum(not identify(q, known).english for q in questions) for group, questions in groups.items()}
    assert refused == LANGUAGES["refused"][part]
    assert all(count == 0 for group, count in refused.items() if group.startswith("en"))


@pytest.mark.parametrize("question, language", [
    ("¿Hay derrame pleural?", "Spanish"), ("Gibt es einen Pleuraerguss?", "German"),
    ("Y a-t-il un épanchement pleural?", "French"), ("Есть ли плевральный выпот?", "Cyrillic script"),
    ("胸腔积液吗?", "CJK script"),
])
def test_another_language_without_phrasings_is_refused_saying_so(question, language):
    with pytest.raises(QuestionError) as info:
        paraphrase_set(question)
    message = str(info.value)
    assert message.startswith(f"the question looks like {language}, and Quadrant writes its paraphrases in English")
    assert "--paraphrase" in message and "\n" not in message


def test_another_language_with_the_users_phrasings_is_used_as_given():
    own = [Phrasing("¿Se observa derrame pleural?"), Phrasing("¿Existe derrame pleural?")]
    out = paraphrase_set("¿Hay derrame pleural?", user=own)
    assert [p.text for p in out] == ["¿Hay derrame pleural?", *(p.text for p in own)]
    assert [p.source for p in out] == ["question", "user", "user"]


def test_a_bank_entry_serves_its_language_only_for_questions_it_covers(tmp_path):
    from test_bank import SPANISH

    path = tmp_path / "es.json"
    path.write_text(json.dumps(SPANISH), encoding="utf-8")
    bank = load_bank(path)
    plan = paraphrase_plan("¿Hay derrame pleural?", bank=bank)
    assert plan.language == "Spanish" and {p.source for p in plan.phrasings[1:]} == {"bank"}
    assert not any(word in p.text for p in plan.phrasings for word in ("Is ", "present", "Does"))
    with pytest.raises(QuestionError, match="looks like Spanish"):  # "izquierdo" is not the entry's word
        paraphrase_plan("¿Hay un derrame pleural izquierdo pequeño?", bank=bank)


# -- K and duplicates ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", ["0", "1"])
def test_k_below_2_is_refused_on_every_command_before_a_model_loads(tmp_path, study_png, capsys, k):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,question\n{study_png},Is there an effusion?\n")
    for argv in (["check", "--image", study_png, "--question", "Effusion?"],
                 ["evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "out")],
                 ["app", "--port", "1"]):
        assert main([*argv, "-k", k, "--model", str(tmp_path / "no-such-model")]) == 2
        err = capsys.readouterr().err
        assert f"K must be a whole number >= 2, got {k}" in err and len(err.splitlines()) == 1, argv
    with pytest.raises(OptionError, match=">= 2"):
        CheckOptions(k=int(k))


@pytest.mark.parametrize("texts, problem", [
    (["is there a PLEURAL effusion", "Is there fluid?"], "paraphrase 1 .* repeats the question"),
    (["Is there fluid?", "IS THERE FLUID"], "paraphrase 2 .* repeats paraphrase 1"),
    (["Is there fluid?", "!is there  fluid ?"], "paraphrase 2 .* repeats paraphrase 1"),
    (["Is there fluid?"], "1 paraphrase given: give at least 2"),
])
def test_the_users_own_duplicates_and_single_paraphrases_are_refused(texts, problem):
    with pytest.raises(ParaphraseError, match=problem):
        paraphrase_set("Is there a pleural effusion?", user=parse_paraphrase_text("\n".join(texts)))


@pytest.mark.parametrize("question, texts, problem", [
    # another finding: the verdict would compare two questions (this pair once came back Ideal on `demo`)
    ("Is there a pleural effusion?", ["Is there a pneumothorax?", "Is there cardiomegaly?"],
     "paraphrase 1 .* asks about pneumothorax, not pleural effusion"),
    ("Is there consolidation?", ["Is there airspace opacity?", "Is there pneumonia?"], "paraphrase 2 .* pneumonia"),
    ("Is there an effusion with cardiomegaly?", ["Is there an effusion?", "Is there cardiomegaly with an effusion?"],
     "paraphrase 1 .* leaves out cardiomegaly"),
    # absence without the mark: its yes would count as a flip of the question's yes
    ("Is there a pleural effusion?", ["Is the pleural space free of fluid?", "Is an effusion absent?"],
     r"paraphrase 1 .* asks whether the finding is absent where the question asks whether it is present: .*inverted"),
    ("Has the pneumothorax resolved?", ["Is the pneumothorax gone?", "Is there still a pneumothorax?"],
     "paraphrase 2 .* asks whether the finding is present where the question asks whether it is absent"),
    ("Is there a pleural effusion?", ["Is there fluid around the lung?", "! Is pleural fluid present?"],
     "paraphrase 2 .* is marked inverted, but its yes means what the question's yes means"),
])
def test_the_users_own_phrasings_of_another_question_are_refused(question, texts, problem):
    with pytest.raises(ParaphraseError, match=problem):
        paraphrase_set(question, user=parse_paraphrase_text("\n".join(texts)))


@pytest.mark.parametrize("question, texts", [
    ("Is there a pleural effusion?", ["Is there fluid around the lung?", "Is there a hydrothorax?"]),  # no bank word
    ("Is there a pleural effusion?", ["Any effusion?", "Is there pleural fluid blunting the costophrenic angles?"]),
    ("Is there a pleural effusion?", ["Is there a pleural effusion or not?", "[inverted] Can effusion be ruled out?"]),
    ("Is the heart size normal?", ["Is the heart not enlarged?", "! Is there cardiomegaly?"]),
    ("Is there any abnormality?", ["Is this chest normal?", "Is anything abnormal seen?"]),  # "no finding": trusted
    ("Is the ET tube in good position?", ["Is the endotracheal tube well positioned?", "Is the ETT correctly placed?"]),
    ("¿Hay derrame pleural?", ["¿Existe derrame pleural?", "¿Se observa derrame pleural?"]),
])
def test_the_users_own_phrasings_of_the_same_question_are_used_as_given(question, texts):
    given = parse_paraphrase_text("\n".join(texts))
    assert paraphrase_set(question, user=given)[1:] == given


def test_generated_duplicates_are_dropped_and_replaced():
    for question in ("is there a pneumothorax", "IS THERE A PNEUMOTHORAX?", "Is there a pneumothorax ?"):
        out = paraphrase_set(question, k=8)
        assert len({key(p.text) for p in out}) == 9


# -- what the paraphrases now do -----------------------------------------------------------------------------

def test_abbreviations_are_written_out_in_the_paraphrases():
    texts = [p.text for p in paraphrase_set("Consolidation RLL?")]
    assert texts[0] == "Consolidation RLL?" and "Is there consolidation in the right lower lobe?" in texts
    assert not any("RLL" in t for t in texts[1:]) and "Is consolidation RLL present?" not in texts
    assert [p.text for p in paraphrase_set("PTX?")][1:3] == ["Pneumothorax?", "Is there a pneumothorax?"]
    texts = [p.text for p in paraphrase_set("CVC tip in SVC?")]
    assert all("superior vena cava" in t for t in texts[1:]), texts


def test_frames_keep_i_and_im_capitalised():
    out = paraphrase_set("I'm just wondering, is there an effusion?")
    assert out[1].text == "Is there an effusion?"  # the frame says nothing: taken off
    assert not any("i'm" in p.text for p in out)
    out = paraphrase_set("I wonder: is the trachea midline?", k=8)
    assert not any(" i " in f" {p.text} " for p in out)


def test_misspelt_findings_are_corrected_in_the_paraphrases_with_a_note(tiny_model, study_png, capsys):
    plan = paraphrase_plan("is there cardiomegally")
    assert plan.phrasings[0].text == "is there cardiomegally"  # prompt 0 as typed
    assert not any("cardiomegally" in p.text for p in plan.phrasings[1:])
    assert plan.phrasings[1].text == "Is there cardiomegaly?"
    assert plan.warnings == ["'cardiomegally' read as 'cardiomegaly' (a bank finding's word): the paraphrases "
                             "spell it so; prompt 0 is asked as typed"]
    assert paraphrase_plan("Is there pneumonitis?").warnings == []  # a different finding, not a typo
    assert paraphrase_plan("Is there cardiomyopathy?").warnings == []
    assert main(["check", "--image", study_png, "--question", "Is there a pnuemothorax?", "--json", "-k", "2",
                 "--model", tiny_model("llava")]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert any(w.startswith("'pnuemothorax' read as 'pneumothorax'") for w in verdict["warnings"])
    assert any("not verified from a header" in w for w in verdict["warnings"])
