"""The verdict as a clinician reads it: a banner that says what was judged and what decided it, the 2x2 grid
with this study's cell lit, what the image changed, every phrasing's answer as the question reads it, the
evidence map, and the figures folded away in Details, each with a one-line gloss.

Pure functions from a `Verdict` to HTML (styled by quadrant.css), so the page and the printable report render
the same thing and a test can read it without a browser. Every sentence about the verdict comes from
`quadrant.vocabulary`; every piece of text that came from a user or a file goes through `html.escape`. The
Details block renders whatever keys the verdict's `reliance` carries, so a new rule's extra parameters show
up without a change here.
"""

from __future__ import annotations

import base64
import html
import json

from quadrant import vocabulary
from quadrant.errors import ParaphraseError, QuestionError, StudyError
from quadrant.verdict import PromptReading, Verdict

NOT_FOR_DIAGNOSIS = vocabulary.NOT_FOR_DIAGNOSIS
#: the banner icon's shape per tone, in words (ICONS draws them)
SHAPES = {"green": "a tick in a circle", "amber": "an exclamation mark in a triangle",
          "red": "a cross in an octagon", "grey": "a bar in a square"}

EXPLAINER = "\n".join((
    "Quadrant asks the model your question several ways with the study, and again with the study's content "
    "taken away (a blank gray image of the same size). Two things can go wrong, and together they make four "
    "verdicts on the model's answer:",
    "",
    *(f"- **{q} answer** ({vocabulary.tone(q)}, {SHAPES[vocabulary.tone(q)]}): {vocabulary.DEFINITIONS[q]}."
      for q in vocabulary.QUADRANTS),
    "",
    "Dangerous is the trap: a consistent, confident answer that this study's content did not produce. For a "
    "\"no\", a blank image shows no finding either, so a model that looked and saw nothing answers both the same "
    "way; only an evaluation with labelled studies can tell the two apart. Consistency alone does not catch "
    "Dangerous, and neither does confidence; one extra pass without the image does (\"Consistent but "
    "Dangerous\", arXiv 2603.20985).",
    "",
    "A paraphrase marked with `!` is *inverted*: its \"yes\" means the finding is absent; the table shows its "
    "answer as your question reads it. A verdict on a study or question outside what Quadrant judges is grey, "
    f"\"{vocabulary.OUT_OF_SCOPE}\" ({SHAPES['grey']}), never one of the four.",
))

#: where a paraphrase came from (the prompt's `source`), as a reader would say it; the question itself is unmarked
SOURCE_NOTES = {"bank": "bank synonym", "rewrite": "reworded", "frame": "framed", "model": "paraphrase model",
                "user": "yours", "file": "from your file"}

#: the banner's icon per tone: a shape and a mark, so the verdict reads without colour (the word is beside it)
ICONS = {
    "green": '<circle cx="14" cy="14" r="13" fill="#1b5e20"/>'
             '<path d="M7.5 14.5l4.5 4.5 8.5-9.5" stroke="#fff" stroke-width="3.2" fill="none"/>',
    "amber": '<path d="M14 1.5 L27 25.5 H1 Z" fill="#7a4f00"/>'
             '<rect x="12.4" y="9" width="3.2" height="9" fill="#fff"/><rect x="12.4" y="20" width="3.2" height="3.2" '
             'fill="#fff"/>',
    "red": '<polygon points="9,1 19,1 27,9 27,19 19,27 9,27 1,19 1,9" fill="#b71c1c"/>'
           '<path d="M9.5 9.5l9 9M18.5 9.5l-9 9" stroke="#fff" stroke-width="3.2"/>',
    "grey": '<rect x="1.5" y="1.5" width="25" height="25" rx="3" fill="#4a4a4a"/>'
            '<path d="M7 14h14" stroke="#fff" stroke-width="3.2"/>',
}


def verdict_html(verdict: Verdict, *, uploaded: str | None = None, overlay_png: bytes | None = None,
                 map_note: str | None = None) -> str:
    """The whole verdict panel. `uploaded`: when the study was uploaded (the banner restates it);
    `overlay_png`: the evidence map drawn over the study, when the check made one; `map_note`: what stands in
    the map's place while it is drawn, or when it could not be (`map_drawing`, `map_failed`)."""
    return "\n".join((
        banner_html(verdict, uploaded),
        '<div class="q-row">',
        grid_html(verdict),
        comparisons_html(verdict),
        "</div>",
        phrasings_html(verdict),
        evidence_html(verdict, overlay_png, map_note),
        details_html(verdict),
        f'<p class="q-notice">{html.escape(NOT_FOR_DIAGNOSIS)}</p>',
    ))


def banner_html(verdict: Verdict, uploaded: str | None = None) -> str:
    """The verdict in words: icon and title, what was answered and measured, what decided it, what to do, and
    what was judged (question, model and version, study), so that a screenshot identifies it."""
    tone = vocabulary.verdict_tone(verdict)
    role = "alert" if tone in ("red", "grey") else "status"
    state = "in-scope" if verdict.in_scope else "out-of-scope"
    scope = (f'<p class="q-banner-text q-scope">{_e(vocabulary.scope_line(verdict))}</p>'
             if not verdict.in_scope else "")
    return (
        f'<section id="quadrant-banner" class="q-banner q-{tone}" role="{role}" data-quadrant="{verdict.quadrant}" '
        f'data-state="{state}" aria-labelledby="quadrant-banner-title">'
        f'<div class="q-banner-head"><svg class="q-icon" viewBox="0 0 28 28" width="30" height="30" '
        f'aria-hidden="true">{ICONS[tone]}</svg>'
        f'<h2 id="quadrant-banner-title" class="q-banner-title">{_e(vocabulary.title(verdict).upper())}</h2></div>'
        f"{scope}"
        f'<p class="q-banner-text">{_e(vocabulary.answer_line(verdict))} {_e(vocabulary.meaning(verdict))}</p>'
        f'<p class="q-banner-text" id="quadrant-decided">{_e(vocabulary.decided_by(verdict))}</p>'
        f'<p class="q-banner-action"><b>What to do:</b> {_e(vocabulary.advice(verdict))}</p>'
        f"{judged_html(verdict, uploaded)}</section>"
    )


def judged_html(verdict: Verdict, uploaded: str | None = None) -> str:
    """The line that ties a verdict to what was judged."""
    parts = (("Question", f"\u201c{verdict.question}\u201d"), ("Model", vocabulary.model_line(verdict.model)),
             ("Study", vocabulary.study_line(verdict.image, uploaded)))
    return ('<p class="q-judged" id="quadrant-judged">'
            + " ".join(f'<span><b>{label}</b> {_e(value)}</span>' for label, value in parts) + "</p>")


def grid_html(verdict: Verdict) -> str:
    """The 2x2 grid with this study's cell lit (grey, and not lit as a quadrant, when out of scope)."""
    lit = verdict.quadrant if verdict.in_scope else None
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in vocabulary.GRID_COLUMNS)
    rows = []
    for label, cells in vocabulary.GRID_ROWS:
        tds = "".join(
            f'<td class="q-cell q-{vocabulary.tone(q)}{" q-lit" if q == lit else ""}" data-quadrant="{q}">'
            f'{q}{"<br><span class=q-here>this study</span>" if q == lit else ""}</td>'
            for q in cells
        )
        rows.append(f'<tr><th scope="row">{_e(label)}</th>{tds}</tr>')
    return (f'<table id="quadrant-grid" class="q-grid"><caption class="q-sr">The four verdicts</caption>'
            f'<tr><td class="q-corner"></td>{head}</tr>{"".join(rows)}</table>')


def comparisons_html(verdict: Verdict) -> str:
    """Prompt 0 with the study, with the content-free image and without any image, the comparison that decided
    image reliance marked: the figures the banner's sentence rests on."""
    first, t, r = verdict.prompts[0], verdict.text_only, verdict.content_free
    deciding = vocabulary.deciding(verdict)
    rows = [("with the study", first.answer, first.p_yes, False)]
    if r is not None and r.ablation != t.ablation:
        rows.append((vocabulary.asked(r), r.answer, r.p_yes, deciding == "content_free"))
    rows.append((vocabulary.asked(t), t.answer, t.p_yes,
                 deciding == "text_only" or (r is not None and r.ablation == t.ablation)))
    body = "".join(
        f'<tr{" class=q-decisive" if decisive else ""}><th scope="row">{_e(label.capitalize())}'
        f'{" <span class=q-tag>decided whether the image moved the answer</span>" if decisive else ""}</th>'
        f'<td class="q-answer">{_e(answer)}</td><td class="q-chance-cell">{_chance(p_yes)}</td></tr>'
        for label, answer, p_yes, decisive in rows
    )
    return (f'<div class="q-scroll q-compare" role="region" aria-label="What the image changed" tabindex="0">'
            f'<table id="quadrant-compare"><caption>Your question, with and without the study\'s image</caption><tr>'
            f'<th scope="col">asked</th><th scope="col">answer</th><th scope="col">chance of \u201cyes\u201d</th>'
            f'</tr>{body}</table></div>')


def phrasings_html(verdict: Verdict) -> str:
    """Every phrasing's answer as the original question reads it (inverted wordings turned round, the raw
    answer second), each one that disagrees with the question's marked in words and by a shape."""
    rows = "".join(_phrasing_row(i, p, verdict.answer) for i, p in enumerate(verdict.prompts))
    n, k = len(verdict.prompts) - 1, verdict.flip_count
    summary = "every phrasing agrees with your question's answer" if k == 0 else \
        f"{k} of {n} phrasings disagree with your question's answer (marked)"
    return (f'<div class="q-scroll" role="region" aria-label="Phrasings and their answers" tabindex="0">'
            f'<table id="quadrant-phrasings" class="q-phrasings"><caption>Each phrasing, answered as your question '
            f'reads it: {_e(summary)}</caption><tr><th scope="col">#</th><th scope="col">phrasing</th>'
            f'<th scope="col">answer</th><th scope="col">chance of \u201cyes\u201d</th></tr>{rows}</table></div>')


def _phrasing_row(index: int, prompt: PromptReading, answer: str) -> str:
    reads = vocabulary.as_question_reads(prompt.answer, prompt.inverted)
    chance = prompt.p_yes if prompt.p_yes is None or not prompt.inverted else 1.0 - prompt.p_yes
    tags = ""
    if prompt.inverted:
        tags += ' <span class="q-tag">inverted</span>'
    if index and prompt.source in SOURCE_NOTES:
        tags += f' <span class="q-tag">{_e(SOURCE_NOTES[prompt.source])}</span>'
    disagrees = index > 0 and reads != answer
    mark = (f'<span class="q-mark q-disagrees"><span aria-hidden="true">\u2716</span> {vocabulary.DISAGREES}</span>'
            if disagrees else "")
    raw = (f'<span class="q-raw">{_e(vocabulary.INVERTED_NOTE.format(raw=prompt.answer))}</span>'
           if prompt.inverted else "")
    return (f'<tr class="{"q-disagree" if disagrees else "q-agree"}" data-answer="{_e(reads)}"><td>{index}</td>'
            f"<td>{_e(prompt.text)}{tags}</td>"
            f'<td class="q-answer"><span class="q-reads">{_e(reads)}</span> {mark}{raw}</td>'
            f'<td class="q-chance-cell">{_chance(chance)}</td></tr>')


def evidence_html(verdict: Verdict, overlay_png: bytes | None, note: str | None = None) -> str:
    """The map and its reading, under the phrasings; `note` in their place while the map is drawn or when it
    could not be (a status region, which a screen reader announces); empty when no map was asked for. A verdict
    whose map is still being drawn, with a `note`, shows the map so far: its picture a first look, not the map."""
    evidence = verdict.evidence
    if not evidence:
        if note is None:
            return ""
        return (f'<section id="quadrant-evidence-note" class="q-evidence" role="status" '
                f'aria-labelledby="quadrant-evidence-title"><h3 id="quadrant-evidence-title">Where the answer comes '
                f'from</h3><p>{_e(note)}</p></section>')
    reading = evidence["reading"]
    picture, status = "", ""
    if note is not None:
        status = f'<p id="quadrant-evidence-status" role="status">{_e(note)}</p>'
    if overlay_png is not None:
        kind, what = ("q-evidence-first-look", "First look at the evidence map") if note else \
            ("q-evidence-map", "Evidence map")
        picture = f'<img class="{kind}" src="{_data_url(overlay_png)}" alt="{what} over the study: {_e(reading)}">'
    return (f'<section id="quadrant-evidence" class="q-evidence" aria-labelledby="quadrant-evidence-title">'
            f'<h3 id="quadrant-evidence-title">Where the answer comes from</h3>{status}'
            f'<p><b>{_e(reading[:1].upper() + reading[1:])}.</b> {_e(vocabulary.evidence_key(verdict.answer))} '
            f'{_e(vocabulary.EVIDENCE_NOTE)}</p>{picture}</section>')


def map_drawing(forwards: int) -> str:
    """The map's place while it is drawn, after its verdict is shown."""
    return (f"The map is being drawn: the question is asked again up to {forwards} times with part of the image "
            "hidden. The verdict above does not wait for it; the report and the downloads come with the map.")


def map_so_far(done: int, forwards: int) -> str:
    """Above a map's first look, while the rest is drawn."""
    return (f"A first look while the map is drawn ({done} of up to {forwards} questions asked): dashed blocks were "
            "hidden whole, not cell by cell, so far. The report and the downloads come with the map.")


def map_failed(reason: str) -> str:
    """The map's place when it could not be drawn: the verdict still stands."""
    return f"The map could not be drawn ({reason}). The verdict above stands."


def details_html(verdict: Verdict) -> str:
    """The figures behind the verdict, folded: each with its one-line gloss."""
    items = [(label, value, vocabulary.GLOSSES.get(gloss, "a parameter of the reliance rule"))
             for label, value, gloss in detail_items(verdict)]
    rows = "".join(f'<dt>{_e(label)}</dt><dd><span class="q-value">{_e(value)}</span>'
                   f'<span class="q-gloss">{_e(gloss)}</span></dd>' for label, value, gloss in items)
    return (f'<details id="quadrant-details" class="q-details"><summary>Details: the figures behind the verdict'
            f'</summary><dl class="q-facts">{rows}</dl></details>')


def detail_items(verdict: Verdict) -> list[tuple[str, str, str]]:
    """(label, value, gloss key) for every figure of Details."""
    first, t, r = verdict.prompts[0], verdict.text_only, verdict.content_free
    rule, shifts, timing = dict(verdict.reliance), verdict.shifts or {}, verdict.timing_ms or {}
    items = [("Score with the study", _signed(first.margin), "margin")]
    if r is not None:
        items += [(f"Score {vocabulary.asked(r)}", _signed(r.margin), "reference_margin"),
                  ("Relative shift", _relative(shifts.get("relative_content"), rule), "relative_content")]
    items += [(f"Score {vocabulary.asked(t)}", _signed(t.margin), "text_only_margin"),
              ("Shift with the image minus without", _signed(verdict.margin_shift), "margin_shift")]
    items += [(f"Reliance {key}", _value(value), key) for key, value in rule.items()]
    items += [
        ("Image moved the answer by the paper's flip rule", _yes_no(verdict.flip_reliant), "flip_reliant"),
        ("Phrasings that disagree", f"{verdict.flip_count} of {len(verdict.prompts) - 1}", "flip_count"),
        ("Score spread across phrasings", _plain(verdict.margin_spread), "margin_spread"),
        ("Score per phrasing", ", ".join(_signed(p.margin) for p in verdict.prompts), "margins"),
    ]
    if verdict.evidence:
        items.append(("Evidence map", f"largest change {verdict.evidence['max_abs_delta']:.3f}, against a score of "
                      f"{_signed(first.margin)}; {verdict.evidence['grid'][0]} x {verdict.evidence['grid'][1]} "
                      f"cells, {verdict.evidence['fill']} fill", "evidence"))
    model = verdict.model
    runtime = [model.get("family", "?"), model.get("backend"), model.get("device"), model.get("dtype")]
    if "provider" in model:  # an ONNX export: the execution provider that ran it
        runtime.append(model["provider"])
    items += [
        ("Model", f"{model.get('name')} ({', '.join(map(str, runtime))})", "runtime"),
        ("Model fingerprint", str(model.get("fingerprint")), "fingerprint"),
        *([("Export checked", model["validation"]["summary"], "validation")] if "validation" in model else []),
        ("Study hash (SHA-256)", str(verdict.image.get("sha256")), "sha256"),
        ("Time", f"{_plain(timing.get('total'), '.0f')} ms ({timing.get('path', '?')}, {_together(timing)})", "time"),
    ]
    return items


# -- the printable report -------------------------------------------------------------------------------------

def report_html(verdict: Verdict, *, css: str, study_facts: list[tuple[str, str]], checked: str,
                user: str | None, uploaded: str | None = None, overlay_png: bytes | None = None) -> str:
    """A one-page report (print it, or save it as PDF from the print dialog): the verdict, what was judged, the
    phrasings, the model's name, version and fingerprint, the study's technical facts (never an identifier),
    the evidence map, the time, the user, and "not for diagnostic use". Self-contained: no request leaves it."""
    model = verdict.model
    facts = [("Question", verdict.question), ("Model", vocabulary.model_line(model)),
             ("Model fingerprint", str(model.get("fingerprint"))), *study_facts]
    if uploaded:
        facts.append(("Uploaded", uploaded))
    facts += [("Checked", checked), ("User", user or "(no login)")]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Quadrant report: {_e(verdict.question)}</title><style>{css}</style></head>"
        f'<body class="q-report"><header><h1>Quadrant check report</h1>'
        f'<p class="q-notice">{_e(NOT_FOR_DIAGNOSIS)}</p></header>'
        f"{banner_html(verdict, uploaded)}"
        f'<div class="q-row">{facts_list(facts, "quadrant-report-facts")}{comparisons_html(verdict)}</div>'
        f"{phrasings_html(verdict)}{evidence_html(verdict, overlay_png)}"
        f'<footer class="q-notice">{_e(NOT_FOR_DIAGNOSIS)}</footer></body></html>'
    )


# -- the rest of the page -------------------------------------------------------------------------------------

#: a refusal's heading names what was refused, so a question refused is never blamed on the study
REFUSALS = ((StudyError, "This study could not be checked."), (QuestionError, "This question cannot be checked."),
            (ParaphraseError, "These phrasings cannot be used."))
CHECK_FAILED = "The check could not run."


def refusal_title(exc: Exception) -> str:
    """The heading for a refusal of this kind; the check itself for any other."""
    return next((title for kind, title in REFUSALS if isinstance(exc, kind)), CHECK_FAILED)


def error_html(message: str, title: str = CHECK_FAILED, elem_id: str = "quadrant-error") -> str:
    """A failure (a refusal included), shown where the verdict would be: what went wrong, in one line."""
    return (f'<div id="{elem_id}" class="q-error" role="alert"><b>{_e(title)}</b> '
            f"{_e(message)}</div>")


def facts_list(items: list[tuple[str, str]], elem_id: str, classes: str = "q-facts") -> str:
    """(label, value) pairs as a definition list, escaped."""
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f'<dl id="{elem_id}" class="{classes}">{rows}</dl>'


def placeholder_html(changed: str | None = None) -> str:
    """Where the verdict goes before a check, and after anything it depended on changed (the old one is gone)."""
    if changed is None:
        text = ("Upload a study (or pick an example), choose a finding or type a yes/no question, then press "
                "<b>Check this study</b>.")
    else:
        text = (f"No verdict for what is shown now: {_e(changed)} since the last check, so its verdict was "
                "cleared. Press <b>Check this study</b> for a new one.")
    return f'<div id="quadrant-placeholder" class="q-placeholder" data-changed="{_e(changed or "")}">{text}</div>'


def _chance(p_yes) -> str:
    """A chance of "yes" as a number and a bar (the bar is decoration: the number says it)."""
    if p_yes is None:
        return "n/a"
    width = max(0.0, min(1.0, float(p_yes))) * 100
    return (f'<span class="q-bar" aria-hidden="true"><span class="q-bar-fill" style="width:{width:.1f}%"></span>'
            f'</span> <span class="q-chance">{float(p_yes):.2f}</span>')


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _relative(value, rule: dict) -> str:
    """The content rule's statistic beside its threshold, so the reader sees how close the call was."""
    if value is None:
        return "n/a"
    if rule.get("rule") != "content":
        return _plain(value, ".2f")
    side = "at least" if value >= rule.get("threshold", 0) else "below"
    return f"{value:.2f} ({side} the threshold {_plain(rule.get('threshold'), 'g')})"


def _together(timing: dict) -> str:
    n = timing.get("studies_in_batch", 1)
    if n == 1:
        return "scored alone"
    return f"scored together with {n - 1} other {'study' if n == 2 else 'studies'}"


def _yes_no(value) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _signed(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _value(value)


def _plain(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(float(value), spec)


def _value(value) -> str:
    """Any reliance parameter: numbers to 3 decimals, everything else as compact JSON or text."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _e(text) -> str:
    return html.escape(str(text))
