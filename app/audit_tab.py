"""The audit tab: the checks a user may see, and for an auditor the export of them all.

With a login (`--auth`), roles decide: a clinician sees only their own checks and cannot export; an auditor
sees everyone's and exports them as CSV. The rule is enforced in the handlers, not only by what the page
shows: a hidden button's event can still be called directly. Without a login the app is the operator's own
(on this machine, or behind their own access control) and shows every check. The audit file's place on the
server is never shown: it is the operator's business, printed when the server starts.
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr

from quadrant.audit import COLUMNS

from .account import request_user
from .auth import AUDITOR
from .downloads import DownloadFolders
from .service import CheckService

_SHOWN = 50
_ABOUT = ("Each row holds the time, user, model fingerprint, the study's hashes (of its file and of its decoded "
          "pixels; never the pixels or any patient identifier), the question, the paraphrases, the quadrant and "
          "the answer. The log is append-only.")


class AuditTab:
    """The tab's parts and handlers; `roles` is user -> role, None without a login."""

    def __init__(self, service: CheckService, downloads: DownloadFolders, roles: Mapping[str, str] | None):
        self.service = service
        self.downloads = downloads
        self.roles = None if roles is None else dict(roles)

    def build(self) -> None:
        """The tab's contents, inside the gr.Tab being built; call `wire(demo)` once the Blocks has them all."""
        self.about = gr.Markdown(elem_id="audit-about")
        with gr.Row():
            self.refresh = gr.Button("Refresh", elem_id="audit-refresh")
            self.export = gr.Button("Export CSV", elem_id="audit-export", visible=self.roles is None)
        self.table = gr.Dataframe(headers=list(COLUMNS), interactive=False, wrap=True, elem_id="audit-table")
        self.csv = gr.File(label="Audit log as CSV", interactive=False, elem_id="audit-csv",
                           visible=self.roles is None)
        self.refresh.click(self.recent, None, self.table, api_visibility="private", queue=False)
        self.export.click(self.export_csv, None, self.csv, api_visibility="private", queue=False)

    def wire(self, demo: gr.Blocks) -> None:
        demo.load(self.shown, None, [self.about, self.table, self.export, self.csv], api_visibility="private",
                  queue=False)

    def shown(self, request: gr.Request):
        """What this user's tab holds when the page loads: the words, the rows, and the export if allowed."""
        everyone = self._sees_everyone(request)
        about = ("All checks, newest first. " if everyone else "Your checks, newest first. ") + _ABOUT
        return about, self.recent(request), gr.Button(visible=everyone), gr.File(visible=everyone)

    def recent(self, request: gr.Request) -> list[list]:
        audit = self.service.audit
        if audit is None:
            return []
        if self._sees_everyone(request):
            return [list(row) for row in audit.recent(_SHOWN)]
        user = request_user(request)
        return [list(row) for row in audit.recent(_SHOWN, user=user)] if user else []

    def export_csv(self, request: gr.Request) -> str | None:
        if not self._sees_everyone(request):
            raise gr.Error("the audit export is for auditors: ask one, or the server's operator",
                           print_exception=False)
        if self.service.audit is None:
            return None
        path = self.downloads.new() / "quadrant-audit.csv"
        path.write_text(self.service.audit.to_csv(), encoding="utf-8")
        return str(path)

    def _sees_everyone(self, request: gr.Request | None) -> bool:
        return self.roles is None or self.roles.get(request_user(request)) == AUDITOR
