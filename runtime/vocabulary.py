"""The verdict's words, in one place: what each quadrant is called and means, what decided image reliance,
and what a reader should do. The terminal, the app, the reports and the DICOM results all say it this way.

Three rules hold every sentence here to what was measured:

- A verdict word names the *answer*, never the finding: "Dangerous answer", because "DANGEROUS: the model
  answered 'yes'" to "Is there a pneumothorax?" reads as a dangerous pneumothorax.
- Image reliance is stated as the comparison that decided it (the study against a content-free image of the
  same size, or with the image against without it), with its figure, and never as "the model did not look":
  an unmoved answer shows only that *this* comparison did not move it.
- A verdict on a study out of scope (checked anyway, under the research override) is never shown as a plain
  quadrant, and never green: it is "out of scope, research only" first.
- A 'no' judged against a content-free image carries its caveat: a blank image shows no finding either, so a
  model that read the film and saw nothing answers both the same way. Only a labelled evaluation, comparing
  with a study whose answer is the opposite, can tell the two apart.

A run compared with another study of the same label (`same-label`) is a control, and says so: there a model
that reads the film is expected *not* to move, so its quadrants are read beside an `opposite` run, never as
advice on an answer.
"""

from __future__ import annotations

from .verdict import Verdict

QUADRANTS = ("Ideal", "Fragile", "Dangerous", "Worst")

#: how loudly each quadrant is shown: green to weigh, amber to doubt, red not to rely on; grey for a verdict on
#: a study out of scope, whatever its quadrant
TONES = {"Ideal": "green", "Fragile": "amber", "Dangerous": "red", "Worst": "red"}
#: the grey state: a verdict computed under a research override on a study or question Quadrant does not judge
OUT_OF_SCOPE = "Out of scope, research only"
OUT_OF_SCOPE_ADVICE = "Do not use this answer for a patient: Quadrant does not judge this study or question."
OUT_OF_SCOPE_TONE = "grey"

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
    "opposite": "another study of this dataset whose label is the opposite",
    "same-label": "another study of this dataset with the same label",
}
#: ... and what the flip rule compares with
WITHOUT_IMAGE = "the same question asked without the image"
#: references that show no finding, so an unmoved 'no' against them is ambiguous
CONTENT_FREE = frozenset({"blank", "white", "noise"})

NO_CAVEAT = ("A content-free image shows no finding either, so this cannot tell a model that looked and saw "
             "nothing from one that did not look; an evaluation with labels can (--reference opposite).")
#: the same caution for a whole run judged against a content-free image
DATASET_NO_CAVEAT = ("A content-free image shows no finding either, so a correct 'no' from a model that looked and "
                     "saw nothing counts as Dangerous just as one from a model that did not look; an evaluation "
                     "with labels can tell them apart (--reference opposite).")
#: a same-label reference is a control: a reader's answer is expected not to move
CONTROL_NOTE = ("This is a control: a model that reads the film answers another study with the same label the "
                "same way, so an unmoved answer is expected here; read it beside --reference opposite.")
CONTROL_ADVICE = "Read this as a control beside a run with --reference opposite, not as advice on this answer."

NOT_FOR_DIAGNOSIS = "Not for diagnostic use. Quadrant checks a model's behaviour; it does not make a diagnosis."


def title(verdict: Verdict) -> str:
    """The verdict word as it heads a banner or a report: it qualifies the answer, not the finding; an
    out-of-scope verdict gets no quadrant word at all."""
    return f"{verdict.quadrant} answer" if verdict.in_scope else OUT_OF_SCOPE


def answer_line(verdict: Verdict) -> str:
    """What was asked and answered, so a screenshot says what was judged."""
    return f"The model answered \u201c{verdict.answer}\u201d to \u201c{verdict.question}\u201d."


def reference_name(reliance: dict) -> str:
    """What a rule compares a study with, in general (a run's report names no single other study)."""
    if reliance.get("rule") == "flip":
        return WITHOUT_IMAGE
    return REFERENCES.get(reliance.get("reference"), f"the {reliance.get('reference')} reference")


def compared_with(verdict: Verdict) -> str:
    """What the study was compared with to judge image reliance, under the verdict's rule; another labelled
    study is named by its id."""
    other = verdict.counterfactual
    name = reference_name(verdict.reliance)
    return name if other is None or verdict.reliance.get("rule") == "flip" else f"{name} ({other.study_id})"


def dataset_note(reliance: dict) -> str | None:
    """The one caution a run's report needs about what its comparison can tell, if any."""
    if reliance.get("rule") == "flip":
        return None
    if reliance.get("reference") in CONTENT_FREE:
        return DATASET_NO_CAVEAT
    return CONTROL_NOTE if reliance.get("reference") == "same-label" else None


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
    if is_control(verdict.reliance):
        text += " " + CONTROL_NOTE
    return text


def is_control(reliance: dict) -> bool:
    """A same-label reference: its quadrants are a control, not a judgement of the answer."""
    return reliance.get("rule") != "flip" and reliance.get("reference") == "same-label"


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
    reference = compared_with(verdict)
    shifts = verdict.shifts or {}
    if verdict.counterfactual is not None:
        r, relative, other = verdict.counterfactual, shifts.get("relative_counterfactual"), "the other study"
    else:
        r, relative, other = verdict.content_free, shifts.get("relative_content"), "the reference"
    if r is None or relative is None or first.p_yes is None or r.p_yes is None:
        answer = "-" if r is None else r.answer
        return (f"Decided by comparing the study with {reference}: \u201c{first.answer}\u201d with the study, "
                f"\u201c{answer}\u201d with {other}.")
    figures = (f"Decided by comparing the study with {reference}: the chance of \u201cyes\u201d was {first.p_yes:.2f} "
               f"with the study and {r.p_yes:.2f} with {other}")
    if r.answer != first.answer:
        return f"{figures}, so the study's image turned the answer round (a flip always counts)."
    threshold = verdict.reliance.get("threshold", 0)
    enough = "at least" if relative >= threshold else "less than"
    return (f"{figures}, so the study moved the model's yes-no balance by {relative:.0%} of its size, {enough} the "
            f"{threshold:.0%} this rule asks of an image that moved the answer.")


def advice(verdict: Verdict) -> str:
    if not verdict.in_scope:
        return OUT_OF_SCOPE_ADVICE
    return CONTROL_ADVICE if is_control(verdict.reliance) else ADVICE[verdict.quadrant]


def tone(quadrant: str) -> str:
    """A quadrant's colour, for legends and the grid."""
    return TONES[quadrant]


def verdict_tone(verdict: Verdict) -> str:
    """The colour a verdict is shown in: its quadrant's, but grey (never green) for a study out of scope."""
    return TONES[verdict.quadrant] if verdict.in_scope else OUT_OF_SCOPE_TONE


def _disagreeing(verdict: Verdict) -> str:
    n = len(verdict.prompts) - 1
    k = verdict.flip_count
    return f"{k} of the {n} rewordings of the question gave the other answer"


# ------------------------------------------------------------------------------------------ what was judged


def model_version(model: dict) -> str:
    """A model's version as a person can quote it: the start of its fingerprint (a hash of weights and adapter),
    which changes whenever the weights do, whatever the model is called."""
    fingerprint = str(model.get("fingerprint") or "")
    return fingerprint.partition(":")[2][:12] or fingerprint[:12] or "unknown"


def model_line(model: dict) -> str:
    """The model as the banner and the report name it."""
    return f"{model.get('name')}, version {model_version(model)}"


def study_line(image: dict, uploaded: str | None = None) -> str:
    """The study as the banner and the report name it: technical facts and a short hash, never an identifier."""
    line = (f"{image.get('format')}, {image.get('width')} x {image.get('height')} pixels, "
            f"image hash {str(image.get('sha256'))[:12]}")
    return f"{line}, uploaded {uploaded}" if uploaded else line


# ------------------------------------------------------------------------------------------ out of scope



def scope_line(verdict: Verdict) -> str:
    """Why the study or question is out of scope, and what the result below it is."""
    reasons = "; ".join((verdict.scope or {}).get("reasons") or ()) or "no reason recorded"
    return (f"Quadrant does not judge this study or question ({reasons}). What follows was measured under a "
            "research override and is not a verdict on the answer.")


# ------------------------------------------------------------------------------------------ the rows

#: how a row's answer is shown: as the original question reads it, the raw answer second for inverted wordings
INVERTED_NOTE = "worded the other way round; the model said \u201c{raw}\u201d to it"
AGREES, DISAGREES = "agrees", "disagrees"


def as_question_reads(answer: str, inverted: bool) -> str:
    """A phrasing's answer as the original question reads it: an inverted wording's yes is the question's no."""
    if not inverted or answer not in ("yes", "no"):
        return answer
    return "no" if answer == "yes" else "yes"


def asked(reading) -> str:
    """How prompt 0 was asked for a text-only or content-free reading, in the reader's words."""
    if reading.ablation == "none":
        return "with no image at all"
    if reading.ablation == "swap":
        return "with another study's image"
    return f"with {REFERENCES.get(reading.ablation, f'a {reading.ablation} image')}"


def deciding(verdict: Verdict) -> str:
    """Which reading decided image reliance: 'text_only' under the flip rule, else 'content_free'."""
    return "text_only" if verdict.reliance.get("rule") == "flip" or verdict.content_free is None else "content_free"


# ------------------------------------------------------------------------------------------ evidence maps


def evidence_legend(answer: str) -> tuple[str, str]:
    """The two ends of an evidence map's colour scale, by the answer given (not by yes or no)."""
    return f"supports the answer \u201c{answer}\u201d", "argues against it"


EVIDENCE_NOTE = "A map of what changes this model's answer when part of the image is hidden, not a segmentation."


def evidence_key(answer: str) -> str:
    """The map's colours in a sentence, by the answer given."""
    return (f"Red cells support the answer \u201c{answer}\u201d: hiding one pulls the model away from it. Blue cells "
            "argue against it: hiding one makes the model surer.")

# ------------------------------------------------------------------------------------------ details

#: one line for each figure of the folded Details section
GLOSSES = {
    "margin": "the model's yes-versus-no score for the question with the study (log-odds): above 0 is yes, "
              "the further from 0 the surer",
    "reference_margin": "the same score with the content-free image the content rule compares with",
    "relative_content": "how far the study moved the score away from the content-free image's, as a share of the "
                        "larger of the two; the content rule counts at least the threshold as the image moving "
                        "the answer",
    "text_only_margin": "the same score with the image taken away (the paper's text-only pass)",
    "margin_shift": "the score with the image minus the score without it",
    "rule": "which comparison decides whether the image moved the answer: content (the study against a "
            "content-free image) or flip (the answer must change when the image is removed)",
    "threshold": "the share the content rule asks the study to move the score by",
    "reference": "the content-free image the content rule compares the study with",
    "flip_reliant": "whether removing the image changed the answer: the paper's rule, shown beside the chosen one",
    "flip_count": "phrasings whose answer differs from the question's, inverted wordings turned round",
    "margin_spread": "the largest minus the smallest score across phrasings: how far rewording moved the model, "
                     "even where the answer held",
    "margins": "each phrasing's score, in the table's order (inverted wordings as the model answered them)",
    "evidence": "the largest change in the score when one cell is hidden, and the score it is measured against",
    "runtime": "the model's architecture, the software that ran it, the processor and the number format",
    "fingerprint": "a hash of the model's weights and adapter: the same hash is the same model",
    "validation": "a compiled or quantized export, checked against the model it came from: the share of verdicts "
                  "that came out the same on studies it never trained on",
    "sha256": "a hash of the study: the same hash is the same study",
    "time": "how long the check took, how the prompts were computed (every way gives the same scores as "
            "asking each phrasing on its own), and whether other studies were scored in the same batch",
}
