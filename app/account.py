"""Who is signed in, a way to sign out, and the page's side of the idle timeout (only with a login).

The server ends a login left idle (auth.AccessGuard). The page's script below asks the server every little
while whether the login still holds (a question that does not itself count as use) and shows the sign-in page
once it does not, so a screen left alone does not keep a study on show; and while someone is using the page it
tells the server so (at most a few times per timeout), since reading a verdict makes no request of its own.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import gradio as gr


def request_user(request: gr.Request | None) -> str | None:
    """The name a request was signed in under; None without a login."""
    return getattr(request, "username", None) or None


def add_account_bar(demo: gr.Blocks, roles: Mapping[str, str] | None) -> None:
    """'Signed in as USER (ROLE)' and a Sign out button, inside the Blocks being built; nothing without a login."""
    if roles is None:
        return
    with gr.Row(elem_id="account", equal_height=True):
        who = gr.HTML(elem_id="signed-in-as")
        gr.Button("Sign out", link="logout", size="sm", variant="secondary", elem_id="logout", scale=0)

    def signed_in(request: gr.Request) -> str:
        user = request_user(request) or ""
        return f'<span>Signed in as <b>{html.escape(user)}</b> ({html.escape(roles.get(user, ""))})</span>'

    demo.load(signed_in, None, who, api_visibility="private", queue=False, show_progress="hidden")


def idle_script(idle_s: float) -> str:
    """The page's side of an idle timeout of `idle_s` seconds, for launch(head=...)."""
    milliseconds = int(idle_s * 1000)
    return f"""<script>
(() => {{
  const idle = {milliseconds};
  let told = Date.now();
  const active = () => {{
    if (Date.now() - told > idle / 3) {{ told = Date.now(); fetch("gradio_api/user", {{credentials: "same-origin"}}); }}
  }};
  for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {{
    addEventListener(kind, active, {{capture: true, passive: true}});
  }}
  setInterval(async () => {{
    if (!document.getElementById("logout")) return;  // the sign-in page itself
    const answer = await fetch("gradio_api/login_check", {{credentials: "same-origin"}});
    if (answer.status === 401) location.href = "logout";
  }}, Math.max(1000, Math.min(30000, idle / 2)));
}})();
</script>"""
