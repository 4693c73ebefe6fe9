"""Consistency, image reliance and the quadrant: the decision rules of SPEC "Definitions", and nothing else.

Why three reliance rules: the paper's `flip` rule calls a study image-reliant only when removing the image
flips prompt 0's answer. A model that reads every image perfectly still keeps its text-only answer on the
studies where that answer happens to be right (about half), so under `flip` even a perfect reader looks
Dangerous half the time. The margin shift (m_image - m_ablated) shows how far the image moved the decision
whether or not the sign changed; `margin` and `either` use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .answers import Answer
from .errors import OptionError

RULES = ("flip", "margin", "either")
DEFAULT_RULE = "either"
DEFAULT_THRESHOLD = 0.4
QUADRANTS = ("Ideal", "Fragile", "Dangerous", "Worst")


@dataclass(frozen=True)
class Reliance:
    """How image reliance is judged: the rule and its margin-shift threshold."""

    rule: str = DEFAULT_RULE
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self):
        if self.rule not in RULES:
            raise OptionError(f"unknown reliance rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if not self.threshold >= 0:
            raise OptionError(f"the reliance threshold must be a number >= 0, got {self.threshold!r}")

    def to_json(self) -> dict:
        return {"rule": self.rule, "threshold": self.threshold}

    def is_reliant(self, with_image: Answer, ablated: Answer) -> bool:
        """Whether the image moved prompt 0's answer, under this rule."""
        flipped = with_image.answer != ablated.answer
        if self.rule == "flip" or with_image.margin is None or ablated.margin is None:
            return flipped  # generate-and-parse answers carry no margin: only a flip can be seen
        shifted = abs(with_image.margin - ablated.margin) >= self.threshold
        return shifted if self.rule == "margin" else (flipped or shifted)


def oriented(answers: Sequence[Answer], inverted: Sequence[bool]) -> list[Answer]:
    """Answers as the original question would read them: inverted phrasings negated."""
    return [a.negated() if inv else a for a, inv in zip(answers, inverted)]


def flip_count(answers: Sequence[Answer]) -> int:
    """How many phrasings disagree with prompt 0 (after inversion)."""
    return sum(a.answer != answers[0].answer for a in answers[1:])


def pairwise_disagreement(answers: Sequence[Answer]) -> float:
    """Share of phrasing pairs whose answers differ."""
    n = len(answers)
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return 0.0
    differing = sum(answers[i].answer != answers[j].answer for i in range(n) for j in range(i + 1, n))
    return differing / pairs


def margin_spread(answers: Sequence[Answer]) -> float | None:
    margins = [a.margin for a in answers if a.margin is not None]
    return (max(margins) - min(margins)) if margins else None


def quadrant(consistent: bool, image_reliant: bool) -> str:
    if consistent:
        return "Ideal" if image_reliant else "Dangerous"
    return "Fragile" if image_reliant else "Worst"


def majority_reliant(reliance: Reliance, with_image: Sequence[Answer], ablated: Sequence[Answer]) -> bool:
    """Reliance judged on every phrasing, by strict majority (the optional all-paraphrase ablation)."""
    votes = sum(reliance.is_reliant(w, a) for w, a in zip(with_image, ablated))
    return votes * 2 > len(with_image)
