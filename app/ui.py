"""The page: upload a study, pick a finding or type a question, see and edit the phrasings, run, read the
verdict; a second tab lists the audit log (audit_tab.py). Also the API endpoint `check` (api.py), and with a
login, who is signed in and a way out (account.py).

Layout and wiring only: the "Check a study" tab lives in check_tab.py, what a check does in service.py, how a
verdict looks in render.py. Every handler turns bad input into a message in the page (or a gr.Error for API
callers); none lets an exception reach Gradio, so the server keeps serving whatever a request sends.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import check_tab, render
from .account import add_account_bar, request_user
from .api import add_check_endpoint
from .audit_tab import AuditTab
from .downloads import DownloadFolders
from .service import CheckService
from .uploads import Uploads


def build_ui(service: CheckService, *, downloads: Path, examples: list[list[str]], title: str = "Quadrant",
             delete_cache: tuple[int, int] | None = None, roles: dict[str, str] | None = None,
             uploads: Uploads | None = None) -> gr.Blocks:
    """The Blocks app for `service`. `downloads` is a folder inside Gradio's cache for files to hand out;
    `delete_cache` is Gradio's (every N seconds, files older than M seconds) sweep of uploads; `roles` is
    user -> role with a login (what the audit tab shows each user), None without one; `uploads` holds DICOM
    uploads' filing headers, for the results offered for the patient's record (none without it)."""
    folders = DownloadFolders(downloads)
    audit = AuditTab(service, folders, roles)

    with gr.Blocks(title=f"{title}: is this model's answer about this study trustworthy?",
                   delete_cache=delete_cache) as demo:
        gr.Markdown(
            f"# {title}\n**Can you trust a vision-language model's yes/no answer on this study?** Quadrant asks "
            "the question several ways with the image and once without it.  \n"
            f"_{render.NOT_FOR_DIAGNOSIS}_", elem_id="quadrant-title")
        add_account_bar(demo, roles)
        with gr.Tab("Check a study", id="check-tab"):
            tab = check_tab.build(service, downloads=folders, examples=examples, user_of=request_user,
                                   source_of=uploads.source if uploads is not None else lambda path: None)
        with gr.Tab("Audit log", id="audit-tab"):
            audit.build()
        add_check_endpoint(service)

        tab.checked.then(audit.recent, None, audit.table, api_visibility="private", queue=False)
        audit.wire(demo)
    return demo
