"""The verdict's words, in one place: what each quadrant is called and means, what decided image reliance,
and what a reader should do. The terminal, the app, the reports and the DICOM results all say it this way.

Three rules hold every sentence here to what was measured:

- A verdict word names the *answer*, never the finding: "Dangerous answer", because "DANGEROUS: the model
  answered 'yes'" to "Is there a pneumothorax?" reads as a dangerous pneumothorax.
- Image reliance is stated as the comparison that decided it (the study against a content-free image of the
  same size, or with the image against without it), with its figure, and never as "the model did not look":
  an unmoved answer shows only that *this* comparison did not move it.
- A 'no' judged against a content-free image carries its caveat: a blank image shows no finding either, so a
  model that read the film and saw nothing answers both the same way. Only a labelled evaluation, comparing
  with a study whose answer is the opposite, can tell the two apart.
"""

from __future__ import annotations

from .verdict import Verdict

QUADRANTS = ("Ideal", "Fragile", "Dangerous", "Worst")

#: how loudly each quadrant is shown: green to weigh, amber to doubt, red not to rely on
TONES = {"Ideal": "green", "Fragile": "amber", "Dangerous": "red", "Worst": "red"}

#: the 2x2 grid: the rows are consistency, the columns image reliance (the README's table has the same labels)
GRID_ROWS = (
    ("same answer in every phrasing", ("Ideal", "Dangerous")),
    ("answer changes with phrasing", ("Fragile", "Worst")),
)
GRID_COLUMNS = ("the image moved the answer", "the image did not move it")

#: each quadrant in general, for legends and explainers (a verdict's own sentence is `meaning`)
DEFINITIONS = {
    "Ideal": "every phrasing gets the same answer, and the study's image moved it",
    "Fragile": "the study's image moved the answer, but rewording the question changed it",
    "Dangerous": "every phrasing gets the same answer, and the study's image did not move it",
    "Worst": "rewording the question changed the answer, and the study's image did not move it",
}

#: what a reader should do with the answer
ADVICE = {
    "Ideal": "You may weigh this answer as one input; confirm it on the image yourself.",
    "Fragile": "Treat the answer as uncertain: see which phrasings disagree, and check the image yourself.",
    "Dangerous": "Do not rely on this answer for this study, however consistent or confident it looks.",
    "Worst": "Do not rely on this answer: it tells you nothing about this study.",
}

#: what the study was compared with, by the reliance rule's reference (the `content` rule) ...
REFERENCES = {
    "blank": "a blank mid-gray image of the same size",
    "white": "a blank white image of the same size",
    "noise": "an image of random noise of the same size",
}
#: ... and what the flip rule compares with
WITHOUT_IMAGE = "the same question asked without the image"
#: references that show no finding, so an unmoved 'no' against them is ambiguous
CONTENT_FREE = frozenset(REFERENCES)

NO_CAVEAT = ("A content-free image shows no finding either, so this cannot tell a model that looked and saw "
             "nothing from one that did not look; an evaluation with labels can (--reference opposite).")

NOT_FOR_DIAGNOSIS = "Not for diagnostic use. Quadrant checks a model's behaviour; it does not make a diagnosis."


def title(verdict: Verdict) -> str:
    """The verdict word as it heads a banner or a report: it qualifies the answer, not the finding."""
    return f"{verdict.quadrant} answer"


def answer_line(verdict: Verdict) -> str:
    """What was asked and answered, so a screenshot says what was judged."""
    return f"The model answered \u201c{verdict.answer}\u201d to \u201c{verdict.question}\u201d."


def compared_with(verdict: Verdict) -> str:
    """What the study was compared with to judge image reliance, under the verdict's rule."""
    rule = verdict.reliance
    if rule.get("rule") == "flip":
        return WITHOUT_IMAGE
    return REFERENCES.get(rule.get("reference"), f"the {rule.get('reference')} reference")


def meaning(verdict: Verdict) -> str:
    """One or two sentences: what this verdict measured, in the reader's words."""
    q, reference = verdict.quadrant, compared_with(verdict)
    moved = f"the study's image moved it, compared with {reference}"
    unmoved = f"the study's image did not move it, compared with {reference}"
    if q == "Ideal":
        text = f"Every phrasing gave the same answer, and {moved}."
    elif q == "Fragile":
        text = f"The study's image moved the answer, compared with {reference}, but {_disagreeing(verdict)}."
    elif q == "Dangerous":
        text = f"Every phrasing gave the same answer, but {unmoved}."
    else:
        text = f"{_disagreeing(verdict).capitalize()}, and {unmoved}."
    if needs_no_caveat(verdict):
        text += " " + NO_CAVEAT
    return text


def needs_no_caveat(verdict: Verdict) -> bool:
    """An unmoved 'no' against a content-free image: a sound reader of a normal study would give it too."""
    return (not verdict.image_reliant and verdict.answer == "no" and verdict.reliance.get("rule") != "flip"
            and verdict.reliance.get("reference") in CONTENT_FREE)


def decided_by(verdict: Verdict) -> str:
    """The comparison that decided image reliance under the active rule, with its figure in plain words."""
    first = verdict.prompts[0]
    if verdict.reliance.get("rule") == "flip":
        t = verdict.text_only
        changed = "changed" if verdict.image_reliant else "did not change"
        return (f"Decided by asking the question with and without the image: \u201c{first.answer}\u201d with it, "
                f"\u201c{t.answer}\u201d without it, so removing the image {changed} the answer (this rule counts "
                "only a changed answer).")
    reference, r = compared_with(verdict), verdict.content_free
    relative = (verdict.shifts or {}).get("relative_content")
    if r is None or relative is None or first.p_yes is None or r.p_yes is None:
        answer = "-" if r is None else r.answer
        return (f"Decided by comparing the study with {reference}: \u201c{first.answer}\u201d with the study, "
                f"\u201c{answer}\u201d with the reference.")
    figures = (f"Decided by comparing the study with {reference}: the chance of \u201cyes\u201d was {first.p_yes:.2f} "
               f"with the study and {r.p_yes:.2f} with the reference")
    if r.answer != first.answer:
        return f"{figures}, so the study's image turned the answer round (a flip always counts)."
    threshold = verdict.reliance.get("threshold", 0)
    enough = "at least" if relative >= threshold else "less than"
    return (f"{figures}, so the study moved the model's yes-no balance by {relative:.0%} of its size, {enough} the "
            f"{threshold:.0%} this rule asks of an image that moved the answer.")


def without_image(verdict: Verdict) -> str:
    """What the model answers with no image at all (the text-only pass), stated as a fact, not as a cause."""
    t = verdict.text_only
    chance = "" if t.p_yes is None else f" (chance of \u201cyes\u201d {t.p_yes:.2f})"
    how = "with no image at all" if t.ablation == "none" else f"with the image replaced ({t.ablation})"
    return f"Asked {how}, the model answers \u201c{t.answer}\u201d{chance}."


def advice(verdict: Verdict) -> str:
    return ADVICE[verdict.quadrant]


def tone(quadrant: str) -> str:
    return TONES[quadrant]


def _disagreeing(verdict: Verdict) -> str:
    n = len(verdict.prompts) - 1
    k = verdict.flip_count
    return f"{k} of the {n} rewordings of the question gave the other answer"
