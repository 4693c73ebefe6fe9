"""The "Check a study" tab: upload and look at a study, ask a question, edit its phrasings, run, read the
verdict, print it.

One verdict, one study: whatever the verdict depended on (the study, the question, the phrasings, the model,
an option) clears it the moment it changes, with its evidence map, report and downloads, and a check pressed
before that change shows nothing more (its map stops at its next chunk), so a verdict on screen is always the
verdict on what is shown beside it. Presses and clears are told apart by the page's own clock (`PAGE_CLOCK_JS`),
stamped in the browser as they happen: the server may handle them in another order. That is the page's own doing
(`_Sessions`), not Gradio's `cancels`: a cancel stops every running event of its function in the session, and one
sent for the last check but handled after the next Check had started (a loaded server) stopped that check too, a
Check that never answered.

The banner restates the question, the model and its version, and the study, so a screenshot or a printout
says what was judged.

Every handler turns bad input into a message in the page (refusals included); none lets an exception reach
Gradio, so the server keeps serving whatever a request sends.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import gradio as gr

from quadrant.ablation import ABLATIONS
from quadrant.errors import QuadrantError, one_line, unexpected
from quadrant.evidence import forwards_per_map
from quadrant.evidence_plot import verdict_overlay_png
from quadrant.images import Study
from quadrant.reliance import RULES
from quadrant.results import Source
from quadrant.verdict import Verdict

from . import render, viewer
from .downloads import DownloadFolders
from .results import result_files, results_offered
from .service import CheckedUpload, CheckService, MapDropped
from .studyinfo import study_facts

log = logging.getLogger("quadrant.app")

APP_DIR = Path(__file__).resolve().parent
#: the printable report's styles: the page's own, then the print layout
REPORT_CSS = "".join((APP_DIR / name).read_text(encoding="utf-8") for name in ("quadrant.css", "report.css"))

#: the least wait still ahead for which a map's first look is shown while it is drawn (`_worth_a_look`), estimated
#: from the first stage's copies: on `demo`, the bundled sample's rest put at 0.21-0.45 s (it took 0.15-0.26 s), a
#: full-size DICOM's first map at 1.84 s (1.59 s) and its next question's map, whose copies' readings are kept,
#: at 0.50-0.55 s (0.34-0.35 s)
FIRST_LOOK_SECONDS = 1.5
#: how long a change of the phrasings waits for the server to hear of a Check pressed before it: that press's
#: own handling is a few milliseconds' work; past this the change clears the verdict (`_Handlers.moved_away`)
PRESS_WAIT_SECONDS = 10.0
#: the ablations a single upload can use (`swap` needs a second study: evaluate only), in words
ABLATION_CHOICES = {"none": "taken out of the prompt (none)", "blank": "a blank mid-gray image (blank)",
                    "white": "a blank white image (white)", "noise": "random noise (noise)"}
UI_ABLATIONS = tuple(a for a in ABLATIONS if a != "swap")

#: the browser's clock, in milliseconds since the epoch: stamped on each press of Check and on each change
#: that clears the verdict
PAGE_CLOCK_JS = "performance.timeOrigin + performance.now()"
#: a press of Check noted in the page, made `at` (PAGE_CLOCK_JS): a change of the phrasings box sends it, so that
#: the server can tell a press it has not heard of yet (`_Handlers.moved_away`); the time is sent on to the server
PRESSED_AT_JS = "(at) => (window.quadrantPressedAt = at)"
#: why the page's verdict is cleared, by what changed: the placeholder names it
STUDY_CHANGED = "the study changed"
QUESTION_CHANGED = "the question or its phrasings changed"
MODEL_CHANGED = "the model changed"
OPTION_CHANGED = "an option changed"
PLACEHOLDERS = {why: render.placeholder_html(why) for why in (STUDY_CHANGED, QUESTION_CHANGED, MODEL_CHANGED,
                                                             OPTION_CHANGED)}


def cleared_at_js(why: str) -> str:
    """A clear noted in the page, made `at` (PAGE_CLOCK_JS) because of `why`, for `STALE_GUARD_JS`: the latest
    clear by the page's clock is kept (a phrasings' stamp can come back after a later change), and its time is
    sent on to the server. The check's buttons and results are hidden from now until a panel pressed after the
    clear comes (quadrant.css: body.q-stale-verdict): the server's reply hides them too, but an output the check
    sent before the server heard of the change (a DICOM's results, which follow its verdict) may reach the page
    after that reply."""
    return (f"(at) => {{ const last = window.quadrantCleared; "
            f"if (!last || at >= last.at) window.quadrantCleared = {{at, why: {json.dumps(why)}}}; "
            f"document.body.classList.add('q-stale-verdict'); "
            f"return [window.quadrantCleared.at]; }}")


#: a change of the study, `file` the study chosen (Gradio's file data): cleared as of now (`cleared_at_js`) unless
#: the same upload is still in place, which is no change (None). The page announces its study again while a check
#: that reads it is under way on a loaded server (a dozen times in three seconds, with the same file), and each
#: announcement cleared the verdict of a Check pressed meanwhile: that check ran and showed nothing.
STUDY_CHANGED_JS = f"""(at, file) => {{
  const path = file?.path ?? null;
  if ('quadrantStudy' in window && window.quadrantStudy === path) return [null, null];
  window.quadrantStudy = path;
  return [({cleared_at_js(STUDY_CHANGED)})({PAGE_CLOCK_JS})[0], null];
}}"""
#: The verdict's guard, in the page: a check's panel that reaches it after a change made since its Check was
#: pressed (the server sent it before it heard of the change) is turned away, the placeholder that names the
#: page's latest change put in its place, and the check's buttons kept hidden until a panel pressed after the
#: change comes (quadrant.css: body.q-stale-verdict). The server stops such a check at its next step
#: (`_Handlers.run`); only the page can order what it receives with what it did. The placeholder is the page's
#: own, not the last one the server sent: that may be the same words as one shown before the press (the question
#: typed, Check pressed, the question typed again), which changes nothing on the page and so cannot be told from
#: a placeholder older than the press.
STALE_GUARD_JS = f"""
watch('value', () => {{
  const panel = element.querySelector('.q-verdict[data-pressed]');
  if (!panel) return;
  const cleared = window.quadrantCleared;
  const stale = !!cleared && Number(panel.dataset.pressed) < cleared.at;
  document.body.classList.toggle('q-stale-verdict', stale);
  if (stale) props.value = {json.dumps(PLACEHOLDERS)}[cleared.why];
}});
"""

#: the Print button: opens the report (kept, encoded, in the verdict panel) in a window of its own and prints it
PRINT_JS = """() => {
  const holder = document.querySelector('#quadrant-report');
  if (!holder) return;
  const bytes = Uint8Array.from(atob(holder.dataset.report), c => c.charCodeAt(0));
  const report = window.open('', '_blank');
  if (!report) return;
  report.document.open();
  report.document.write(new TextDecoder().decode(bytes));
  report.document.close();
  report.addEventListener('load', () => { report.focus(); report.print(); });
}"""


@dataclass
class CheckTab:
    """What the rest of the page needs from the tab: its Check event (the audit tab refreshes after it)."""

    checked: gr.events.Dependency


def build(service: CheckService, *, downloads: DownloadFolders, examples: list[list[str]],
          user_of: Callable[[gr.Request | None], str | None],
          source_of: Callable[[str], Source | None]) -> CheckTab:
    """Lay out the tab inside the current gr.Tab and wire its events. `downloads` makes folders inside Gradio's
    cache for files to hand out; `user_of` names the signed-in user of a request; `source_of` gives a DICOM
    upload's filing header (uploads.py), for the results offered for the patient's record."""
    base = service.checkers[service.default_model]
    handlers = _Handlers(service, downloads, user_of, source_of)
    uploaded = gr.State(None)  # (the study's file, when its preview was made): the upload time the banner restates
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            study = gr.File(label="Study: PNG, JPEG or DICOM (drag and drop)", type="filepath", elem_id="study",
                            height=110)
            shown = gr.HTML(viewer.empty_html(), js_on_load=viewer.JS, elem_id="viewer")
            facts = gr.HTML(elem_id="study-facts")
        with gr.Column(scale=1, min_width=300):
            model = gr.Radio(list(service.checkers), value=service.default_model, label="Model",
                             visible=len(service.checkers) > 1, elem_id="model")
            with gr.Row(equal_height=True):
                finding = gr.Dropdown(list(service.bank().names), value=None, label="Finding (fills in the question)",
                                      elem_id="finding", scale=1, min_width=150)
                question = gr.Textbox(label="Yes/no question", placeholder="Is there a pleural effusion?",
                                      max_lines=1, elem_id="question", scale=2, min_width=200)
            # the question whose phrasings the box was last filled with: a page value (not session state), sent
            # with the box's own, so that the two always come from the same moment
            offered_for = gr.Textbox("", visible=False, elem_id="offered-for")
            # a stamp renewed whenever the box moves away from what the last press of Check asks (the session's
            # record of it: _Sessions): the stamp, not the box, clears the verdict (_Handlers.moved_away)
            clock = gr.Number(visible=False, elem_id="page-clock")  # a stand-in input: PAGE_CLOCK_JS fills it in
            last_press = gr.Number(visible=False, elem_id="page-last-press")  # stand-in: PRESSED_AT_JS's time
            edited = gr.Textbox("", visible=False, elem_id="phrasings-edited")
            paraphrases = gr.Textbox(
                label="Other ways to ask it, one per line (a leading ! marks one whose yes means absent)",
                lines=base.options.k, max_lines=24, elem_id="paraphrases",
                placeholder="Filled in when you pick a finding or type a question; edit freely. Left empty or "
                            "unedited, the model's own set is used.")
            with gr.Row():
                run = gr.Button("Check this study", variant="primary", elem_id="run", scale=2)
                new = gr.ClearButton(value="New check", elem_id="new-check", scale=1)
            forwards = forwards_per_map(service.evidence_options, first_look=True)
            evidence = gr.Checkbox(service.evidence_by_default, elem_id="evidence-toggle",
                                   label=f"Also show where in the image the answer comes from (slower: the question "
                                         f"is asked again up to {forwards} times, with part of the image hidden)")
            with gr.Accordion("Options", open=False, elem_id="options"):
                ablation = gr.Dropdown(
                    [(f"the model's default: {ABLATION_CHOICES[base.ablation]}", ""),
                     *((ABLATION_CHOICES[a], a) for a in UI_ABLATIONS)], value="",
                    label="For the text-only pass, the image is", elem_id="ablation")
                rule = gr.Dropdown(list(RULES), value=base.options.reliance.rule, elem_id="rule",
                                   label="Rule for 'the image moved the answer' (content: against a blank image; "
                                         "flip: the answer must change without the image)")
                threshold = gr.Number(value=base.options.reliance.threshold, minimum=0, elem_id="threshold",
                                      label="Content rule: the share the study must move the score by")
    verdict = gr.HTML(render.placeholder_html(), elem_id="verdict", js_on_load=STALE_GUARD_JS)
    with gr.Row():
        printed = gr.Button("Print the report", visible=False, elem_id="print-report", size="sm")
        report = gr.DownloadButton("Download the report (HTML, one page)", visible=False, elem_id="report-html",
                                   size="sm")
        download = gr.DownloadButton("Download the verdict (JSON)", visible=False, elem_id="verdict-json", size="sm")
    filed = gr.File(label="For the patient's record: DICOM structured report, secondary capture, FHIR Bundle",
                    file_count="multiple", interactive=False, visible=False, elem_id="dicom-results")
    if examples:
        gr.Examples(examples, inputs=[study, question], label="Example studies (synthetic phantoms, not patients): "
                    "one click loads a study and its question", examples_per_page=8)
    with gr.Accordion("What the four verdicts mean", open=False):
        gr.Markdown(render.EXPLAINER)
    new.add([study, finding, question, paraphrases])

    outputs = [verdict, printed, report, download, filed]
    # A Check pressed while the last check is still under way waits for it and then runs (Gradio's default for a
    # click drops it: a click that does nothing, when the inputs changed meanwhile), unless the page changed
    # since the press (`_Handlers.run`).
    checked = run.click(handlers.asking, [question, paraphrases, offered_for, model, clock], None,
                        js=f"(...values) => [...values.slice(0, 4), ({PRESSED_AT_JS})({PAGE_CLOCK_JS})]",
                        api_visibility="private",
                        queue=False).then(
        handlers.run, [study, question, ablation, model, rule, threshold, evidence, uploaded],
        outputs, api_visibility="private", scroll_to_output=True, concurrency_id="check",
        concurrency_limit=service.batcher.max_batch, trigger_mode="always_last")
    printed.click(None, js=PRINT_JS)
    # Registered first: Gradio 6 runs the handlers of one change in the order they were registered, each after
    # the last has answered, so a clear registered after the phrasings' refill came only once the refill was
    # back, and cleared the verdict of a check pressed in between.
    study.change(handlers.study_changed, [clock, study], outputs, api_visibility="private", queue=False,
                 js=STUDY_CHANGED_JS)
    for component, what in ((question, QUESTION_CHANGED), (model, MODEL_CHANGED), (ablation, OPTION_CHANGED),
                            (rule, OPTION_CHANGED), (threshold, OPTION_CHANGED), (evidence, OPTION_CHANGED)):
        component.change(handlers.cleared(what), clock, outputs, api_visibility="private", queue=False,
                         js=f"() => ({cleared_at_js(what)})({PAGE_CLOCK_JS})")
    # an edit of the phrasings clears as of when the box changed (the stamp is that time), not of when the
    # server's answer came back: a Check pressed in between asks what the box then held
    edited.change(handlers.cleared(QUESTION_CHANGED), edited, outputs, api_visibility="private", queue=False,
                  js=f"(stamp) => ({cleared_at_js(QUESTION_CHANGED)})(Number(stamp))")
    study.change(handlers.describe, [study, model, evidence, uploaded], [shown, facts, uploaded],
                 api_visibility="private", queue=False)
    model.change(handlers.reread, [study, model, evidence], None, api_visibility="private", queue=False)
    evidence.change(handlers.reread, [study, model, evidence], None, api_visibility="private", queue=False)
    finding.change(handlers.question_for, [finding, model], question, api_visibility="private", queue=False)
    question.change(handlers.suggest, [question, model], [paraphrases, offered_for], api_visibility="private",
                    queue=False, trigger_mode="always_last")
    paraphrases.change(handlers.moved_away, [paraphrases, last_press, clock], edited, api_visibility="private",
                       queue=False, js=f"(box) => [box, window.quadrantPressedAt ?? null, {PAGE_CLOCK_JS}]")
    return CheckTab(checked)


class _Handlers:
    """The tab's event handlers, bound to one service."""

    def __init__(self, service: CheckService, downloads: DownloadFolders, user_of: Callable[[gr.Request | None], str | None],
                 source_of: Callable[[str], Source | None]):
        self.service = service
        self.sessions = _Sessions()
        self.downloads = downloads
        self.user_of = user_of
        self.source_of = source_of

    def describe(self, path: str | None, model: str | None, evidence: bool = False,
                 uploaded: tuple[str, str] | None = None):
        """The viewer, the safe facts and the upload time of a freshly chosen study (with its file, which a
        check compares with its own: see `run`); and the model set to read the study (and, with the map on,
        its map's copies) while the question is typed. The study described last (`uploaded`), announced again
        by the page (`STUDY_CHANGED_JS`), is left as it is: its upload time stays the time it was chosen."""
        if path and uploaded and uploaded[0] == path:
            return gr.skip(), gr.skip(), gr.skip()
        if not path:
            return viewer.empty_html(), "", None
        try:
            data = self.service.read_upload(path)
            study = self.service.study_of(data)
            facts = study_facts(study, data)
            shown = viewer.viewer_html(study, data)
        except QuadrantError as exc:
            return viewer.empty_html(), render.error_html(str(exc), title="This file cannot be used.",
                                                          elem_id="study-error"), None
        except Exception as exc:  # never let a preview take the page down
            log.warning("preview failed: %s", type(exc).__name__)
            return viewer.empty_html(), render.error_html(f"unexpected {type(exc).__name__}",
                                                          title="This file cannot be used.",
                                                          elem_id="study-error"), None
        self._read(study, model, evidence)
        return shown, render.facts_list(facts, elem_id="study-facts-list"), (path, _now())

    def reread(self, path: str | None, model: str | None, evidence: bool = False) -> None:
        """A model newly chosen, or the map switched on, reads the study shown (the upload's reading was the last
        model's, or without the map's copies); what was read already is kept, not read again."""
        if not path:
            return
        try:
            study = self.service.load_upload(path)
        except QuadrantError:  # the preview already says what is wrong with the file
            return
        self._read(study, model, evidence)

    def _read(self, study: Study, model: str | None, evidence: bool) -> None:
        """The model reads the study, and with the map on its map's copies, while the question is typed
        (`CheckService.warm`)."""
        try:
            self.service.warm(study, model, evidence=evidence)
        except QuadrantError:  # a model this app does not serve: the check says so
            pass

    def question_for(self, finding: str | None, model: str | None):
        return self.service.bank(model).questions.get(finding, gr.skip()) if finding else gr.skip()

    def suggest(self, question: str, model: str | None):
        """The model's paraphrases for a question, one a line, ready to edit (empty when there are none), and
        the question they were offered for."""
        offered = self.service.suggestions(question, model)
        return "\n".join(("! " if p.inverted else "") + p.text for p in offered), question

    def cleared(self, what: str) -> Callable[[gr.Request], tuple]:
        """The handler for a change of something the verdict depended on: the verdict and its files go, and a
        map still being drawn for it stops at its next chunk."""
        def clear(at: float | str, request: gr.Request):  # a number, or the phrasings' stamp
            self.sessions.clear(request.session_hash, float(at))
            return render.placeholder_html(what), *_hidden()
        return clear

    def study_changed(self, at: float | None, _study: None, request: gr.Request):
        """A change of the study: `cleared`, unless the page found the same upload still in place (`at` None)."""
        return _unchanged() if at is None else self.cleared(STUDY_CHANGED)(at, request)

    def asking(self, question: str, paraphrases: str, offered_for: str, model: str | None, at: float,
               request: gr.Request) -> None:
        """A press of Check (`at`: the page's clock), noted in the session's record with the phrasings its check
        asks (`run` reads it there; so does a change of the box, `moved_away`), as the box shows them: the
        box's own, unless it still holds another question's (`offered_for` says whose: Check was pressed while
        this question's phrasings were on their way). Those are not this question's paraphrases, so the check
        asks the model's own set, the one the box is about to show, rather than check one question with
        another's; and when that set lands, the box then shows what the verdict asked, so its arrival is no
        change that clears the verdict."""
        asked = paraphrases if offered_for == question else self.suggest(question, model)[0]
        self.sessions.pressed(request.session_hash, Pressed(asked, at, time.monotonic()))

    def moved_away(self, paraphrases: str, last_press: float | None, at: float, request: gr.Request):
        """A stamp, when the box changed (`at`, the page's clock), if it no longer holds what the last check
        asked (an edit, another question's set), which clears the verdict; nothing when it does. The last press
        is the one the page made last (`last_press`, its clock), as the server heard it: a box refilled just
        after Check was pressed, with the set that check asks, changes the page before the press's answer is
        back, and the server may even handle the change first (both are answered at once, on threads of their
        own); it waits for that press rather than judge the box against the one before, which cleared the
        verdict of the press and so dropped its check."""
        pressed = self.sessions.last_press(request.session_hash, last_press, PRESS_WAIT_SECONDS)
        return gr.skip() if paraphrases == (pressed.asked if pressed else "") else repr(at)

    def run(self, path, question, ablation, model, rule, threshold, evidence, uploaded, request: gr.Request):
        """The check of the session's last press of Check, its verdict shown (`_check`), unless the page changed
        since that press: a press made while the last check still ran is sent once that check has stopped, with
        the page as it is then, and if the question was typed on meanwhile (or the study replaced, ...) the page's
        verdict was cleared, saying why. Nor when a check of the same inputs finished after the press (a double
        click): its verdict is the one on the page. Whatever a check would show once a later change has cleared
        the page's verdict is not shown either."""
        session = request.session_hash
        pressed = self.sessions.last_press(session)

        def still_wanted() -> bool:
            return not self.sessions.cleared_since(session, pressed.at)

        if pressed is None or not still_wanted() or self.sessions.answered(session, pressed):
            yield _unchanged()
            return
        for step, outputs in enumerate(self._check(path, question, pressed.asked, ablation, model, rule,
                                                   threshold, evidence, uploaded, request, pressed.at, still_wanted)):
            if not still_wanted():
                if step == 0:
                    yield _unchanged()
                return
            yield outputs
        self.sessions.finished(session, pressed)

    def _check(self, path, question, paraphrases, ablation, model, rule, threshold, evidence, uploaded,
               request: gr.Request, pressed_at: float, still_wanted: Callable[[], bool]):
        """One check: the upload decoded once, checked, its verdict shown. With the map asked for, the verdict is
        shown as soon as it is given, the map's place saying that it is being drawn, and the map, the report and
        the downloads follow (a map is up to grid x grid forwards, a check the cost of about one); a DICOM's
        results for the patient's record come last. A map that will take a while shows a first look while its
        cells are scored: the image hidden in coarse blocks. The map stops at its next chunk once `still_wanted`
        says no. Every panel carries `pressed_at`, when its Check was pressed (`STALE_GUARD_JS`).

        The upload time is restated only when it is this study's: a Check pressed while a newly chosen study's
        preview is still being made finds the last study's time in `uploaded`, and the banner then says none."""
        uploaded = uploaded[1] if uploaded and uploaded[0] == path else None
        user = self.user_of(request)
        try:
            checked = self.service.check_upload(path, question, paraphrases, ablation, model=model, rule=rule,
                                                threshold=threshold, user=user)
        except Exception as exc:
            yield _panel(uuid.uuid4().hex[:12], pressed_at, _refused(exc)), *_hidden()
            return
        check_id = uuid.uuid4().hex[:12]
        if not evidence:
            yield self._shown(path, checked, check_id, pressed_at, uploaded, user)
            yield from self._results(path, checked)
            return
        forwards = forwards_per_map(self.service.evidence_options, first_look=True)
        drawing = render.map_drawing(forwards)
        yield _panel(check_id, pressed_at, render.verdict_html(checked.verdict, uploaded=uploaded, map_note=drawing),
                     drawing=True), *_hidden()
        try:
            for mapped, stage in self.service.map_stages(
                    checked, still_wanted=still_wanted, first_look=True):
                done = mapped.verdict.evidence["forwards"]
                if not stage.finished and _worth_a_look(stage.seconds, done, forwards):
                    look = verdict_overlay_png(mapped.verdict, mapped.study.image, first_look=True)
                    yield _panel(check_id, pressed_at,
                                 render.verdict_html(mapped.verdict, uploaded=uploaded, overlay_png=look,
                                                     map_note=render.map_so_far(done, forwards)),
                                 drawing=True), *_hidden()
            overlay = verdict_overlay_png(mapped.verdict, mapped.study.image)
        except MapDropped:  # the verdict was cleared: the page shows what replaced it
            return
        except QuadrantError as exc:
            yield self._shown(path, checked, check_id, pressed_at, uploaded, user,
                              map_note=render.map_failed(one_line(exc)))
            yield from self._results(path, checked)
            return
        except Exception as exc:
            log.error("evidence map failed unexpectedly: %s", unexpected(exc))
            yield self._shown(path, checked, check_id, pressed_at, uploaded, user,
                              map_note=render.map_failed(f"unexpected {type(exc).__name__}"))
            yield from self._results(path, checked)
            return
        yield self._shown(path, mapped, check_id, pressed_at, uploaded, user, overlay=overlay)
        yield from self._results(path, mapped, overlay)

    def _shown(self, path: str, checked: CheckedUpload, check_id: str, pressed_at: float, uploaded: str | None,
               user: str | None, *, overlay: bytes | None = None, map_note: str | None = None) -> tuple:
        """A finished check's outputs: the verdict panel (its map, or `map_note` in the map's place), the Print
        button, the report and the verdict to download; the results for the patient's record hidden until
        `_results` has made them."""
        verdict = checked.verdict
        report = render.report_html(verdict, css=REPORT_CSS, study_facts=study_facts(checked.study, checked.data),
                                    checked=_now(), user=user, uploaded=uploaded, overlay_png=overlay)
        shown = render.verdict_html(verdict, uploaded=uploaded, overlay_png=overlay, map_note=map_note)
        name = f"{verdict.image['sha256'][:12]}-{check_id}"
        return (_panel(check_id, pressed_at, shown + _report_holder(report)), gr.Button(visible=True),
                gr.DownloadButton(value=self._save(f"quadrant-report-{name}.html", report), visible=True),
                gr.DownloadButton(value=self._save(f"verdict-{name}.json", _json(verdict)), visible=True),
                gr.File(value=None, visible=False))

    def _results(self, path: str, checked: CheckedUpload, overlay: bytes | None = None):
        """A DICOM upload's results for the patient's record (SR, SC, FHIR), made once its verdict is on the
        page: they take longer than a follow-up check itself (70-110 ms against 10-20 ms on `demo`). Nothing
        for a PNG or JPEG, or when they cannot be made (the verdict still stands: one warning line, no
        identifier). `overlay`: the map as the page shows it, which the SC carries instead of drawing it again."""
        source = self.source_of(path)
        if source is None or not results_offered():
            return
        try:
            files = result_files(checked, source, self.downloads.new(), overlay)
        except QuadrantError as exc:
            log.warning("no DICOM results for this check: %s", one_line(exc))
            return
        except Exception as exc:  # the verdict stands; a header no one foresaw must not take the page with it
            log.error("no DICOM results for this check: unexpected %s", unexpected(exc))
            return
        yield *_unchanged()[:-1], gr.File(value=[str(f) for f in files], visible=True)  # the record's files alone

    def _save(self, name: str, text: str) -> str:
        path = self.downloads.new() / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@dataclass(frozen=True)
class Pressed:
    """A press of Check: the phrasings its check asks, when it was made on the page's clock (`PAGE_CLOCK_JS`,
    to order it with the page's clears), and when it reached the server (`time.monotonic()`, to order it with
    checks finishing)."""

    asked: str
    at: float
    reached: float


class _Sessions:
    """Per page session: when its verdict was last cleared (the page's clock), which stops whatever a check
    pressed before would still show (a map at its next chunk), the last press of Check heard, whose check runs
    and against which a change of the phrasings is judged, and the last check that finished, which tells a
    Check pressed while that check was under way. The last KEPT sessions are remembered: a session forgotten
    while its map is drawn would have that map stopped, which only costs its redrawing."""

    KEPT = 4096

    def __init__(self):
        self._cleared: OrderedDict[str | None, float] = OrderedDict()
        self._presses: OrderedDict[str | None, Pressed] = OrderedDict()
        self._finished: OrderedDict[str | None, tuple[Pressed, float]] = OrderedDict()  # (its press, when)
        self._lock = threading.Condition()  # the page's handlers run on several threads; a press is waited for

    def clear(self, session: str | None, at: float) -> None:
        """The page's verdict cleared by a change made `at` (the page's clock): the latest change counts,
        whichever the server heard first."""
        with self._lock:
            _remember(self._cleared, session, max(at, self._cleared.get(session, at)), self.KEPT)

    def cleared_since(self, session: str | None, at: float) -> bool:
        with self._lock:
            return self._cleared.get(session, float("-inf")) > at

    def pressed(self, session: str | None, pressed: Pressed) -> None:
        """Check pressed, as the server heard it."""
        with self._lock:
            _remember(self._presses, session, pressed, self.KEPT)
            self._lock.notify_all()

    def last_press(self, session: str | None, made: float | None = None, wait: float = 0.0) -> Pressed | None:
        """The session's last press heard, once it is the one the page made at `made` (its clock; None: any) or
        later: up to `wait` seconds for it to be heard. None when it was not heard in time (or none was made, or
        the session is forgotten)."""
        def heard() -> bool:
            last = self._presses.get(session)
            return made is None or (last is not None and last.at >= made)

        with self._lock:
            return self._presses.get(session) if self._lock.wait_for(heard, timeout=wait) else None

    def finished(self, session: str | None, pressed: Pressed) -> None:
        """The check of `pressed` has shown all it had to show."""
        with self._lock:
            _remember(self._finished, session, (pressed, time.monotonic()), self.KEPT)

    def answered(self, session: str | None, pressed: Pressed) -> bool:
        """Whether `pressed` asks for what the page shows already: the last check finished after this press
        reached the server, and nothing was cleared since that check was pressed. A Check pressed after that
        check's answer was in runs again, as one would expect of a button."""
        with self._lock:
            last = self._finished.get(session)
        return (last is not None and pressed.reached < last[1]
                and not self.cleared_since(session, last[0].at))


def _remember(kept: OrderedDict, key, value, most: int) -> None:
    """`kept[key] = value`, the key made the newest, the oldest dropped beyond `most`."""
    kept.pop(key, None)
    kept[key] = value
    while len(kept) > most:
        kept.popitem(last=False)


def _unchanged() -> tuple:
    """Outputs that leave the page as it is. A check's handler that ends without a first output must still give
    one: Gradio sets every output to None after a generator's first step that yields nothing (the verdict blanked,
    the buttons' labels gone); an end after a yield changes nothing. One per output: the panel and `_hidden`'s."""
    return (gr.skip(),) * (1 + len(_hidden()))


def _hidden() -> tuple:
    return (gr.Button(visible=False), gr.DownloadButton(value=None, visible=False),
            gr.DownloadButton(value=None, visible=False), gr.File(value=None, visible=False))


def _worth_a_look(seconds: float, done: int, forwards: int) -> bool:
    """Whether a map's first stage is worth showing before the map is finished: when its `done` copies, at the
    pace they took (`seconds`), leave at least FIRST_LOOK_SECONDS still to wait. Drawing a picture takes about a
    tenth of a second (matplotlib), which a map finished soon after would only delay."""
    return done > 0 and seconds / done * (forwards - done) >= FIRST_LOOK_SECONDS


def _panel(check_id: str, pressed_at: float, shown: str, *, drawing: bool = False) -> str:
    """The verdict panel, named by its check (a page, and its tests, tell a new verdict from the last one by
    it) and stamped with when its Check was pressed (`STALE_GUARD_JS`); `drawing` while the map is still to
    come."""
    state = ' data-map="drawing"' if drawing else ""
    return f'<div class="q-verdict" data-check="{check_id}" data-pressed="{pressed_at!r}"{state}>{shown}</div>'


def _refused(exc: Exception) -> str:
    """A check that gave no verdict, in one line in the verdict's place: the refusal of bad input, or an
    unexpected error (logged; the app keeps running)."""
    if isinstance(exc, QuadrantError):  # bad input, and refusals of a study or question out of scope
        return render.error_html(str(exc), title=render.refusal_title(exc))
    log.error("check failed unexpectedly: %s", unexpected(exc))
    return render.error_html(f"unexpected error ({unexpected(exc)}); the app keeps running, try again or report it")


def _report_holder(report: str) -> str:
    """The report, kept in the page for the Print button (encoded: it is a whole document of its own)."""
    encoded = base64.b64encode(report.encode("utf-8")).decode("ascii")
    return f'<div id="quadrant-report" hidden data-report="{encoded}"></div>'


def _json(verdict: Verdict) -> str:
    return json.dumps(verdict.to_json(), indent=2, ensure_ascii=False)


def _now() -> str:
    """The server's clock, with its zone: upload and check times in the banner and the report."""
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
