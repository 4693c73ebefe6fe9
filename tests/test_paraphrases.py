"""Questions, the paraphrase bank, paraphrase sets and paraphrase files."""

from __future__ import annotations

import json

import pytest

from quadrant.errors import InputError, OptionError, ParaphraseError, QuestionError
from quadrant.bank import load_bank
from quadrant.paraphrases import (
    FINDING_QUESTIONS,
    FINDINGS,
    MAX_PARAPHRASES,
    MAX_QUESTION_CHARS,
    Phrasing,
    asks_absence,
    bank_phrasings,
    find_finding,
    paraphrase_set,
    parse_paraphrase_text,
    phrasings_from_json,
    read_paraphrase_file,
    validate_paraphrase,
    validate_question,
)

CHEXPERT = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
]
PADCHEST = [
    "nodule", "mass", "hilar enlargement", "aortic elongation", "kyphosis", "scoliosis", "emphysema",
    "interstitial pattern", "copd signs", "calcified granuloma", "hemidiaphragm elevation",
    "costophrenic angle blunting", "pacemaker", "nasogastric tube", "endotracheal tube",
    "central venous catheter", "infiltrates", "tuberculosis", "hiatal hernia", "bronchiectasis",
]
ALL_PHRASINGS = [(f, p) for f in FINDINGS for p in bank_phrasings(f)]
# Words that narrow a finding; if the bank's own phrasings used them, a narrowed question would pass as plain.
QUALIFIERS = {
    "left", "right", "bilateral", "unilateral", "large", "small", "tiny", "massive", "new", "worsening",
    "worsened", "increased", "decreased", "improved", "unchanged", "tension", "loculated", "acute", "subtle",
    "mild", "moderate", "severe", "rib", "apical", "basal", "upper", "lower", "lobe",
}


def texts(phrasings):
    return [p.text for p in phrasings]


# ------------------------------------------------------------------------------------------------ the bank
def test_every_chexpert_label_and_the_padchest_ones_are_in_the_bank():
    for label in CHEXPERT + PADCHEST:
        assert label.lower() in FINDINGS, label
    assert all(name == name.lower() for name in FINDINGS)
    assert "No Finding".lower() in FINDINGS and FINDINGS == load_bank().names


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_has_enough_distinct_valid_phrasings(finding):
    phrasings = bank_phrasings(finding)
    plain = [p for p in phrasings if not p.inverted]
    inverted = [p for p in phrasings if p.inverted]
    assert len(plain) >= 6 and len(inverted) >= 1
    keys = [" ".join(p.text.lower().strip("?").split()) for p in phrasings]
    assert len(set(keys)) == len(keys), "phrasings of one finding must be distinct"
    for p in phrasings:
        assert validate_question(p.text) == p.text
    assert phrasings == plain + inverted, "non-inverted first"
    assert FINDING_QUESTIONS[finding] == plain[0].text


@pytest.mark.parametrize("finding,phrasing", ALL_PHRASINGS, ids=lambda v: getattr(v, "text", v))
def test_each_phrasing_names_its_own_finding_and_its_polarity(finding, phrasing):
    assert find_finding(phrasing.text) == finding
    assert asks_absence(phrasing.text) is phrasing.inverted


def test_no_bank_phrasing_narrows_its_finding():
    for finding, phrasing in ALL_PHRASINGS:
        words = set(phrasing.text.lower().replace("?", " ").replace(",", " ").split())
        assert not words & QUALIFIERS, (finding, phrasing.text)


def test_bank_phrasings_names_and_errors():
    assert bank_phrasings("Pleural Effusion") == bank_phrasings("pleural effusion")
    assert texts(bank_phrasings("pleural effusion"))[0] == "Is there a pleural effusion?"
    assert Phrasing("Can a pleural effusion be ruled out?", True) in bank_phrasings("pleural effusion")
    with pytest.raises(ParaphraseError, match="unknown finding 'pleurisy'.*pleural effusion"):
        bank_phrasings("pleurisy")


def test_no_finding_asks_about_a_normal_study():
    plain = texts(p for p in bank_phrasings("no finding") if not p.inverted)
    assert plain[0] == "Is this chest X-ray normal?"
    assert FINDING_QUESTIONS["no finding"] == "Is this chest X-ray normal?"
    inverted = texts(p for p in bank_phrasings("no finding") if p.inverted)
    assert "Is there any abnormality on this chest X-ray?" in inverted


# ------------------------------------------------------------------------------------------ finding matching
@pytest.mark.parametrize(
    "question,finding",
    [
        ("Is there a pleural effusion?", "pleural effusion"),
        ("IS THERE AN EFFUSION", "pleural effusion"),
        ("is there fluid in the pleural space?", "pleural effusion"),
        ("Is there a hydrothorax?", "pleural effusion"),
        ("Are there bilateral pleural effusions?", "pleural effusion"),
        # pleural effusion / pleural other / pleural thickening
        ("Is there pleural thickening?", "pleural thickening"),
        ("Is there a pleural abnormality other than an effusion?", "pleural other"),
        ("Are the costophrenic angles blunted by fluid?", "costophrenic angle blunting"),  # a sign, not the finding
        ("Are the costophrenic angles blunted?", "costophrenic angle blunting"),
        # lung lesion / nodule / mass / granuloma
        ("Is there a lung lesion?", "lung lesion"),
        ("Is there a lung nodule?", "nodule"),
        ("Is there a pulmonary nodule?", "nodule"),
        ("Is there a mass lesion?", "mass"),
        ("Is there a calcified nodule?", "nodule"),  # a calcified nodule need not be a granuloma
        ("Is there a nodular opacity?", "nodule"),
        # opacity family
        ("Is there a lung opacity?", "lung opacity"),
        ("Are there interstitial opacities?", "interstitial pattern"),
        ("Is there interstitial edema?", "edema"),
        ("Is there airspace consolidation?", "consolidation"),
        # heart and mediastinum
        ("Is the heart enlarged?", "cardiomegaly"),
        ("Is the cardiomediastinal silhouette enlarged?", "enlarged cardiomediastinum"),
        ("Is the mediastinum widened?", "widened mediastinum"),  # not the wider cardiomediastinum
        # devices
        ("Is there an NG tube?", "nasogastric tube"),
        ("Is the patient intubated?", "endotracheal tube"),
        ("Is there a central line?", "central venous catheter"),
        ("Are the lungs hyperinflated?", "hyperinflation"),  # a sign, not COPD
        ("Are there signs of COPD?", "copd signs"),
        ("Is there a pacemaker?", "pacemaker"),
        # no finding and PadChest label strings
        ("Is this chest X-ray normal?", "no finding"),
        ("normal", "no finding"),
        ("nsg tube", "nasogastric tube"),
        ("COPD signs", "copd signs"),
        ("Any evidence of TB?", "tuberculosis"),
    ],
)
def test_find_finding(question, finding):
    assert find_finding(question) == finding


@pytest.mark.parametrize(
    "question",
    ["Is there a chest tube?", "Is there free air under the diaphragm?", "Is the aorta calcified?", "", "?",
     "Is there a PICC line?",  # a PICC is one kind of central line: naming it "central venous catheter" widens it
     "Are there any lines or tubes?"],  # lines and tubes are some support devices, not all of them
)
def test_find_finding_none(question):
    assert find_finding(question) is None


def test_find_finding_matches_whole_words_only():
    assert find_finding("Is there a pneumothoraxes?") == "pneumothorax"  # plural allowed
    assert find_finding("Is there abnormality?") == "no finding"  # "normal" is not found inside "abnormal"
    assert asks_absence("Is there abnormality?")
    assert find_finding("Is there a massive shadow?") is None  # "mass" is not found inside "massive"


@pytest.mark.parametrize(
    "question,absent",
    [
        ("Can effusion be ruled out?", True),
        ("Is there no pneumothorax?", True),
        ("Isn't there a pneumothorax?", True),
        ("Is the heart size normal?", True),
        ("Are the lungs free of consolidation?", True),
        ("Is there any abnormality?", True),
        ("Is there a pneumothorax?", False),
        ("Is this chest X-ray normal?", False),
        ("Is there free air under the diaphragm?", False),
    ],
)
def test_asks_absence(question, absent):
    assert asks_absence(question) is absent


# ------------------------------------------------------------------------------------------ question checks
@pytest.mark.parametrize(
    "question",
    [
        "Is there a pleural effusion?",
        "  Is there a pleural effusion?  ",
        "Any pneumothorax?",
        "any pneumothorax",
        "Does the patient have pneumonia",
        "Can you see a fracture?",
        "Isn't there a pneumothorax?",
        "Should this be called cardiomegaly?",
        "Is " + "a" * (MAX_QUESTION_CHARS - 4) + "?",  # exactly the limit
    ],
)
def test_validate_question_accepts_yes_no_questions(question):
    assert validate_question(question) == question.strip()


@pytest.mark.parametrize(
    "question,problem",
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("Is " + "a" * (MAX_QUESTION_CHARS - 3) + "?", "301 characters long, over the limit of 300"),
        ("What is the diagnosis?", "got a 'what' question"),
        ("where is the effusion?", "got a 'where' question"),
        ("Which lung is affected?", "got a 'which' question"),
        ("How large is the effusion?", "got a 'how' question"),
        ("Describe the findings.", "got an instruction, 'describe'"),
        ("List the abnormalities", "got an instruction, 'list'"),
        ("There is a pleural effusion.", "got a statement"),
        ("Pleural effusion", "got a statement"),
        ("Is there\na pleural effusion?", "line break"),
        ("?", "no words"),
    ],
)
def test_validate_question_refuses(question, problem):
    with pytest.raises(QuestionError, match=problem) as info:
        validate_question(question)
    assert isinstance(info.value, InputError)
    assert any(advice in str(info.value) for advice in ("ask e.g. 'Is ", "shorten it", "on one line"))


def test_validate_question_refuses_non_text():
    with pytest.raises(QuestionError, match="must be text"):
        validate_question(None)


def test_validate_paraphrase():
    assert validate_paraphrase(Phrasing("  Is there an effusion? ", True)) == Phrasing("Is there an effusion?", True)
    same = Phrasing("Is there an effusion?")
    assert validate_paraphrase(same) is same
    for bad, problem in [("", "empty"), ("What is it?", "'what' question"), ("Is " + "a" * 400, "over the limit")]:
        with pytest.raises(ParaphraseError, match=problem):
            validate_paraphrase(Phrasing(bad))
    with pytest.raises(ParaphraseError, match="must be a Phrasing"):
        validate_paraphrase("Is there an effusion?")


def test_phrasing_type_checks_and_json():
    p = Phrasing("Can a pleural effusion be ruled out?", inverted=True)
    assert p.to_json() == {"text": "Can a pleural effusion be ruled out?", "inverted": True, "source": "user"}
    assert Phrasing.from_json(p.to_json()) == p
    assert Phrasing.from_json("Is there X?") == Phrasing("Is there X?", False)
    assert json.loads(json.dumps(Phrasing("Is there X?", source="bank").to_json())) == {
        "text": "Is there X?", "inverted": False, "source": "bank"}
    assert Phrasing.from_json({"text": "Is there X?", "source": "frame"}).source == "frame"
    assert Phrasing.from_json("Is there X?").source == "file"
    with pytest.raises(ParaphraseError, match="unknown paraphrase source 'gpt'"):
        Phrasing("Is there X?", source="gpt")
    with pytest.raises(ParaphraseError, match="'inverted' must be true or false"):
        Phrasing("Is there X?", inverted="yes")
    with pytest.raises(ParaphraseError, match="must be text"):
        Phrasing(3)


# ------------------------------------------------------------------------------------------ paraphrase sets
def test_bank_set_original_first_then_k_from_the_bank():
    out = paraphrase_set("Is there a pneumothorax?")
    assert len(out) == 6 and out[0] == Phrasing("Is there a pneumothorax?")
    plain = [p for p in bank_phrasings("pneumothorax") if not p.inverted]
    assert out[1:] == plain[1:6], "the bank's first phrasing equals the question and is skipped"
    assert not any(p.inverted for p in out)


def test_bank_set_skips_the_question_ignoring_case_and_punctuation():
    out = paraphrase_set("  is THERE a Pneumothorax  ")
    assert out[0].text == "is THERE a Pneumothorax"
    assert "Is there a pneumothorax?" not in texts(out)
    out = paraphrase_set("Does this chest X-ray show cardiomegaly")
    assert "Does this chest X-ray show cardiomegaly?" not in texts(out[1:])
    assert texts(out[1:3]) == ["Is there cardiomegaly?", "Is the heart enlarged?"]


def test_bank_set_for_a_question_worded_differently_keeps_the_first_k():
    out = paraphrase_set("Any pneumothorax?")
    plain = [p for p in bank_phrasings("pneumothorax") if not p.inverted]
    assert out[1:] == plain[:5]


@pytest.mark.parametrize("k", [2, 3, 5, 7, 12])
def test_k_option(k):
    out = paraphrase_set("Is there a pleural effusion?", k=k)
    assert len(out) == k + 1
    assert len({p.text.lower() for p in out}) == len(out)
    for p in out:
        validate_question(p.text)


def test_k_beyond_the_bank_is_topped_up_from_templates_and_frames_then_refused():
    out = paraphrase_set("Is there a pleural effusion?", k=12)
    assert "Is there evidence of a pleural effusion?" in texts(out)
    assert {p.source for p in out[1:]} == {"bank", "rewrite"}
    out = paraphrase_set("Is this chest X-ray normal?", k=9)  # 7 more bank phrasings, then frames
    assert [p.source for p in out[1:]] == ["bank"] * 7 + ["frame"] * 2
    with pytest.raises(ParaphraseError, match="fewer than K = 60: lower -k.*--paraphrase"):
        paraphrase_set("Is there a pleural effusion?", k=60)


@pytest.mark.parametrize("k", [-1, 0, 1, 2.5, "5", True, None])
def test_bad_k(k):
    """K >= 2: with no paraphrase a consistency verdict is an empty pass, with one it compares a single pair."""
    with pytest.raises(OptionError, match="K must be a whole number >= 2"):
        paraphrase_set("Is there a pleural effusion?", k=k)


def test_sets_are_deterministic():
    for q in ["Is there a pleural effusion?", "Is there a chest tube?", "Any pneumothorax?"]:
        assert paraphrase_set(q) == paraphrase_set(q)


def test_user_paraphrases_replace_the_bank_exactly():
    user = [Phrasing(" Is fluid seen in the pleural space? "), Phrasing("Can effusion be ruled out?", True)]
    out = paraphrase_set("Is there a pleural effusion?", user=user, k=1)  # K is Quadrant's own count only
    assert out == [
        Phrasing("Is there a pleural effusion?"),
        Phrasing("Is fluid seen in the pleural space?"),
        Phrasing("Can effusion be ruled out?", True),
    ]
    many = [Phrasing(f"Is there finding {i}?") for i in range(9)]
    assert paraphrase_set("Is there X?", user=many, k=2)[1:] == many, "no K cut for user paraphrases"
    # user paraphrases also serve a question the bank cannot
    two = [Phrasing("Is there an effusion?", True), Phrasing("Is there pleural fluid?", True)]
    assert len(paraphrase_set("Can effusion be ruled out?", user=two)) == 3
    assert paraphrase_set("Is there a pleural effusion?", user=[]) == paraphrase_set("Is there a pleural effusion?")
    assert paraphrase_set("Is there X?", user=["Is X seen?", "Is X present?"])[1] == Phrasing("Is X seen?")


def test_user_paraphrases_are_validated():
    with pytest.raises(ParaphraseError, match="paraphrase 2: .*'what' question"):
        paraphrase_set("Is there a pleural effusion?", user=[Phrasing("Is there fluid?"), Phrasing("What is it?")])
    with pytest.raises(ParaphraseError, match="over the limit of"):
        paraphrase_set("Is there X?", user=[Phrasing("Is X seen?")] * (MAX_PARAPHRASES + 1))
    with pytest.raises(QuestionError, match="empty"):
        paraphrase_set("  ", user=[Phrasing("Is X seen?")])


def test_template_fallback_for_unknown_findings():
    out = paraphrase_set("Is there a chest tube?")
    assert texts(out) == [
        "Is there a chest tube?",
        "Is a chest tube present?",
        "Does this radiograph show a chest tube?",
        "Is there evidence of a chest tube?",
        "Can you see a chest tube on this image?",
        "Is a chest tube seen?",
    ]
    assert [p.source for p in out] == ["question"] + ["rewrite"] * 5
    out = paraphrase_set("Are there rib fractures?")
    assert texts(out)[1] == "Are rib fractures present?" and "Are rib fractures seen?" in texts(out)
    out = paraphrase_set("Is pneumoperitoneum present?")
    assert "Is pneumoperitoneum present?" not in texts(out[1:]) and len(out) == 6
    assert texts(out)[1] == "Does this radiograph show pneumoperitoneum?"
    out = paraphrase_set("Does the patient have a chest drain?")
    assert texts(out)[1] == "Is a chest drain present?"
    out = paraphrase_set("Is there free air under the diaphragm on this image?")
    assert texts(out)[1] == "Is there free air under the diaphragm?"  # a tailed noun phrase only ends a question
    assert "Is free air under the diaphragm present?" not in texts(out)


@pytest.mark.parametrize("question, first", [
    ("Is there Kerley B lines?", "Are Kerley B lines present?"),  # its eponym once came back "kerley"
    ("Is there a Swan-Ganz catheter?", "Is a Swan-Ganz catheter present?"),
    ("Is there diffuse ground-glass opacities?", "Are diffuse ground-glass opacities present?"),  # typed in haste
    ("Is there metastases?", "Are metastases present?"),
    ("Is there lymphadenopathy?", "Is lymphadenopathy present?"),
    ("Is there a mass?", "Is a mass present?"),
])
def test_rewrites_keep_a_words_own_capitals_and_agree_with_its_number(question, first):
    assert texts(paraphrase_set(question))[1] == first


def test_narrowed_questions_keep_their_words_instead_of_the_bank():
    out = texts(paraphrase_set("Is there a left pleural effusion?"))
    assert all("left pleural effusion" in t or "left effusion" in t for t in out)  # a bank synonym, "left" kept
    assert "Is there a left effusion?" in out
    out = texts(paraphrase_set("Is there a rib fracture?"))
    assert all("rib fracture" in t for t in out)
    out = texts(paraphrase_set("Is there any pleural effusion or pneumothorax?"))  # "any": either one, yes/no
    assert all("or pneumothorax" in t for t in out)
    out = paraphrase_set("Is the NG tube in place?")  # a position question: never the bank's presence ones
    assert all("in place" in t for t in texts(out))
    assert texts(out)[1] == "Is the nasogastric tube in place?" and out[1].source == "rewrite"  # NG written out


@pytest.mark.parametrize(
    "question",
    ["Can effusion be ruled out?", "Is the heart size normal?", "Is there no pneumothorax?",
     "Is there any abnormality?", "Is there no free air?", "Has the effusion resolved?"],
)
def test_questions_about_absence_keep_their_polarity(question):
    out = paraphrase_set(question)
    assert len(out) == 6
    for p in out[1:]:
        assert asks_absence(p.text) is (not p.inverted), p  # an un-inverted paraphrase asks about absence too


def test_a_bank_absence_question_gets_the_banks_absence_phrasings_and_inverted_presence_ones():
    out = paraphrase_set("Can a pneumothorax be ruled out?")
    assert out[1] == Phrasing("Is there no pneumothorax?", False)
    assert out[2] == Phrasing("Is there a pneumothorax?", True) and out[2].source == "bank"


def test_questions_no_rule_understands_still_get_frames():
    out = paraphrase_set("Is the aorta calcified?")
    assert texts(out)[1] == "Based on this radiograph, is the aorta calcified?"
    assert {p.source for p in out[1:]} == {"frame"}
    with pytest.raises(QuestionError, match="'what' question"):
        paraphrase_set("What is shown?")


# ------------------------------------------------------------------------------------------------ text lists
def test_parse_paraphrase_text_with_markers_and_comments():
    text = (
        "Is there fluid in the pleural space?\n"
        "\n"
        "# a comment\n"
        "[inverted] Can a pleural effusion be ruled out?\n"
        "  [INVERTED]Is the pleural space clear?  \n"
        "! Are the lungs free of effusion?\n"
        "Any effusion\r\n"
    )
    assert parse_paraphrase_text(text) == [
        Phrasing("Is there fluid in the pleural space?"),
        Phrasing("Can a pleural effusion be ruled out?", True),
        Phrasing("Is the pleural space clear?", True),
        Phrasing("Are the lungs free of effusion?", True),
        Phrasing("Any effusion"),
    ]
    assert parse_paraphrase_text("") == [] and parse_paraphrase_text(" \n\n# only a comment\n") == []


def test_parse_paraphrase_text_errors_name_the_line():
    with pytest.raises(ParaphraseError, match="line 3: .*got a 'what' question"):
        parse_paraphrase_text("Is there X?\n\nWhat is X?")
    with pytest.raises(ParaphraseError, match="line 1: the inverted marker has no paraphrase"):
        parse_paraphrase_text("[inverted]   ")
    with pytest.raises(ParaphraseError, match="line 2: .*statement"):
        parse_paraphrase_text("Is there X?\n! X is absent.")
    with pytest.raises(ParaphraseError, match="must be text"):
        parse_paraphrase_text(None)


# ------------------------------------------------------------------------------------------------ files
def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_read_json_strings_objects_and_mixed(tmp_path):
    strings = write(tmp_path, "s.json", json.dumps(["Is there X?", " Is X present? "]))
    assert read_paraphrase_file(strings) == [Phrasing("Is there X?"), Phrasing("Is X present?")]
    objects = write(
        tmp_path, "o.json",
        json.dumps([{"text": "Is there X?"}, {"text": "Can X be ruled out?", "inverted": True},
                    {"text": "Is X seen?", "inverted": False}]),
    )
    assert read_paraphrase_file(str(objects)) == [
        Phrasing("Is there X?"), Phrasing("Can X be ruled out?", True), Phrasing("Is X seen?"),
    ]
    mixed = write(tmp_path, "mixed.txt", '\ufeff  ["Is there X?", {"text": "Is X absent?", "inverted": true}]')
    assert read_paraphrase_file(mixed) == [Phrasing("Is there X?"), Phrasing("Is X absent?", True)]


def test_read_plain_text(tmp_path):
    path = write(tmp_path, "p.txt", "# paraphrases\nIs there X?\n\n[inverted] Can X be ruled out?\n!Is X absent?\n")
    assert read_paraphrase_file(path) == [
        Phrasing("Is there X?"), Phrasing("Can X be ruled out?", True), Phrasing("Is X absent?", True),
    ]
    no_suffix = write(tmp_path, "paraphrases", "Is there X?\nIs X present?")
    assert len(read_paraphrase_file(no_suffix)) == 2
    marker_first = write(tmp_path, "m", "[inverted] Can X be ruled out?\nIs there X?")
    assert read_paraphrase_file(marker_first)[0] == Phrasing("Can X be ruled out?", True)


@pytest.mark.parametrize(
    "content,problem",
    [
        ('["Is there X?", 3]', "item 2 of 2: expected a string or an object.*got a number"),
        ('["Is there X?", null]', "item 2 of 2: .*got null"),
        ('[["Is there X?"]]', "item 1 of 1: .*got a list"),
        ('[{"inverted": true}]', "item 1 of 1: the object has no 'text'"),
        ('[{"text": 5}]', "item 1 of 1: 'text' must be a string, got a number"),
        ('[{"text": "Is X?", "inverted": "yes"}]', "item 1 of 1: 'inverted' must be true or false, got a string"),
        ('[{"text": "Is X?", "inverted": 1}]', "item 1 of 1: 'inverted' must be true or false, got a number"),
        ('[{"text": "Is X?", "invert": true}]', "item 1 of 1: unknown key\\(s\\) 'invert'"),
        ('["Is there X?", "Is X seen?", "What is X?"]', "item 3 of 3: .*'what' question"),
        ('["Is there X?", ""]', "item 2 of 2: .*empty"),
        ('{"text": "Is there X?"}', "expected a JSON list of paraphrases, got an object"),
        ('"Is there X?"', "expected a JSON list"),
        ('["Is there X?",', "not valid JSON \\(.* at line 1, column"),
        ("[]", "contains no paraphrases"),
        ("\n# nothing\n\n", "contains no paraphrases"),
    ],
)
def test_bad_paraphrase_files_name_the_file_and_item(tmp_path, content, problem):
    name = "bad.json" if content.lstrip().startswith(('"', "[", "{")) else "bad.txt"
    path = write(tmp_path, name, content)
    with pytest.raises(ParaphraseError, match=problem) as info:
        read_paraphrase_file(path)
    assert str(path) in str(info.value)


def test_bad_paraphrase_file_paths_and_bytes(tmp_path):
    with pytest.raises(ParaphraseError, match="does not exist") as info:
        read_paraphrase_file(tmp_path / "missing.json")
    assert "missing.json" in str(info.value)
    with pytest.raises(ParaphraseError, match="is a folder"):
        read_paraphrase_file(tmp_path)
    latin1 = write(tmp_path, "latin1.txt", "Is there an \u00e9panchement?".encode("latin-1"))
    with pytest.raises(ParaphraseError, match="latin1.txt is not UTF-8 text"):
        read_paraphrase_file(latin1)
    binary = write(tmp_path, "x.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ParaphraseError, match="x.png"):
        read_paraphrase_file(binary)
    nul = write(tmp_path, "nul.txt", b"Is there X?\x00\n")
    with pytest.raises(ParaphraseError, match="binary"):
        read_paraphrase_file(nul)
    text_line = write(tmp_path, "line.txt", "Is there X?\nDescribe X\n")
    with pytest.raises(ParaphraseError, match="line.txt: line 2: .*instruction, 'describe'"):
        read_paraphrase_file(text_line)
    deep = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ParaphraseError, match="deep.json"):
        read_paraphrase_file(deep)
    with pytest.raises(ParaphraseError, match="must be a path"):
        read_paraphrase_file(None)


def test_phrasings_from_json_for_manifest_columns():
    assert phrasings_from_json(["Is there X?", {"text": "Is X absent?", "inverted": True}], source="row 3") == [
        Phrasing("Is there X?"), Phrasing("Is X absent?", True),
    ]
    with pytest.raises(ParaphraseError, match="row 3: item 1 of 1"):
        phrasings_from_json([7], source="row 3")
    with pytest.raises(ParaphraseError, match="row 3: expected a JSON list"):
        phrasings_from_json("Is there X?", source="row 3")
