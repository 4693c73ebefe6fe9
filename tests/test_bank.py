"""The paraphrase bank as data: the built-in file, a user's file extending or replacing it, and clear errors
for a malformed one (in the library and on the command line)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from quadrant.bank import load_bank, read_bank_document
from quadrant.cli.main import main
from quadrant.errors import ParaphraseError
from quadrant.paraphrases import FINDINGS, find_finding, paraphrase_set

SPANISH = {
    "description": "an institution's own wording, in Spanish",
    "extends": True,
    "findings": {
        "derrame pleural": {
            "source": "hospital",
            "term": "un derrame pleural",
            "plural": False,
            "keywords": ["derrame pleural", "derrame"],
            "synonyms": ["derrame pleural", "derrame"],
            "phrasings": [
                "¿Hay derrame pleural?", "¿Se observa derrame pleural?", "¿Existe derrame pleural?",
                "¿Muestra la radiografía un derrame pleural?", "¿Hay líquido en el espacio pleural?",
                "¿Hay signos de derrame pleural?",
            ],
            "inverted": ["¿Se puede descartar un derrame pleural?"],
        }
    },
}


def write(tmp_path, data, name="bank.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_the_built_in_bank_is_a_data_file_in_the_package():
    text = resources.files("quadrant").joinpath("data/paraphrase_bank.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["format"] == "quadrant-paraphrase-bank" and data["version"] == 1
    assert tuple(data["findings"]) == FINDINGS == load_bank().names
    assert load_bank() is load_bank() and load_bank().fingerprint.startswith("sha256:")


def test_a_bank_file_extends_the_built_in_one(tmp_path):
    bank = load_bank(write(tmp_path, SPANISH))
    assert bank.names[-1] == "derrame pleural" and "pleural effusion" in bank.names
    assert bank.fingerprint != load_bank().fingerprint
    out = paraphrase_set("¿Hay derrame pleural?", bank=bank)
    assert [p.text for p in out[1:]] == SPANISH["findings"]["derrame pleural"]["phrasings"][1:]
    assert {p.source for p in out[1:]} == {"bank"}
    assert find_finding("Is there a pleural effusion?", bank) == "pleural effusion"


def test_a_bank_file_with_extends_false_replaces_it(tmp_path):
    bank = load_bank(write(tmp_path, {**SPANISH, "extends": False}))
    assert bank.names == ("derrame pleural",)
    out = paraphrase_set("Is there a pleural effusion?", bank=bank)  # no bank entry now: rewrites
    assert {p.source for p in out[1:]} == {"rewrite"}


def test_an_entry_of_the_same_name_replaces_the_built_in_entry(tmp_path):
    own = {"findings": {"pneumothorax": {
        "keywords": ["pneumothorax"],
        "phrasings": ["Is there a pneumothorax?", "Is a pneumothorax visible?", "Is there a PTX?",
                      "Any pneumothorax?", "Is pleural air present?", "Do you see a pneumothorax?"]}}}
    bank = load_bank(write(tmp_path, own))
    out = paraphrase_set("Is there a pneumothorax?", bank=bank)
    assert [p.text for p in out[1:]] == own["findings"]["pneumothorax"]["phrasings"][1:]


@pytest.mark.parametrize(
    "document,problem",
    [
        ([], "expected a JSON object with 'findings', got a list"),
        ({"findings": {}}, "'findings' must be a non-empty object"),
        ({"findings": {"x": {}}, "extends": "yes"}, "'extends' must be true or false"),
        ({"findings": {"x": {}}, "version": 2}, "'version' 2 is not one this Quadrant reads"),
        ({"findings": {"x": {}}, "colour": 1}, "unknown top-level key\\(s\\) 'colour'"),
        ({"findings": {"Pleural Effusion": {}}}, "finding name 'Pleural Effusion' must be lowercase words"),
        ({"findings": {"effusion": []}}, "entry 'effusion': expected an object, got a list"),
        ({"findings": {"effusion": {"phrasings": ["Is there an effusion?"]}}},
         "entry 'effusion': 'keywords' is missing or empty"),
        ({"findings": {"effusion": {"keywords": ["effusion"], "phrasings": "Is there an effusion?"}}},
         "entry 'effusion': 'phrasings' must be a list, got a string"),
        ({"findings": {"effusion": {"keywords": ["effusion"], "phrasings": ["Is there an effusion?", 3]}}},
         "entry 'effusion': 'phrasings' item 2 must be a string with words, got 3"),
        ({"findings": {"effusion": {"keywords": ["effusion"], "phrasings": ["Where is the effusion?"]}}},
         "entry 'effusion': 'phrasings' item 1: the phrasing 'Where is the effusion\\?' must be answerable"),
        ({"findings": {"effusion": {"keywords": ["effusion"], "phrasings": ["Is there X?"], "plural": "no"}}},
         "entry 'effusion': 'plural' must be a boolean, got a string"),
        ({"findings": {"effusion": {"keywords": ["effusion"], "phrasings": ["Is there X?"], "synonym": []}}},
         "entry 'effusion': unknown key\\(s\\) 'synonym'"),
    ],
)
def test_a_malformed_bank_names_the_entry(tmp_path, document, problem):
    path = write(tmp_path, document)
    with pytest.raises(ParaphraseError, match=problem) as info:
        load_bank(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bank_file_paths_and_bytes(tmp_path):
    with pytest.raises(ParaphraseError, match="does not exist"):
        load_bank(tmp_path / "missing.json")
    with pytest.raises(ParaphraseError, match="is a folder"):
        load_bank(tmp_path)
    with pytest.raises(ParaphraseError, match="not valid JSON \\(.* at line 1, column"):
        load_bank(write(tmp_path, '{"findings": ', "broken.json"))
    with pytest.raises(ParaphraseError, match="the built-in paraphrase bank: entry 'x'"):
        read_bank_document({"findings": {"x": {"keywords": ["x"], "phrasings": ["Describe x."]}}},
                           "the built-in paraphrase bank")


def test_command_line_bank_errors_exit_2_with_one_line_before_the_model_loads(tmp_path, study_png, capsys):
    bad = write(tmp_path, {"findings": {"effusion": {"keywords": ["effusion"], "phrasings": ["List effusions"]}}})
    code = main(["check", "--image", study_png, "--question", "Effusion?", "--paraphrase-bank", str(bad),
                 "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "entry 'effusion': 'phrasings' item 1" in err and "instruction, 'list'" in err


def test_command_line_bank_reaches_the_verdict(tmp_path, study_png, tiny_model, capsys):
    path = write(tmp_path, SPANISH)
    code = main(["check", "--image", study_png, "--question", "¿Hay derrame pleural?", "--paraphrase-bank",
                 str(path), "--model", tiny_model("llava"), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [p["text"] for p in verdict["prompts"]] == SPANISH["findings"]["derrame pleural"]["phrasings"]
    assert [p["source"] for p in verdict["prompts"]] == ["question"] + ["bank"] * 5
