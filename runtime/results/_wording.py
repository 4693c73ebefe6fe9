"""The words every result (SR, secondary capture, FHIR) uses to say what a verdict means.

One function, so that the three formats can never word the same verdict differently, and so that the
wording can move to a single vocabulary shared with every other surface without touching the writers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..verdict import Verdict

NOT_FOR_DIAGNOSIS = "Not for diagnostic use. Quadrant checks a model's behaviour; it does not make a diagnosis."

_HEADLINE = {
    "Ideal": "consistent, and the image moved the answer",
    "Fragile": "the image moved the answer, but the wording changed it",
    "Dangerous": "consistent, but the image did not move the answer",
    "Worst": "the wording changed the answer, and the image did not move it",
}
_ADVICE = {
    "Ideal": "You may weigh this answer as one input; confirm it on the image yourself.",
    "Fragile": "Treat the answer as uncertain and read the image yourself.",
    "Dangerous": "Do not rely on this answer for this study, however consistent or confident it looks.",
    "Worst": "Do not rely on this answer: it tells you nothing about this study.",
}
_REFERENCE = {"blank": "a blank gray image", "white": "a white image", "noise": "a random-noise image"}


@dataclass(frozen=True)
class Wording:
    headline: str  # a short label: "Dangerous: consistent, but the image did not move the answer"
    meaning: str  # one sentence saying what was measured and found
    decided_by: str  # the comparison that decided image reliance, in plain words
    advice: str  # what a reader should do with the answer


def words(verdict: Verdict) -> Wording:
    """The headline, meaning, deciding comparison and advice of one verdict."""
    q = verdict.quadrant
    return Wording(headline=f"{q}: {_HEADLINE[q]}", meaning=_meaning(verdict), decided_by=_decided_by(verdict),
                   advice=_ADVICE[q])


def _meaning(verdict: Verdict) -> str:
    asked = len(verdict.prompts)
    if verdict.consistent:
        consistency = f"Asked {asked} ways, the model gave the same answer every time"
    else:
        consistency = (f"Asked {asked} ways, the model's answer changed with the wording ({verdict.flip_count} of "
                       f"{asked - 1} rewordings differed)")
    if verdict.image_reliant:
        return f"{consistency}, and the image moved the answer."
    return f"{consistency}, but the image did not move it: the question's wording alone produces this answer."


def _decided_by(verdict: Verdict) -> str:
    rule, shifts = verdict.reliance, verdict.shifts or {}
    if rule["rule"] == "flip" or shifts.get("relative_content") is None:
        other = verdict.text_only if rule["rule"] == "flip" else verdict.content_free
        without = "the image taken away" if rule["rule"] == "flip" else _REFERENCE.get(other.ablation, other.ablation)
        moved = "changed" if verdict.image_reliant else "did not change"
        return (f"With the study the model answered '{verdict.answer}'; with {without}, '{other.answer}': the "
                f"image {moved} the answer.")
    relative, threshold = shifts["relative_content"], rule["threshold"]
    reference = _REFERENCE.get(rule.get("reference"), "a content-free image")
    verdict_words = "the image mattered" if relative >= threshold else "the image did not matter"
    comparison = "at or above" if relative >= threshold else "below"
    return (f"With the study the model answered '{verdict.answer}'; with {reference} of the same size, "
            f"'{verdict.content_free.answer}'. The study moved its yes/no balance by {relative:.2f} (relative), "
            f"{comparison} the threshold of {threshold:g}: {verdict_words}.")
