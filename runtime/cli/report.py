"""The human-readable verdict of `quadrant check`.

A verdict on a study out of scope (checked under `--scope any`, for research) never shows as a plain
quadrant: its verdict line says OUT OF SCOPE first, in white on red, and the quadrant is never green.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import vocabulary
from ..verdict import Verdict

_STYLE = {"green": "bold green", "amber": "bold yellow", "red": "bold red", "grey": "bold white on red"}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _reliance_line(verdict: Verdict) -> str:
    """What the reliance judgement used, so the reader can recompute it."""
    rule, shifts = verdict.reliance, verdict.shifts or {}
    line = f"Text-only shift {_fmt(verdict.margin_shift, '+.3f')}"
    if shifts.get("content") is not None:
        line += (f"; content shift {shifts['content']:+.3f} against a {rule.get('reference', 'blank')} image, "
                 f"relative {shifts['relative_content']:.2f}")
    threshold = f", threshold {rule['threshold']:g}" if rule["rule"] == "content" else ""
    return f"{line} (reliance rule {rule['rule']}{threshold})"


def _study_line(verdict: Verdict) -> str:
    """The study's format and size, its header facts when it has them, and the frame checked."""
    image, scope = verdict.image, verdict.scope or {}
    facts = [scope.get(k) for k in ("modality", "body_part", "view") if scope.get(k)]
    if scope.get("frame") is not None:
        facts.append(f"frame {scope['frame']} of {scope.get('frames', '?')}")
    shown = f"  {' '.join(map(str, facts))}" if facts else ""
    return f"Study  {image['format']} {image['width']}x{image['height']}{shown}  sha256 {image['sha256'][:16]}…"


def print_verdict(verdict: Verdict, console: Console | None = None) -> None:
    console = console or Console()
    model = verdict.model
    console.print(_study_line(verdict), highlight=False)
    runtime = [model["backend"], model["device"], model["dtype"]] + ([model["provider"]] if "provider" in model else [])
    console.print(f"Model  {model['name']} ({model['family']}, {', '.join(runtime)})  {model['fingerprint'][:23]}…")
    if "validation" in model:  # an ONNX export whose verdicts were checked against its PyTorch source
        console.print(f"Export {model['validation']['summary']}")
    table = Table(show_edge=False, pad_edge=False)
    for column, justify in (("#", "right"), ("phrasing", "left"), ("from", "left"), ("answer", "left"),
                            ("p(yes)", "right"), ("margin", "right")):
        table.add_column(column, justify=justify)
    for index, prompt in enumerate(verdict.prompts):
        text = prompt.text + (" [dim](inverted)[/dim]" if prompt.inverted else "")
        table.add_row(str(index), text, prompt.source or "", prompt.answer, _fmt(prompt.p_yes, ".3f"),
                      _fmt(prompt.margin, "+.3f"))
    t = verdict.text_only
    table.add_row("T", f"{t.text} [dim](text only, ablation {t.ablation})[/dim]", "", t.answer,
                  _fmt(t.p_yes, ".3f"), _fmt(t.margin, "+.3f"))
    r = verdict.content_free
    if r is not None and r.ablation != t.ablation:
        table.add_row("R", f"{r.text} [dim](content-free {r.ablation} image)[/dim]", "", r.answer,
                      _fmt(r.p_yes, ".3f"), _fmt(r.margin, "+.3f"))
    console.print(table)
    console.print(_reliance_line(verdict))
    console.print(f"{verdict.flip_count} of {len(verdict.prompts) - 1} paraphrases disagree")
    if verdict.evidence:
        e = verdict.evidence
        console.print(f"Evidence  {e['reading']} (occlusion, {e['grid'][0]}x{e['grid'][1]} {e['fill']}, "
                      f"{e['mode']} map in {e['forwards']} forwards, largest |delta| {e['max_abs_delta']:.3f})")
    if verdict.correct is not None:
        console.print(f"Label {verdict.label}: the answer is {'correct' if verdict.correct else 'WRONG'}")
    for warning in verdict.warnings or []:
        console.print(f"[bold yellow]Warning[/] {escape(warning)}", highlight=False)
    style = _STYLE[vocabulary.verdict_tone(verdict)]
    timing = f"({verdict.timing_ms.get('total', 0):.0f} ms)"
    console.print(f"Verdict [{style}]{escape(vocabulary.title(verdict).upper())}[/]: "
                  f"{escape(vocabulary.answer_line(verdict))}  {timing}", highlight=False)
    for sentence in (vocabulary.meaning(verdict), vocabulary.decided_by(verdict),
                     f"What to do: {vocabulary.advice(verdict)}"):
        console.print(escape(sentence), highlight=False)
    console.print(f"[dim]{vocabulary.NOT_FOR_DIAGNOSIS}[/dim]")
