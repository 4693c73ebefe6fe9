"""Who is signed in, a way to sign out, and the page's side of the idle timeout (only with a login).

The server ends a login left idle (auth.AccessGuard); the page's script below signs out after the same time
without a key press, click, scroll or touch, so the screen shows the sign-in page instead of a session that
no longer works, and while someone is using the page it tells the server so (at most a few times per
timeout), since reading a verdict makes no request of its own.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import gradio as gr


def add_account_bar(demo: gr.Blocks, roles: Mapping[str, str] | None) -> None:
    """'Signed in as USER (ROLE)' and a Sign out button, inside the Blocks being built; nothing without a login."""
    if roles is None:
        return
    with gr.Row(elem_id="account", equal_height=True):
        who = gr.HTML(elem_id="signed-in-as")
        gr.Button("Sign out", link="logout", size="sm", variant="secondary", elem_id="logout", scale=0)

    def signed_in(request: gr.Request) -> str:
        user = getattr(request, "username", None) or ""
        return f'<span>Signed in as <b>{html.escape(user)}</b> ({html.escape(roles.get(user, ""))})</span>'

    demo.load(signed_in, None, who, api_visibility="private", queue=False, show_progress="hidden")


def idle_script(idle_s: float) -> str:
    """The page's sign-out after `idle_s` seconds without input, for launch(head=...)."""
    milliseconds = int(idle_s * 1000)
    return f"""<script>
(() => {{
  const idle = {milliseconds};
  let last = Date.now(), told = Date.now();
  const active = () => {{
    last = Date.now();
    if (last - told > idle / 3) {{ told = last; fetch("gradio_api/user", {{credentials: "same-origin"}}); }}
  }};
  for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {{
    addEventListener(kind, active, {{capture: true, passive: true}});
  }}
  setInterval(() => {{
    if (document.getElementById("logout") && Date.now() - last > idle) location.href = "logout";
  }}, Math.max(250, Math.min(5000, idle / 4)));
}})();
</script>"""
