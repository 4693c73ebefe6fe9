"""The decision rules: every quadrant reachable, inverted phrasings oriented, each reliance rule honest."""

import pytest

from quadrant.answers import Answer, binary_entropy_bits, parse_generated
from quadrant.errors import OptionError
from quadrant.reliance import (
    Reliance,
    flip_count,
    majority_reliant,
    margin_spread,
    oriented,
    pairwise_disagreement,
    quadrant,
)


def answers(*margins):
    return [Answer.from_margin(m) for m in margins]


def classify(with_image, inverted, ablated, rule="flip", threshold=0.5):
    seen = oriented(with_image, inverted)
    consistent = flip_count(seen) == 0
    reliant = Reliance(rule, threshold).is_reliant(with_image[0], ablated, ablated)
    return quadrant(consistent, reliant)


@pytest.mark.parametrize(
    "margins, inverted, ablated_margin, expected",
    [
        ((2.0, 1.5, 3.0), (False, False, False), -1.0, "Ideal"),
        ((2.0, -1.5, 3.0), (False, False, False), -1.0, "Fragile"),
        ((2.0, 1.5, 3.0), (False, False, False), 2.5, "Dangerous"),
        ((2.0, -1.5, 3.0), (False, False, False), 2.5, "Worst"),
        # an inverted phrasing answering "no" agrees with a "yes" to the original question
        ((2.0, -1.5, 3.0), (False, True, False), -1.0, "Ideal"),
        ((2.0, -1.5, 3.0), (False, True, False), 2.5, "Dangerous"),
        # an inverted phrasing answering "yes" disagrees with a "yes" to the original
        ((2.0, 1.5, 3.0), (False, True, False), -1.0, "Fragile"),
        ((2.0, 1.5, 3.0), (False, True, False), 2.5, "Worst"),
    ],
)
def test_every_quadrant_with_and_without_inversion(margins, inverted, ablated_margin, expected):
    result = classify(answers(*margins), inverted, Answer.from_margin(ablated_margin))
    assert result == expected


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
        Reliance("content", -1.0)
