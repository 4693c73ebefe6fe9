"""The verdict as a clinician reads it: a banner, the 2x2 grid with this study's cell lit, every phrasing's
answer with a p(yes) bar, the text-only answer, the margin shift, and the facts that make it reproducible.

Pure functions from the verdict JSON to HTML (styled by quadrant.css), so the page and any report render
the same thing, and a test can read it without a browser. Every piece of text that came from a user or a
file goes through `html.escape`. The reliance block renders whatever keys `verdict["reliance"]` carries, so
a new rule's extra parameters show up without a change here.
"""

from __future__ import annotations

import html
import json

from quadrant import vocabulary
from quadrant.verdict import Verdict

EXPLAINER = """\
Quadrant asks the model your question several ways with the study, and again with the study's content taken
away (a blank gray image of the same size). Two things can go wrong, and together they make four verdicts
on the model's answer:

- **Ideal answer** (green): every phrasing gets the same answer, and the study's image moved it.
- **Fragile answer** (amber): the study's image moved the answer, but rewording the question changed it.
- **Dangerous answer** (red): every phrasing gets the same answer, but the study's image did not move it:
  the blank image gets the same answer. This is the trap: a consistent, confident answer that this study's
  content did not produce. For a "no", a blank image shows no finding either, so a model that looked and
  saw nothing answers both the same way; only an evaluation with labelled studies can tell the two apart.
- **Worst answer** (red): the answer changes with the wording, and the study's image did not move it.

Consistency alone does not catch Dangerous, and neither does confidence; one extra pass without the image
does ("Consistent but Dangerous", arXiv 2603.20985). A paraphrase marked with `!` is *inverted*: its "yes"
means the finding is absent, and its answer is turned round before comparing.
"""

NOT_FOR_DIAGNOSIS = vocabulary.NOT_FOR_DIAGNOSIS


def verdict_html(verdict: dict) -> str:
    """The whole verdict panel."""
    return "\n".join((
        banner_html(verdict),
        '<div class="q-row">',
        grid_html(verdict["quadrant"]),
        reliance_html(verdict),
        "</div>",
        phrasings_html(verdict),
        evidence_html(verdict),
        facts_html(verdict),
        f'<p class="q-notice">{html.escape(NOT_FOR_DIAGNOSIS)}</p>',
    ))


def evidence_html(verdict: dict) -> str:
    """The map's one-line reading, under the phrasings; empty when the check ran without a map."""
    evidence = verdict.get("evidence")
    if not evidence:
        return ""
    rows, cols = evidence["grid"]
    return (f'<p id="quadrant-evidence" class="q-evidence"><b>Where the answer comes from:</b> '
            f'{html.escape(evidence["reading"])} <span class="q-small">(occlusion map, {rows} x {cols} cells, '
            f'{html.escape(evidence["fill"])} fill; red cells hold up the answer when hidden, blue ones hold it '
            'back: a map of what changes this model\'s answer, not a segmentation)</span></p>')


def banner_html(verdict: dict) -> str:
    v = Verdict.from_json(verdict)
    colour = vocabulary.tone(v.quadrant)
    role = "alert" if colour == "red" else "status"
    return (
        f'<div id="quadrant-banner" class="q-banner q-{colour}" role="{role}" data-quadrant="{v.quadrant}">'
        f'<div class="q-banner-title">{html.escape(vocabulary.title(v).upper())}</div>'
        f'<div class="q-banner-text">{html.escape(vocabulary.answer_line(v))} {html.escape(vocabulary.meaning(v))}'
        f'</div><div class="q-banner-text">{html.escape(vocabulary.decided_by(v))}</div>'
        f'<div class="q-banner-action"><b>What to do:</b> {html.escape(vocabulary.advice(v))}</div></div>'
    )


def grid_html(quadrant: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in vocabulary.GRID_COLUMNS)
    rows = []
    for label, cells in vocabulary.GRID_ROWS:
        tds = "".join(
            f'<td class="q-cell q-{vocabulary.tone(q)}{" q-lit" if q == quadrant else ""}" '
            f'data-quadrant="{q}">{q}{" &larr; this study" if q == quadrant else ""}</td>'
            for q in cells
        )
        rows.append(f"<tr><th>{html.escape(label)}</th>{tds}</tr>")
    return f'<table id="quadrant-grid" class="q-grid"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def reliance_html(verdict: dict) -> str:
    """What the reliance judgement used (the content-free reading, the relative shift against the threshold),
    the paper's text-only baseline beside it, and consistency figures, as a small definition list."""
    text_only, first = verdict["text_only"], verdict["prompts"][0]
    reference, shifts = verdict.get("content_free") or {}, verdict.get("shifts") or {}
    rule = dict(verdict.get("reliance") or {})
    items = [("Margin with the image", _signed(first.get("margin")))]
    if reference:
        items += [
            (f"Margin with a content-free image ({reference.get('ablation')})", _signed(reference.get("margin"))),
            ("Content shift, relative to the margins", _relative(shifts.get("relative_content"), rule)),
        ]
    items += [
        (f"Margin without the image (ablation {text_only.get('ablation')})", _signed(text_only.get("margin"))),
        ("Text-only shift (with image minus without)", _signed(verdict.get("margin_shift"))),
    ]
    items += [(f"Reliance {key}", _value(value)) for key, value in rule.items()]
    items += [
        ("Image-reliant", "yes" if verdict["image_reliant"] else "no"),
        ("Image-reliant by the paper's flip rule", "yes" if verdict.get("flip_reliant") else "no"),
        ("Phrasings that disagree", f"{verdict['flip_count']} of {len(verdict['prompts']) - 1}"),
        ("Margin spread across phrasings", _plain(verdict.get("margin_spread"))),
    ]
    return facts_list(items, "quadrant-reliance")


def _relative(value, rule: dict) -> str:
    """The content rule's statistic beside its threshold, so the reader sees how close the call was."""
    if value is None:
        return "-"
    if rule.get("rule") != "content":
        return _plain(value, ".2f")
    side = ">=" if value >= rule.get("threshold", 0) else "<"
    return f"{value:.2f} ({side} threshold {_plain(rule.get('threshold'), 'g')})"


#: where a paraphrase came from (the prompt's `source`), as a reader would say it; the question itself is unmarked
SOURCE_NOTES = {"bank": "bank synonym", "rewrite": "reworded", "frame": "framed", "model": "paraphrase model",
                "user": "yours", "file": "from your file"}


def phrasings_html(verdict: dict) -> str:
    rows = [_phrasing_row(str(i), p["text"], p.get("inverted"), p["answer"], p.get("p_yes"), p.get("margin"),
                          note=SOURCE_NOTES.get(p.get("source")))
            for i, p in enumerate(verdict["prompts"])]
    t = verdict["text_only"]
    rows.append(_phrasing_row("T", t["text"], False, t["answer"], t.get("p_yes"), t.get("margin"),
                              note=f"text only, image taken away ({t.get('ablation')})"))
    r = verdict.get("content_free")
    if r and r.get("ablation") != t.get("ablation"):
        rows.append(_phrasing_row("R", r["text"], False, r["answer"], r.get("p_yes"), r.get("margin"),
                                  note=f"content-free {r.get('ablation')} image of the same size"))
    return (
        '<table id="quadrant-phrasings" class="q-phrasings"><tr><th>#</th><th>phrasing</th><th>answer</th>'
        '<th>p(yes)</th><th>margin</th></tr>' + "".join(rows) + "</table>"
    )


def facts_html(verdict: dict) -> str:
    model, image, timing = verdict["model"], verdict["image"], verdict.get("timing_ms") or {}
    runtime = [model.get("family", "?"), model.get("backend"), model.get("device"), model.get("dtype")]
    if "provider" in model:  # an ONNX export: the execution provider that ran it
        runtime.append(model["provider"])
    items = [
        ("Model", f"{model.get('name')} ({', '.join(map(str, runtime))})"),
        ("Fingerprint", str(model.get("fingerprint"))),
        ("Study", f"{image.get('format')} {image.get('width')} x {image.get('height')}, sha256 {image.get('sha256')}"),
        ("Time", f"{_plain(timing.get('total'), '.0f')} ms ({timing.get('path', '?')}, {_together(timing)})"),
    ]
    return facts_list(items, "quadrant-model", "q-facts q-small")


def error_html(message: str, title: str = "This study could not be checked.", elem_id: str = "quadrant-error") -> str:
    """A failure, shown where the verdict would be: what went wrong, in one line, never a traceback."""
    return (f'<div id="{elem_id}" class="q-error" role="alert"><b>{html.escape(title)}</b> '
            f"{html.escape(message)}</div>")


def facts_list(items: list[tuple[str, str]], elem_id: str, classes: str = "q-facts") -> str:
    """(label, value) pairs as a definition list, escaped."""
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    return f'<dl id="{elem_id}" class="{classes}">{rows}</dl>'


def placeholder_html() -> str:
    return ('<div class="q-placeholder">Upload a study (or pick an example), choose a finding or type a '
            "yes/no question, then press <b>Check this study</b>.</div>")


def _phrasing_row(index: str, text: str, inverted, answer: str, p_yes, margin, note: str | None = None) -> str:
    tags = ' <span class="q-tag">inverted: yes means absent</span>' if inverted else ""
    if note:
        tags += f' <span class="q-tag">{html.escape(note)}</span>'
    width = 0.0 if p_yes is None else max(0.0, min(1.0, float(p_yes))) * 100
    bar = (f'<div class="q-bar"><div class="q-bar-fill q-{html.escape(answer)}" style="width:{width:.1f}%"></div>'
           f'<span>{_plain(p_yes, ".3f")}</span></div>')
    row_class = ' class="q-text-only"' if index == "T" else ""
    return (f"<tr{row_class}><td>{index}</td><td>{html.escape(text)}{tags}</td>"
            f'<td class="q-answer q-{html.escape(answer)}">{html.escape(answer)}</td><td>{bar}</td>'
            f"<td>{_signed(margin)}</td></tr>")


def _together(timing: dict) -> str:
    n = timing.get("studies_in_batch", 1)
    if n == 1:
        return "scored alone"
    return f"scored together with {n - 1} other {'study' if n == 2 else 'studies'}"


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
