"""The page: upload a study, pick a finding or type a question, see and edit the phrasings, run, read the
verdict; a second tab lists the audit log (audit_tab.py). Also the API endpoint `check` (api.py), and with a
login, who is signed in and a way out (account.py).

Layout and wiring only: what a check does lives in service.py, how a verdict looks in render.py. Every
handler turns bad input into a message in the page (or a gr.Error for API callers); none lets an
exception reach Gradio, so the server keeps serving whatever a request sends.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import gradio as gr

from quadrant.ablation import ABLATIONS
from quadrant.errors import QuadrantError, one_line
from quadrant.evidence_plot import verdict_overlay
from quadrant.images import load_study_bytes
from quadrant.reliance import RULES
from quadrant.verdict import Verdict

from . import render
from .account import add_account_bar
from .api import add_check_endpoint
from .audit_tab import AuditTab
from .service import UPLOAD_NAME, CheckService
from .studyinfo import study_facts

log = logging.getLogger("quadrant.app")

#: the ablations a single upload can use (`swap` needs a second study: evaluate only)
UI_ABLATIONS = tuple(a for a in ABLATIONS if a != "swap")
_DEFAULT = "default"


def build_ui(service: CheckService, *, downloads: Path, examples: list[list[str]], title: str = "Quadrant",
             delete_cache: tuple[int, int] | None = None, roles: dict[str, str] | None = None) -> gr.Blocks:
    """The Blocks app for `service`. `downloads` is a folder inside Gradio's cache for files to hand out;
    `delete_cache` is Gradio's (every N seconds, files older than M seconds) sweep of uploads; `roles` is
    user -> role with a login (what the audit tab shows each user), None without one."""
    base = service.checkers[service.default_model]
    k = base.options.k
    handlers = _Handlers(service, downloads)
    audit = AuditTab(service, downloads, roles)

    with gr.Blocks(title=f"{title}: is this model's answer about this study trustworthy?",
                   delete_cache=delete_cache) as demo:
        gr.Markdown(
            f"# {title}\n**Can you trust a vision-language model's yes/no answer on this study?** Quadrant asks "
            "the question several ways with the image and once without it.  \n"
            f"_{render.NOT_FOR_DIAGNOSIS}_", elem_id="quadrant-title")
        add_account_bar(demo, roles)
        with gr.Tab("Check a study", id="check-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    study = gr.File(label="Study: PNG, JPEG or DICOM (drag and drop)", type="filepath",
                                    elem_id="study")
                    preview = gr.Image(label="What the model sees (DICOM after windowing)", type="pil",
                                       interactive=False, height=300, elem_id="preview",
                                       buttons=[])
                    facts = gr.HTML(elem_id="study-facts")
                with gr.Column(scale=1):
                    model = gr.Radio(list(service.checkers), value=service.default_model, label="Model",
                                     visible=len(service.checkers) > 1, elem_id="model")
                    finding = gr.Dropdown(list(service.bank().names), value=None,
                                          label="Finding (fills in the question)",
                                          elem_id="finding")
                    question = gr.Textbox(label="Yes/no question", placeholder="Is there a pleural effusion?",
                                          max_lines=1, elem_id="question")
                    paraphrases = gr.Textbox(
                        label="Paraphrases: one per line; a leading ! marks an inverted one (its yes means absent)",
                        lines=k + 1, max_lines=24, elem_id="paraphrases",
                        placeholder="Filled in from the paraphrase bank when you pick a finding or type a "
                                    "question; edit freely. Left empty or unedited, the model's own set is used.")
                    ablation = gr.Dropdown(
                        [(f"default ({base.ablation})", _DEFAULT), *UI_ABLATIONS], value=_DEFAULT,
                        label="How the image is taken away for the text-only pass", elem_id="ablation")
                    grid = service.evidence_options.grid
                    evidence = gr.Checkbox(service.evidence_by_default, elem_id="evidence-toggle",
                                           label=f"Show where the answer comes from (an occlusion map: {grid} x {grid} "
                                                 f"cells, {grid * grid} more forwards)")
                    with gr.Accordion("Advanced options", open=False):
                        rule = gr.Dropdown(list(RULES), value=base.options.reliance.rule,
                                           label="Image-reliance rule", elem_id="rule")
                        threshold = gr.Number(value=base.options.reliance.threshold, minimum=0,
                                              label="Reliance threshold", elem_id="threshold")
                    run = gr.Button("Check this study", variant="primary", elem_id="run")
            verdict = gr.HTML(render.placeholder_html(), elem_id="verdict")
            # no label badge: it would sit over the plot's own title (the legend is in the reading above it)
            evidence_map = gr.Image(label="Where the answer comes from", show_label=False, type="pil",
                                    interactive=False, visible=False, elem_id="evidence-map", buttons=["download"])
            with gr.Row():
                download = gr.DownloadButton("Download the verdict (JSON)", visible=False, elem_id="verdict-json",
                                             size="sm")
            if examples:
                gr.Examples(examples, inputs=[study, question], label="Example studies (synthetic phantoms, "
                            "not patients): one click loads a study and its question", examples_per_page=8)
            with gr.Accordion("What the four verdicts mean", open=True):
                gr.Markdown(render.EXPLAINER)
        with gr.Tab("Audit log", id="audit-tab"):
            audit.build()
        add_check_endpoint(service)

        study.change(handlers.describe, study, [preview, facts], api_visibility="private", queue=False)
        finding.change(handlers.question_for, [finding, model], question, api_visibility="private", queue=False)
        question.change(handlers.suggest, [question, model], paraphrases, api_visibility="private", queue=False,
                        trigger_mode="always_last")
        checked = run.click(handlers.run, [study, question, paraphrases, ablation, model, rule, threshold, evidence],
                            [verdict, download, evidence_map], api_visibility="private", scroll_to_output=True,
                            concurrency_id="check", concurrency_limit=service.batcher.max_batch)
        checked.then(audit.recent, None, audit.table, api_visibility="private", queue=False)
        audit.wire(demo)
    return demo


class _Handlers:
    """The page's event handlers, bound to one service."""

    def __init__(self, service: CheckService, downloads: Path):
        self.service = service
        self.downloads = downloads

    def describe(self, path: str | None):
        """The preview and the safe facts of a freshly chosen study."""
        if not path:
            return None, ""
        try:
            data = self.service.read_upload(path)
            study = load_study_bytes(data, UPLOAD_NAME)
            facts = study_facts(study, data)
        except QuadrantError as exc:
            return None, render.error_html(str(exc), title="This file cannot be used.",
                                           elem_id="study-error")
        except Exception as exc:  # never let a preview take the page down
            log.warning("preview failed: %s", type(exc).__name__)
            return None, render.error_html(f"unexpected {type(exc).__name__}", title="This file cannot be used.",
                                           elem_id="study-error")
        return study.image, render.facts_list(facts, elem_id="study-facts-list")

    def question_for(self, finding: str | None, model: str | None):
        return self.service.bank(model).questions.get(finding, gr.skip()) if finding else gr.skip()

    def suggest(self, question: str, model: str | None):
        """The model's paraphrases for a question, one a line, ready to edit; empty when there are none."""
        return "\n".join(("! " if p.inverted else "") + p.text for p in self.service.suggestions(question, model))

    def run(self, path, question, paraphrases, ablation, model, rule, threshold, evidence, request: gr.Request):
        hidden = gr.Image(value=None, visible=False)
        try:
            data = self.service.check(path, question, paraphrases, _ablation(ablation), model=model, rule=rule,
                                      threshold=threshold, evidence=bool(evidence), user=_user(request))
            overlay = self._overlay(data, path) if data.get("evidence") else None
        except QuadrantError as exc:
            return render.error_html(str(exc)), gr.DownloadButton(value=None, visible=False), hidden
        except Exception as exc:
            log.exception("check failed unexpectedly")
            return render.error_html(f"unexpected error ({type(exc).__name__}: {one_line(exc)}); "
                                     "the app keeps running, try again or report it"), \
                gr.DownloadButton(value=None, visible=False), hidden
        shown = gr.Image(value=overlay, visible=True) if overlay is not None else hidden
        return render.verdict_html(data), gr.DownloadButton(value=self._save(data), visible=True), shown

    def _overlay(self, data: dict, path: str):
        """The map over the study as the model saw it (the same picture `quadrant check --evidence-png` writes)."""
        return verdict_overlay(Verdict.from_json(data), self.service.load_upload(path).image)

    def _save(self, data: dict) -> str:
        path = self._new_file(f"verdict-{data['image']['sha256'][:12]}.json")
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)

    def _new_file(self, name: str) -> Path:
        folder = self.downloads / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder / name


def _ablation(value: str | None) -> str:
    return "" if value in (None, "", _DEFAULT) else value


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) or None

