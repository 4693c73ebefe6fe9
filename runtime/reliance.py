"""Consistency, image reliance and the quadrant: the decision rules of README "What a check does", and nothing else.

Two reliance rules.

`flip` is the paper's: prompt 0 is image-reliant when taking the image out (the text-only pass) flips its
answer. Its blind spot: without the image a yes/no model falls back to one answer per wording, so a model
that reads every image perfectly keeps that answer on the studies where it happens to be right (about half),
and `flip` calls those Dangerous.

`content` (the default) asks whether the image's *content* moved the answer, by how far prompt 0's margin
moved between the study and a content-free image of the same size (`reference`: uniform mid-gray by
default), relative to the margins themselves:

    relative content shift = |m_image - m_reference| / max(|m_image|, |m_reference|)

Why a content-free image and not the text-only pass: removing the image tokens moves the margins whatever the
image shows (presence is not content), so a model that cannot see any image's content would look reliant.
Why relative: logits have no fixed scale (the same answers at a lower temperature are all margins times a
constant), and a threshold in raw logits turns a shortcut model Ideal when its head is scaled up. The ratio
does not change when every logit is multiplied by a positive constant. A flip against the reference gives a
ratio of at least 1, so every flip counts. The threshold (0.2) was chosen by measurement on the demo pair and
on models built from it (a blind projector, heads scaled by 0.2 and 5): see the README.

A content-free image shows no finding either, so a model that read a normal study and correctly saw nothing
answers the blank image the same way: against it, an unmoved 'no' cannot tell looking from not looking. Where
labels are known (an evaluation), the reference can instead be a real counterfactual: another study of the
same dataset whose label for the question is the opposite (`opposite`), which a model that reads the image
answers differently and one that does not answers the same. `same-label` (another study with the same label)
is its control: there a reader's answer should not move. Both use the same ratio and threshold; the verdict
then also keeps the blank image's judgement beside (content_free_reliant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .answers import Answer
from .errors import OptionError
from .vocabulary import GRID_ROWS

RULES = ("content", "flip")
DEFAULT_RULE = "content"
DEFAULT_THRESHOLD = 0.2
#: content-free images the `content` rule can compare with (ablation names, see ablation.py) ...
CONTENT_FREE = ("blank", "white", "noise")
#: ... and other studies of a labelled evaluation: the label opposite to this study's, or the same (a control)
COUNTERFACTUALS = ("opposite", "same-label")
REFERENCES = CONTENT_FREE + COUNTERFACTUALS
DEFAULT_REFERENCE = "blank"


def relative_shift(with_image: float, reference: float) -> float:
    """|m_image - m_reference| relative to the larger margin; 0 when both are 0. Unchanged under m -> c*m."""
    scale = max(abs(with_image), abs(reference))
    return abs(with_image - reference) / scale if scale > 0 else 0.0


@dataclass(frozen=True)
class Reliance:
    """How image reliance is judged: the rule, its threshold (relative content shift), and the reference."""

    rule: str = DEFAULT_RULE
    threshold: float = DEFAULT_THRESHOLD
    reference: str = DEFAULT_REFERENCE

    def __post_init__(self):
        if self.rule not in RULES:
            raise OptionError(f"unknown reliance rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if not self.threshold >= 0:
            raise OptionError(f"the reliance threshold must be a number >= 0, got {self.threshold!r}")
        if self.reference not in REFERENCES:
            raise OptionError(f"unknown reference image {self.reference!r}; choose one of {', '.join(REFERENCES)}")
        if self.rule == "flip" and self.counterfactual:
            raise OptionError(f"--reference {self.reference} is the content rule's; the flip rule compares with the "
                              "question asked without the image (use --reliance content)")

    def require_single_study(self) -> None:
        """Refuse, before a model loads, a reference that only an evaluation has: one study checked alone (the
        check command, the app) has no other labelled study to compare with."""
        if self.counterfactual:
            raise OptionError(f"--reference {self.reference} compares a study with another labelled study of a "
                              "dataset: it needs quadrant evaluate with a manifest that has labels; for one study "
                              f"use --reference {', '.join(CONTENT_FREE[:-1])} or {CONTENT_FREE[-1]}")

    @property
    def counterfactual(self) -> str | None:
        """`opposite` or `same-label` when the rule compares with another labelled study, else None."""
        return self.reference if self.reference in COUNTERFACTUALS else None

    @property
    def content_free(self) -> str:
        """The content-free image every verdict is also asked with: the reference itself, or blank beside a
        counterfactual (so a report can show the blank image's judgement next to it)."""
        return DEFAULT_REFERENCE if self.counterfactual else self.reference

    def partner_label(self, label: str) -> str:
        """The label the counterfactual study must have, for a study labelled `label`."""
        return {"yes": "no", "no": "yes"}[label] if self.reference == "opposite" else label

    def to_json(self) -> dict:
        return {"rule": self.rule, "threshold": self.threshold, "reference": self.reference}

    def is_reliant(self, with_image: Answer, text_only: Answer, reference: Answer) -> bool:
        """Whether the image moved this phrasing's answer, under this rule."""
        if self.rule == "flip":
            return with_image.answer != text_only.answer
        if with_image.margin is None or reference.margin is None:
            return with_image.answer != reference.answer  # generated answers carry no margin: only a flip shows
        return relative_shift(with_image.margin, reference.margin) >= self.threshold


def shifts(with_image: Answer, text_only: Answer, reference: Answer) -> dict[str, float | None]:
    """Prompt 0's margin shifts, so a reader can recompute either rule: the text-only shift (image removed)
    is the presence shift (an image vs none) plus the content shift (this image vs a content-free one)."""
    m, t, r = with_image.margin, text_only.margin, reference.margin
    return {
        "text_only": None if m is None or t is None else m - t,
        "presence": None if r is None or t is None else r - t,
        "content": None if m is None or r is None else m - r,
        "relative_content": None if m is None or r is None else relative_shift(m, r),
    }


def counterfactual_shifts(with_image: Answer, other_study: Answer) -> dict[str, float | None]:
    """Prompt 0's shift from another labelled study's image to this one's (with a counterfactual reference)."""
    m, c = with_image.margin, other_study.margin
    return {
        "counterfactual": None if m is None or c is None else m - c,
        "relative_counterfactual": None if m is None or c is None else relative_shift(m, c),
    }


def oriented(answers: Sequence[Answer], inverted: Sequence[bool]) -> list[Answer]:
    """Answers as the original question would read them: inverted phrasings negated."""
    return [a.negated() if inv else a for a, inv in zip(answers, inverted, strict=True)]


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
    """The verdict's cell of the 2x2 grid: its rows are consistency, its columns image reliance."""
    _, cells = GRID_ROWS[0 if consistent else 1]
    return cells[0 if image_reliant else 1]


def majority_reliant(reliance: Reliance, with_image: Sequence[Answer], text_only: Sequence[Answer],
                     reference: Sequence[Answer]) -> bool:
    """Reliance judged on every phrasing, by strict majority (the optional all-paraphrase ablation)."""
    votes = sum(reliance.is_reliant(w, t, r) for w, t, r in zip(with_image, text_only, reference, strict=True))
    return votes * 2 > len(with_image)
