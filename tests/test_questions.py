"""Questions as clinicians ask them: the acceptance rule on a corpus of real-world phrasings, K faithful and
accepted paraphrases for every accepted question, and the grammar of every bank entry and rewrite rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quadrant.bank import load_bank
from quadrant.errors import QuestionError
from quadrant.paraphrase_model import faithfulness_problem
from quadrant.paraphrases import asks_absence, paraphrase_set, qualifiers, rule_paraphrases
from quadrant.questions import key, tokens, validate_paraphrase, validate_question
from quadrant.rewrites import core_question, fix_articles, frames, guess_plural, pluralize, subject, substitute, templates

CORPUS = json.loads((Path(__file__).parent / "data" / "questions_corpus.json").read_text(encoding="utf-8"))
ACCEPTED = CORPUS["accepted"]
REFUSED = [(r["text"], r["why"]) for r in CORPUS["refused"]]
OURS = {"bank", "rewrite", "frame"}


def test_the_corpus_is_big_enough():
    assert len(ACCEPTED) >= 60 and len(REFUSED) >= 15
    assert len({key(q) for q in ACCEPTED}) == len(ACCEPTED)


@pytest.mark.parametrize("question", ACCEPTED)
def test_every_real_world_yes_no_question_is_accepted_with_k_distinct_accepted_paraphrases(question):
    q = validate_question(question)
    out = paraphrase_set(question)
    assert len(out) == 6 and out[0].text == q and out[0].source == "question"
    assert len({key(p.text) for p in out}) == 6, "paraphrases must differ from the question and each other"
    for p in out[1:]:
        assert validate_paraphrase(p) == p  # Quadrant's own paraphrases pass its own rule
        validate_question(p.text)
        assert p.source in OURS


def _is_bank_absence_phrasing(question: str) -> bool:
    bank = load_bank()
    m = bank.match(tokens(core_question(question)))
    inverted = {key(p.text) for p in bank.findings[m.finding].phrasings if p.inverted} if m else set()
    return key(core_question(question)) in inverted


@pytest.mark.parametrize("question", ACCEPTED)
def test_rule_paraphrases_ask_the_same_thing(question):
    """Every rule-made paraphrase keeps the finding, its qualifiers and the polarity and adds no finding or
    content word; an inverted one (a bank presence phrasing for a bank absence question) flips polarity."""
    for p in paraphrase_set(question)[1:]:
        if p.inverted:
            assert asks_absence(p.text) != asks_absence(question)
        elif not _is_bank_absence_phrasing(question):  # else the bank's other absence phrasings, by design
            assert faithfulness_problem(question, p.text) is None, (p.text, faithfulness_problem(question, p.text))


@pytest.mark.parametrize("question,why", REFUSED)
def test_non_yes_no_questions_are_refused_with_one_line_naming_why(question, why):
    with pytest.raises(QuestionError) as info:
        validate_question(question)
    message = str(info.value)
    assert why in message and "\n" not in message
    assert "e.g." in message or "on one line" in message  # a fix is shown


def test_over_long_questions_are_refused():
    with pytest.raises(QuestionError, match="301 characters long, over the limit of 300: shorten it"):
        validate_question("Is there " + "a" * 291 + "?")


@pytest.mark.parametrize(
    "question,fix",
    [
        ("There is a pleural effusion.", "'There is a pleural effusion?'"),
        ("Pleural effusion", "'Pleural effusion?'"),
        ("Is there an effusion, and how large is it?", "'Is there an effusion?'"),
        ("Is there a pneumothorax? Describe its size.", "'Is there a pneumothorax?'"),
        ("There is a pleural effusion;", "'There is a pleural effusion?'"),
    ],
)
def test_refusals_show_a_fix_in_the_users_own_words(question, fix):
    with pytest.raises(QuestionError, match="e.g. " + fix.replace("?", "\\?")):
        validate_question(question)


@pytest.mark.parametrize("question", [
    "胸腔积液吗？",  # Chinese, the full-width mark its keyboards type
    "胸水はありますか？",  # Japanese
    "هل يوجد انصباب جنبي؟",  # Arabic
    "Υπάρχει πλευριτική συλλογή;",  # Greek, as its keyboards type the mark
    "Υπάρχει πλευριτική συλλογή\u037e",  # Greek, the mark's own code point
])
def test_a_question_ended_by_another_scripts_question_mark_is_a_question(question):
    """These were refused as statements, with the fix of adding a '?' after the mark they end in; a question in
    another language is then asked with the user's own phrasings (`quadrant.language`)."""
    assert validate_question(question) == question


# ------------------------------------------------------------------------------------------- faithfulness
@pytest.mark.parametrize(
    "question,wrong",
    [
        ("Are the lungs hyperinflated?", "COPD"),  # a sign is not the disease
        ("Is there a small left pleural effusion?", None),
        ("Is the NG tube in the stomach?", None),
    ],
)
def test_paraphrases_never_replace_the_finding(question, wrong):
    out = paraphrase_set(question, k=10)
    finding = load_bank().match(tokens(core_question(question))).finding
    for p in out[1:]:
        assert load_bank().match(tokens(core_question(p.text))).finding == finding, p.text
        if wrong:
            assert wrong not in p.text


def test_heart_failure_keeps_its_grammar():
    out = [p.text for p in paraphrase_set("Are there signs of heart failure?", k=12)]
    assert "Is heart failure present?" in out and "Is heart failure seen?" in out
    assert not any(t.startswith("Are heart failure") for t in out)


@pytest.mark.parametrize(
    "question,kept",
    [
        ("Is there a small left pleural effusion?", ["small", "left"]),
        ("Are there bilateral pleural effusions?", ["bilateral"]),
        ("Is there a new right pneumothorax compared with the prior study?", ["new", "right", "prior"]),
        ("Has the effusion resolved?", ["resolved"]),
        ("Is there any consolidation in the right lower lobe?", ["right", "lower", "lobe"]),
        ("Small left effusion?", ["small", "left"]),
        ("Is the ETT 5 cm above the carina?", ["5", "cm", "above", "carina"]),
    ],
)
def test_qualifiers_survive_every_paraphrase(question, kept):
    assert set(kept) <= set(qualifiers(question)) | {"resolved"}
    for p in paraphrase_set(question, k=10)[1:]:
        assert set(kept) <= set(tokens(p.text)), p.text


# ------------------------------------------------------------------------------------------------ grammar
def test_templates_agree_with_singular_and_plural_findings():
    assert templates("a pleural effusion", False)[:6] == [
        "Is a pleural effusion present?",
        "Does this radiograph show a pleural effusion?",
        "Is there evidence of a pleural effusion?",
        "Can you see a pleural effusion on this image?",
        "Is a pleural effusion seen?",
        "Does the image demonstrate a pleural effusion?",
    ]
    assert templates("support devices", True)[:6] == [
        "Are support devices present?",
        "Does this radiograph show support devices?",
        "Is there evidence of support devices?",
        "Can you see support devices on this image?",
        "Are support devices seen?",
        "Does the image demonstrate support devices?",
    ]
    assert templates("free air under the diaphragm", False) == [  # a tailed noun phrase only ends a question
        "Is there free air under the diaphragm?",
        "Does this radiograph show free air under the diaphragm?",
        "Is there evidence of free air under the diaphragm?",
        "Can you see free air under the diaphragm?",
        "Does the image demonstrate free air under the diaphragm?",
        "Does this study show free air under the diaphragm?",
        "Are there signs of free air under the diaphragm?",
    ]


@pytest.mark.parametrize("name", load_bank().names)
def test_every_bank_entry_makes_grammatical_templates(name):
    finding = load_bank().findings[name]
    if finding.term is None:
        return
    be = "Are" if finding.plural else "Is"
    wrong = "Is" if finding.plural else "Are"
    for text in templates(finding.term, finding.plural):
        validate_question(text)
        assert not text.startswith(f"{wrong} {finding.term} "), text
        assert finding.term in text
    made = templates(finding.term, finding.plural)
    assert f"{be} {finding.term} present?" in made or f"{be} there {finding.term}?" in made


@pytest.mark.parametrize("name", [n for n in load_bank().names if len(load_bank().findings[n].synonyms) > 1])
def test_every_bank_synonym_keeps_qualifiers_number_and_articles(name):
    synonyms = load_bank().findings[name].synonyms
    first = synonyms[0]
    singular = fix_articles(f"Is there a small left {first}?")
    for out in substitute(singular, tokens(first), synonyms):
        validate_question(out)
        assert out.startswith("Is there a small left "), out
    bare = fix_articles(f"Is there a {first}?")
    for out, synonym in zip(substitute(bare, tokens(first), synonyms), synonyms[1:]):
        assert out == fix_articles(f"Is there a {synonym}?"), out
    plural = f"Are there bilateral {pluralize(first)}?"
    for out in substitute(plural, tokens(pluralize(first)), synonyms):
        assert out.startswith("Are there bilateral ") and guess_plural(out[len("Are there "):-1]), out


def test_synonyms_articles_and_plurals_by_example():
    syn = load_bank().findings["pleural effusion"].synonyms
    assert substitute("Is there a small left pleural effusion?", ("pleural", "effusion"), syn) == [
        "Is there a small left effusion?"]
    assert substitute("Is there an effusion?", ("effusion",), syn) == ["Is there a pleural effusion?"]
    assert substitute("Are there bilateral effusions?", ("effusions",), syn) == [
        "Are there bilateral pleural effusions?"]
    assert substitute("Is there a pericardial effusion?", ("effusion",), syn) == []  # another finding
    ng = load_bank().findings["nasogastric tube"].synonyms
    assert substitute("Is there a nasogastric tube?", ("nasogastric", "tube"), ng) == ["Is there an NG tube?"]
    assert substitute("Is the NG tube in the stomach?", ("ng", "tube"), ng) == [
        "Is the nasogastric tube in the stomach?"]
    assert pluralize("infiltrate") == "infiltrates" and pluralize("mass") == "masses"
    assert fix_articles("a ET tube, an pleural effusion, a effusion, an unilateral") == (
        "an ET tube, a pleural effusion, an effusion, a unilateral")


@pytest.mark.parametrize(
    "x,plural",
    [("a pleural effusion", False), ("rib fractures", True), ("heart failure", False), ("bullae", True),
     ("atelectasis", False), ("COPD", False), ("lines and tubes in satisfactory position", True),
     ("a pneumothorax", False), ("signs", True), ("free air under the diaphragm", False)],
)
def test_guess_plural(x, plural):
    assert guess_plural(x) is plural


@pytest.mark.parametrize(
    "question,expected",
    [
        ("Effusion?", ("an effusion", False)),  # a countable finding takes its article
        ("ETT 4 cm above the carina?", None),  # where a device is: asked as "Is the endotracheal tube ...?"
        ("Signs of consolidation?", ("consolidation", False)),
        ("Pleural effusion present?", ("a pleural effusion", False)),
        ("Bilateral infiltrates?", ("bilateral infiltrates", True)),
        ("Are there signs of heart failure?", ("heart failure", False)),
        ("Are there any rib fractures?", ("any rib fractures", True)),
        ("Does the patient have a chest drain?", ("a chest drain", False)),
        ("Any focal consolidation?", ("any focal consolidation", False)),
        ("Tube well positioned?", None),
        ("Is the trachea midline?", None),
    ],
)
def test_subject_of_each_shape(question, expected):
    assert subject(core_question(question)) == expected


@pytest.mark.parametrize(
    "question,core",
    [
        ("Based on this chest X-ray, is there a pleural effusion?", "Is there a pleural effusion?"),
        ("Yes or no: is there a pneumothorax?", "Is there a pneumothorax?"),
        ("Is there a pacemaker, yes or no?", "Is there a pacemaker?"),
        ("Would you say there is cardiomegaly?", "Is there cardiomegaly?"),
        ("Do you think the heart is enlarged?", "Is the heart enlarged?"),
        ("Tell me whether there is an effusion.", "Is there an effusion?"),
        ("There is an effusion?", "Is there an effusion?"),
        ("In the left lung, is there consolidation?", "In the left lung, is there consolidation?"),
        ("Q: effusion?", "Effusion?"),
    ],
)
def test_core_question_takes_off_only_what_does_not_change_the_meaning(question, core):
    assert core_question(question) == core


def test_frames_fit_full_questions_and_shorthand():
    assert frames("Is the trachea midline?")[:3] == [
        "Based on this radiograph, is the trachea midline?",
        "Looking at this image, is the trachea midline?",
        "Yes or no: is the trachea midline?",
    ]
    assert frames("Is the ETT in place?")[0] == "Based on this radiograph, is the ETT in place?"
    assert frames("Tube well positioned?")[0] == "Based on this radiograph: tube well positioned?"
    for text in frames("Is the trachea midline?") + frames("Tube well positioned?"):
        validate_question(text)
        assert core_question(text) in ("Is the trachea midline?", "Tube well positioned?")


def test_every_rule_candidate_is_accepted_for_the_whole_corpus():
    for question in ACCEPTED:
        for p in rule_paraphrases(question):
            validate_question(p.text)


def test_verdicts_record_each_prompts_source_and_old_lines_without_it_still_read(study_png, tiny_model, capsys):
    from quadrant.cli.main import main
    from quadrant.verdict import Verdict

    assert main(["check", "--image", study_png, "--question", "Is the trachea midline?", "--json",
                 "--model", tiny_model("llava"), "--paraphrase", "Is the trachea central?",
                 "--paraphrase", "Is the trachea in the midline?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1
    assert [p["source"] for p in data["prompts"]] == ["question", "user", "user"]
    assert Verdict.from_json(data).to_json() == data
    old = json.loads(json.dumps(data))
    for prompt in old["prompts"]:
        del prompt["source"]
    assert [p.source for p in Verdict.from_json(old).prompts] == [None, None, None]
