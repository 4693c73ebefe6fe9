"""The verdict's assembly, driven through the real Checker and the command line on real models.

Each quadrant is reached end to end, with and without inverted phrasings, on a tiny LLaVA whose answers
are set by hand (tests/toy_reader.py: bright image -> yes, dark -> no, no image -> no; "fluid" -> yes,
"angles" -> no, whatever the image) and on the bundled demo pair with its sample studies. Reliance is
judged by the paper's `flip` rule here: the default rule and its threshold are tested where they are
chosen. Below those, the small decision helpers on their own.
"""

import json

import pytest

from quadrant.answers import Answer, binary_entropy_bits, parse_generated
from quadrant.check import Checker, CheckOptions
from quadrant.cli.main import main
from quadrant.errors import OptionError
from quadrant.images import load_study
from quadrant.backends import load_model
from quadrant.loading import ModelSpec
from quadrant.models.presets import MODELS_DIR
from quadrant.paraphrases import Phrasing
from quadrant.reliance import (
    Reliance,
    flip_count,
    majority_reliant,
    margin_spread,
    pairwise_disagreement,
)
from toy_reader import build_toy_reader, toy_picture

FLIP = CheckOptions(reliance=Reliance("flip"))
QUESTION = "Is there a pleural effusion?"
PLAIN = "Is a pleural effusion present?"  # the toy follows the image on it
SAYS_YES = "Is there fluid in the pleural space?"  # holds "fluid": the toy says yes whatever the image
SAYS_NO = "Are the angles blunted by an effusion?"  # holds "angles": the toy says no
INV_FOLLOWS = "!Can a pleural effusion be ruled out?"  # inverted; the toy ignores negation: follows the image
INV_SAYS_YES = "!Is the pleural space free of fluid?"  # inverted; raw yes, so it reads as "no effusion"
INV_SAYS_NO = "!Are the angles free of effusion?"  # inverted; raw no, so it reads as "effusion"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    build_toy_reader(folder / "model")
    for name in ("bright", "dark"):
        toy_picture(name == "bright").save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def toy_checkers(toy):
    loaded = load_model(ModelSpec(model=str(toy / "model")))
    return {backend: Checker(loaded, backend, FLIP) for backend in ("torch", "torch-naive")}


def _phrasings(texts):
    return [Phrasing(t[1:], inverted=True) if t.startswith("!") else Phrasing(t) for t in texts]


# image, paraphrases, raw with-image answers (prompt 0 first), quadrant, flip_count
CELLS = [
    ("bright", [PLAIN, SAYS_YES], "yes yes yes", "Ideal", 0),
    ("bright", [PLAIN, INV_SAYS_NO], "yes yes no", "Ideal", 0),  # consistent only once negated
    ("bright", [PLAIN, SAYS_NO], "yes yes no", "Fragile", 1),
    ("bright", [PLAIN, INV_FOLLOWS], "yes yes yes", "Fragile", 1),  # inconsistent only once negated
    ("dark", [PLAIN, SAYS_NO], "no no no", "Dangerous", 0),
    ("dark", [PLAIN, INV_SAYS_YES], "no no yes", "Dangerous", 0),  # consistent only once negated
    ("dark", [PLAIN, SAYS_YES], "no no yes", "Worst", 1),
    ("dark", [PLAIN, INV_FOLLOWS], "no no no", "Worst", 1),  # inconsistent only once negated
]


@pytest.mark.parametrize("backend", ["torch", "torch-naive"])
@pytest.mark.parametrize("image, paraphrases, raw, expected, flips", CELLS)
def test_every_quadrant_through_the_checker(toy, toy_checkers, backend, image, paraphrases, raw, expected, flips):
    verdict = toy_checkers[backend].check(load_study(str(toy / f"{image}.png")), QUESTION, _phrasings(paraphrases))
    assert " ".join(p.answer for p in verdict.prompts) == raw  # what the toy was built to answer
    assert [p.inverted for p in verdict.prompts] == [False] + [t.startswith("!") for t in paraphrases]
    assert verdict.text_only.answer == "no"  # without the image the toy says no
    reliant = image == "bright"
    assert verdict.image_reliant is reliant and verdict.flip_reliant is reliant
    assert verdict.consistent is (flips == 0)
    assert verdict.flip_count == flips
    assert verdict.pairwise_disagreement == pytest.approx(2 / 3 if flips else 0.0)
    assert verdict.quadrant == expected
    assert verdict.answer == raw.split()[0]
    assert verdict.reliance["rule"] == "flip"


def test_margin_spread_is_taken_after_inversion(toy, toy_checkers):
    """An inverted phrasing's margin is negated before the spread: agreeing phrasings spread little."""
    verdict = toy_checkers["torch"].check(load_study(str(toy / "bright.png")), QUESTION,
                                          _phrasings([PLAIN, INV_SAYS_NO]))
    margins = [p.margin for p in verdict.prompts]
    assert margins[2] < 0 < margins[0]
    oriented = margins[:2] + [-margins[2]]
    assert verdict.margin_spread == pytest.approx(max(oriented) - min(oriented), abs=1e-6)
    assert verdict.margin_spread < abs(margins[0] - margins[2])


def test_majority_reliance_through_the_checker(toy):
    """--ablate-all: every phrasing asked without the image too; a strict majority of flips decides."""
    checker = Checker(load_model(ModelSpec(model=str(toy / "model"))), "torch",
                      CheckOptions(reliance=Reliance("flip"), ablate_all=True))
    bright = load_study(str(toy / "bright.png"))
    # with the image: yes yes yes; without: no, and "fluid" stays yes -> 2 of 3 flipped: reliant
    verdict = checker.check(bright, QUESTION, _phrasings([PLAIN, SAYS_YES]))
    assert [t.answer for t in verdict.text_only_all] == ["no", "no", "yes"]
    assert verdict.image_reliant and verdict.quadrant == "Ideal"
    # with the image: yes yes yes; without: no yes yes -> 1 of 3 flipped: not reliant
    verdict = checker.check(bright, QUESTION, _phrasings([SAYS_YES, "Is there fluid?"]))
    assert [t.answer for t in verdict.text_only_all] == ["no", "yes", "yes"]
    assert not verdict.image_reliant and verdict.quadrant == "Dangerous"


@pytest.mark.parametrize("image, paraphrases, expected", [
    ("bright", [PLAIN, INV_SAYS_NO], "Ideal"),
    ("dark", [PLAIN, INV_SAYS_YES], "Dangerous"),
    ("dark", [PLAIN, INV_FOLLOWS], "Worst"),
])
def test_inverted_paraphrases_from_the_command_line(toy, capsys, image, paraphrases, expected):
    """`--paraphrase '!...'` marks an inverted phrasing on the way in, and the verdict negates it."""
    argv = ["check", "--model", str(toy / "model"), "--image", str(toy / f"{image}.png"), "--question", QUESTION,
            "--reliance", "flip", "--json"]
    for text in paraphrases:
        argv += ["--paraphrase", text]
    assert main(argv) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert [p["inverted"] for p in verdict["prompts"]] == [False] + [t.startswith("!") for t in paraphrases]
    assert [p["text"] for p in verdict["prompts"][1:]] == [t.lstrip("!") for t in paraphrases]
    assert verdict["quadrant"] == expected


def answers(*margins):
    return [Answer.from_margin(m) for m in margins]


# -- the bundled demo pair on its sample studies (models/samples/README.md) ---------------------------------

SAMPLES = MODELS_DIR / "samples"


@pytest.fixture(scope="module")
def demo_pair():
    return {name: Checker(load_model(ModelSpec(model=name)), "torch", FLIP) for name in ("demo", "demo-shortcut")}


@pytest.mark.parametrize("model, sample, question, paraphrases, expected", [
    # demo reads the effusion (yes; no without the image) and answers "free of effusion?" no: consistent
    ("demo", "cardiomegaly-effusion", QUESTION, ["Is there any fluid in the pleural space?",
                                                 "!Are the lungs free of effusion?"], "Ideal"),
    # ... but it says yes to "can it be ruled out?" too: the phrasings disagree once that is negated
    ("demo", "cardiomegaly-effusion", QUESTION, ["Is there any fluid in the pleural space?",
                                                 "!Can a pleural effusion be ruled out?"], "Fragile"),
    # on the pneumothorax study the image flips "no" to "yes", but "Is there any pneumothorax?" says no
    ("demo", "pneumothorax", "Is there a pneumothorax?", ["Does this chest X-ray show a pneumothorax?",
                                                           "Is there any pneumothorax?"], "Fragile"),
    # on the normal study "no" with or without the image: not reliant under the flip rule
    ("demo", "normal", QUESTION, ["Is a pleural effusion present?", "Is there pleural fluid?"], "Dangerous"),
    ("demo", "normal", QUESTION, ["Is a pleural effusion present?", "!Can a pleural effusion be ruled out?"],
     "Worst"),
    # the shortcut says yes to effusion whatever the image, and to the inverted wording as well
    ("demo-shortcut", "cardiomegaly-effusion", QUESTION, ["Is there any fluid in the pleural space?",
                                                          "Is there pleural fluid?"], "Dangerous"),
    ("demo-shortcut", "cardiomegaly-effusion", QUESTION, ["Is there any fluid in the pleural space?",
                                                          "!Are the lungs free of effusion?"], "Worst"),
])
def test_quadrants_on_the_demo_pair(demo_pair, model, sample, question, paraphrases, expected):
    verdict = demo_pair[model].check(load_study(str(SAMPLES / f"{sample}.png")), question, _phrasings(paraphrases))
    assert verdict.quadrant == expected
    for p in verdict.prompts + [verdict.text_only]:
        assert abs(p.margin) > 0.15  # far enough from zero that no platform's rounding changes an answer


def test_disagreement_measures():
    seen = answers(1.0, -1.0, 2.0, -3.0)
    assert flip_count(seen) == 2
    assert pairwise_disagreement(seen) == pytest.approx(4 / 6)
    assert margin_spread(seen) == pytest.approx(5.0)


def test_majority_reliance_needs_more_than_half():
    with_image = answers(2.0, 2.0, 2.0, 2.0)
    two_flipped = answers(-1.0, -1.0, 2.0, 2.0)
    three_flipped = answers(-1.0, -1.0, -1.0, 2.0)
    assert not majority_reliant(Reliance("flip"), with_image, two_flipped, two_flipped)
    assert majority_reliant(Reliance("flip"), with_image, three_flipped, three_flipped)


def test_answer_arithmetic():
    a = Answer.from_margin(0.0)
    assert a.answer == "no" and a.p_yes == pytest.approx(0.5) and a.entropy == pytest.approx(1.0)
    assert Answer.from_margin(2.0).p_yes == pytest.approx(1 / (1 + 2.718281828459045**-2))
    assert binary_entropy_bits(800.0) == pytest.approx(0.0, abs=1e-12)  # no overflow, no log(0)
    assert binary_entropy_bits(-3.0) == pytest.approx(binary_entropy_bits(3.0))
    assert Answer.from_margin(1.5).negated().answer == "no"


@pytest.mark.parametrize(
    "text, expected",
    [("Yes.", "yes"), ("no, there is not", "no"), ("It is unclear, maybe yes", "unclear"),
     ("Possibly.", "unclear"), ("The answer is yes", "yes"), ("", "unclear")],
)
def test_generated_answers_are_parsed_and_hedges_are_unclear(text, expected):
    assert parse_generated(text).answer == expected


def test_unknown_rule_and_negative_threshold_are_refused():
    with pytest.raises(OptionError, match="unknown reliance rule"):
        Reliance("vibes")
    with pytest.raises(OptionError, match=">= 0"):
        Reliance("flip", -1.0)
