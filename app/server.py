"""Serving the app: its private cache folder, the file guard, and Gradio's launch settings, in one place.

Uploaded studies are patient data. They land in a cache folder made for this server alone (mode 0700),
files older than an hour are swept out while it runs, and the folder is removed when it stops. The only
files the server hands out are inside that folder: Gradio already refuses paths outside its cache and
allowed paths (resolving symlinks), and `FileGuard` makes that the rule for every `/file=` request,
including the http(s) URLs Gradio would otherwise fetch and relay.

Gradio reads GRADIO_TEMP_DIR when it builds a Blocks, so `make_cache` runs before the page is built.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from quadrant.errors import OptionError

from .metrics import MetricsEndpoint
from .service import CheckService

log = logging.getLogger("quadrant.app")

APP_DIR = Path(__file__).resolve().parent
CSS = APP_DIR / "quadrant.css"
EXAMPLES = APP_DIR / "examples.json"
#: (seconds between sweeps, age in seconds) for Gradio's cache clean-up: uploads do not linger
SWEEP_CACHE = (600, 3600)


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    auth: dict[str, str] | None = None  # user -> scrypt hash (auth.py)
    max_upload_mb: int = 100
    queue_size: int = 64
    title: str = "Quadrant"
    audit_where: str = "(no audit log)"
    blocked: list[str] = field(default_factory=list)  # never served, even if somehow inside the cache


def make_cache() -> Path:
    """A private folder for this server's uploads and downloads; Gradio is pointed at it."""
    root = Path(tempfile.mkdtemp(prefix="quadrant-app-")).resolve()
    os.chmod(root, 0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(root)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(root / "examples-cache")
    return root


def bundled_examples(cache: Path) -> list[list[str]]:
    """The sample studies as [file, question] rows, copied into the cache so that they are served from it."""
    from quadrant.models.presets import MODELS_DIR

    folder = cache / "examples"
    folder.mkdir(exist_ok=True)
    rows = []
    for item in json.loads(EXAMPLES.read_text(encoding="utf-8")):
        source = MODELS_DIR / "samples" / item["file"]
        if source.is_file():
            rows.append([str(shutil.copy(source, folder / item["file"])), item["question"]])
    return rows


def check_port_free(host: str, port: int) -> None:
    """Fail before any model loads when the port is taken, with the message a user can act on."""
    if not 1 <= port <= 65535:
        raise OptionError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OptionError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server "
                              "running there? choose another --port)") from exc


class FileGuard:
    """ASGI middleware: a `/file=` request is answered only for a file inside `root` (symlinks resolved)."""

    def __init__(self, app, root: str | os.PathLike):
        self.app = app
        self.root = Path(root).resolve()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = unquote(scope.get("path", ""))
            marker = path.find("/file=")
            if marker >= 0 and not self.allowed(path[marker + len("/file="):]):
                log.warning("refused a request for a file outside the app's cache")
                await _refuse(send)
                return
        await self.app(scope, receive, send)

    def allowed(self, requested: str) -> bool:
        if "://" in requested or not requested:
            return False
        try:
            return Path(requested).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False


async def _refuse(send) -> None:
    body = b"File not allowed."
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def theme():
    """Gradio's default theme, with its text face served whole in two weights. The default asks for Source
    Sans Pro 400 and 600, and the 600 file Gradio ships holds 55 glyphs, so every bold heading (the verdict
    banner's above all) mixed that face's few letters with another font's: "IDEAL" read "IDEᴀL". Regular and
    Bold ship complete (1,615 glyphs); bold text takes Bold. All are served by the app: no outside request."""
    import gradio as gr

    return gr.themes.Default(font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif",
                                   "system-ui", "sans-serif"])


def launch(service: CheckService, cache: Path, options: ServeOptions, *, block: bool = True,
           on_ready: Callable[[str], None] | None = None):
    """Build the page and serve it; `on_ready(url)` once it listens; with `block`, serve until interrupted
    (Ctrl-C or SIGTERM), then stop the server and the service. Returns (blocks, url). The caller that made
    the cache removes it."""
    from starlette.middleware import Middleware

    from .auth import PasswordCheck
    from .ui import build_ui

    downloads = cache / "downloads"
    demo = build_ui(service, downloads=downloads, audit_where=options.audit_where,
                    examples=bundled_examples(cache), title=options.title, delete_cache=SWEEP_CACHE)
    demo.queue(max_size=options.queue_size, default_concurrency_limit=1)
    try:
        _, url, _ = demo.launch(
            server_name=options.host, server_port=options.port, prevent_thread_lock=True, quiet=True,
            share=False, ssr_mode=False, mcp_server=False, pwa=False, show_error=False,
            auth=PasswordCheck(options.auth) if options.auth else None,
            auth_message="Quadrant: sign in with your user name and password.",
            max_file_size=f"{options.max_upload_mb}mb", allowed_paths=[], blocked_paths=options.blocked,
            app_kwargs={"middleware": [Middleware(FileGuard, root=cache), Middleware(MetricsEndpoint)]},
            css_paths=[CSS], footer_links=["api"], theme=theme(),
        )
    except OSError as exc:
        raise OptionError(f"cannot serve on {options.host}:{options.port}: {exc}") from exc
    if on_ready is not None:
        on_ready(url)
    if block:
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            demo.block_thread()
        finally:
            demo.close(verbose=False)
            service.stop()
    return demo, url


def _interrupt(signum, frame):
    raise KeyboardInterrupt
