"""The page: upload a study, pick a finding or type a question, see and edit the phrasings, run, read the
verdict; a second tab lists the audit log. Also the API endpoint `check` (SPEC, Interfaces).

Layout and wiring only: the "Check a study" tab lives in check_tab.py, what a check does in service.py, how a
verdict looks in render.py. Every handler turns bad input into a message in the page (or a gr.Error for API
callers); none lets an exception reach Gradio, so the server keeps serving whatever a request sends.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import gradio as gr

from quadrant.errors import QuadrantError, one_line

from . import check_tab, render
from quadrant.audit import COLUMNS
from .service import CheckService

log = logging.getLogger("quadrant.app")

_DEFAULT = "default"


def build_ui(service: CheckService, *, downloads: Path, audit_where: str, examples: list[list[str]],
             title: str = "Quadrant", delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The Blocks app for `service`. `downloads` is a folder inside Gradio's cache for files to hand out;
    `delete_cache` is Gradio's (every N seconds, files older than M seconds) sweep of uploads."""
    handlers = _Handlers(service, downloads)

    with gr.Blocks(title=f"{title}: is this model's answer about this study trustworthy?",
                   delete_cache=delete_cache) as demo:
        gr.Markdown(
            f"# {title}\n**Can you trust a vision-language model's yes/no answer on this study?** Quadrant asks "
            "the question several ways with the image and once without it.  \n"
            f"_{render.NOT_FOR_DIAGNOSIS}_", elem_id="quadrant-title")
        with gr.Tab("Check a study", id="check-tab"):
            tab = check_tab.build(service, downloads=downloads, examples=examples, user_of=_user)
        with gr.Tab("Audit log", id="audit-tab"):
            gr.Markdown(f"Every completed check is kept in an append-only SQLite file: `{audit_where}`.  \n"
                        "Each row holds the time, user, model fingerprint, the study's SHA-256 (never its pixels "
                        "or any patient identifier), the question, the paraphrases, the quadrant and the verdict.")
            with gr.Row():
                refresh = gr.Button("Refresh", elem_id="audit-refresh")
                export = gr.Button("Export CSV", elem_id="audit-export")
            audit_table = gr.Dataframe(headers=list(COLUMNS), interactive=False, wrap=True, elem_id="audit-table")
            audit_csv = gr.File(label="Audit log as CSV", interactive=False, elem_id="audit-csv")

        # the API endpoint `check` (SPEC): its own hidden inputs, so the page's controls can change freely
        with gr.Row(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_question = gr.Textbox(label="question")
            api_paraphrases = gr.Textbox(label="paraphrases")
            api_ablation = gr.Textbox(label="ablation")
            api_verdict = gr.JSON(label="verdict")
        api_trigger = gr.Button(visible=False)

        tab.checked.then(handlers.recent, None, audit_table, api_visibility="private", queue=False)
        api_trigger.click(handlers.api_check, [api_image, api_question, api_paraphrases, api_ablation], api_verdict,
                          api_name="check", concurrency_id="check", concurrency_limit=service.batcher.max_batch,
                          api_description="Check one study: image (PNG, JPEG or DICOM file), a yes/no question, "
                          "paraphrases one a line (may be empty), ablation (may be empty). Returns the verdict JSON.")
        refresh.click(handlers.recent, None, audit_table, api_visibility="private", queue=False)
        export.click(handlers.export_csv, None, audit_csv, api_visibility="private", queue=False)
        demo.load(handlers.recent, None, audit_table, api_visibility="private", queue=False)
    return demo


class _Handlers:
    """The page's event handlers, bound to one service."""

    def __init__(self, service: CheckService, downloads: Path):
        self.service = service
        self.downloads = downloads

    def api_check(self, image, question, paraphrases, ablation, request: gr.Request) -> dict:
        try:
            return self.service.check(image, question or "", paraphrases or "", _ablation(ablation),
                                      user=_user(request))
        except QuadrantError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("API check failed unexpectedly")
            raise gr.Error(f"unexpected error ({type(exc).__name__}: {one_line(exc)})",
                           print_exception=False) from None

    def recent(self):
        audit = self.service.audit
        return [list(row) for row in audit.recent(50)] if audit is not None else []

    def export_csv(self):
        if self.service.audit is None:
            return None
        path = self._new_file("quadrant-audit.csv")
        path.write_text(self.service.audit.to_csv(), encoding="utf-8")
        return str(path)

    def _new_file(self, name: str) -> Path:
        folder = self.downloads / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder / name


def _ablation(value: str | None) -> str:
    return "" if value in (None, "", _DEFAULT) else value


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) or None

