"""Which browser session may have which file of the app's cache.

Gradio serves any file in its cache to whoever asks for its URL (`/gradio_api/file=PATH`), and takes any cache
path a request names as an input. Those URLs sit in the page, in the browser's history and in whatever is
copied from them, and the files are patient data: uploaded studies, the picture the model sees, evidence maps.
So every browser, or API client, gets a session of its own (a signed cookie, `SessionCookie`), new at each
sign-in and sign-out, and `FileAccess` holds to one rule, with or without a login:

- a file is served only to a session it was granted to: by the upload route (uploads.py), or because a
  response to that session named it (a preview, an evidence map, a verdict file, an audit export). The
  bundled example phantoms are public. Anything else, or any path outside the cache (a symlink out of it, a
  URL Gradio would fetch and relay), is refused with 403 and one warning line in the log;
- a request that names, as an input, a file its session was not granted is pointed at a note instead
  (`Uploads.foreign`), so the check refuses it with one line to the caller, and the log gets one warning line,
  not Gradio's traceback.

Gradio's `/gradio_api/deep_link` route, which writes a session's inputs to disk and lets anyone holding the
link load them, is refused: the app has no deep links.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .asgi import header, read_body, replaying, reply

log = logging.getLogger("quadrant.app")

SESSION_COOKIE = "quadrant-session"
#: where SessionCookie leaves the request's session id in the ASGI scope
SESSION_KEY = "quadrant.session"
#: the keys of Gradio's FileData: a dict with a "path" and no other keys is a file reference
_FILE_DATA_KEYS = {"path", "url", "size", "orig_name", "mime_type", "is_stream", "meta"}
_PATH_IN_JSON = re.compile(rb'"path":\s*("(?:[^"\\]|\\.)*")')
_TAIL = 4096  # bytes of one body chunk kept to find a path split across two chunks
_MAX_JSON_BODY = 8 * 2**20
_FILE_ROUTES = ("/file=", "/gradio_api/file/")


class SessionFiles:
    """Grants of cache files to sessions. Files under `discard` are deleted when their session ends."""

    def __init__(self, root: str | os.PathLike, public: Iterable[str | os.PathLike] = (),
                 discard: str | os.PathLike | None = None, keep_s: float = 3600):
        self.root = Path(root).resolve()
        self.public = [Path(p).resolve() for p in public]
        self.discard = None if discard is None else Path(discard).resolve()
        self.keep_s = keep_s
        self._grants: dict[tuple[str, str], float] = {}
        self._pruned = time.monotonic()
        self._lock = threading.Lock()

    def grant(self, path: str | os.PathLike, session: str) -> None:
        """Let `session` have `path`, when it is a file inside the cache (anything else is ignored)."""
        resolved = _resolved(str(path))
        if resolved is None or not resolved.is_relative_to(self.root) or not resolved.is_file():
            return
        now = time.monotonic()
        with self._lock:
            self._grants[(str(resolved), session)] = now
            if now - self._pruned > 60:
                self._grants = {key: at for key, at in self._grants.items() if now - at < self.keep_s}
                self._pruned = now

    def allows(self, requested: str, session: str) -> bool:
        """Whether `session` may have the file at `requested` (a path as a request spells it)."""
        resolved = _resolved(requested)
        if resolved is None or not resolved.is_relative_to(self.root):
            return False
        if any(resolved.is_relative_to(folder) for folder in self.public):
            return True
        with self._lock:
            return (str(resolved), session) in self._grants

    def forget(self, session: str) -> None:
        """End a session: its grants go, and so do its uploads."""
        with self._lock:
            mine = [key for key in self._grants if key[1] == session]
            for key in mine:
                del self._grants[key]
        for path, _ in mine:
            if self.discard is not None and Path(path).is_relative_to(self.discard):
                Path(path).unlink(missing_ok=True)


def _resolved(requested: str) -> Path | None:
    if not requested or "://" in requested:
        return None
    try:
        return Path(requested).resolve()
    except (OSError, ValueError, RuntimeError):
        return None


class SessionCookie:
    """ASGI middleware: every request gets a session id (SESSION_KEY in its scope), from its signed cookie or
    a new one; a new id is set at each sign-in and sign-out, and a signed-out session's files are forgotten."""

    def __init__(self, app, files: SessionFiles):
        self.app = app
        self.files = files
        self._key = os.urandom(32)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        given = cookies.get(SESSION_COOKIE) or cookies.get(SESSION_COOKIE + "-lax", "")
        session = given if self._valid(given) else None
        fresh = session is None
        session = session or self._new()
        scope[SESSION_KEY] = session
        path = scope.get("path", "").rstrip("/")
        signing_in = scope["method"] == "POST" and path.endswith("/login")
        signing_out = path.endswith("/logout")

        async def sending(message):
            if message["type"] == "http.response.start":
                renewed = signing_out or (signing_in and message["status"] == 200)
                value = self._new() if renewed else session if fresh else None
                if value is not None:
                    message = {**message, "headers": [*message.get("headers", []), *_session_cookies(value)]}
            await send(message)

        await self.app(scope, receive, sending)
        if signing_out:
            self.files.forget(session)

    def _new(self) -> str:
        raw = secrets.token_urlsafe(24)
        return f"{raw}.{self._sign(raw)}"

    def _valid(self, value: str) -> bool:
        raw, _, signature = value.partition(".")
        return bool(raw) and hmac.compare_digest(signature, self._sign(raw))

    def _sign(self, raw: str) -> str:
        return hmac.new(self._key, raw.encode(), hashlib.sha256).hexdigest()[:32]


class FileAccess:
    """ASGI middleware holding Gradio's file routes and inputs to the session's own files (module docstring)."""

    def __init__(self, app, files: SessionFiles, foreign: str | os.PathLike):
        self.app = app
        self.files = files
        self.foreign = str(foreign)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        session = scope[SESSION_KEY]
        path = scope.get("path", "")  # already percent-decoded, as Gradio's routes read it
        if path.rstrip("/").endswith("/gradio_api/deep_link"):
            return await reply(send, 404, b"Not found.")
        requested = _requested_file(path)
        if requested is not None and not self.files.allows(requested, session):
            log.warning("refused a file request from a session that was not given that file")
            return await reply(send, 403, b"File not allowed.")
        if scope["method"] == "POST" and header(scope, b"content-type").startswith("application/json"):
            receive = await self._own_files_only(scope, receive, session)
            if receive is None:
                return await reply(send, 413, b"Request too large.")
        await self.app(scope, receive, self._granting(send, session))

    async def _own_files_only(self, scope, receive, session: str):
        """A receive that hands on the request body with every file reference the session was not granted
        pointed at the `foreign` note; None when the body is too large to look at."""
        body = await read_body(receive, _MAX_JSON_BODY)
        if body is None:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return replaying(scope, body, receive)  # not ours to judge: Gradio answers malformed JSON itself
        refused: list[str] = []
        data = _replace_files(data, lambda p: self.files.allows(p, session), self.foreign, refused)
        if refused:
            log.warning("refused a request naming a file its session was not given (%d file(s))", len(refused))
            body = json.dumps(data).encode("utf-8")
        return replaying(scope, body, receive)

    def _granting(self, send, session: str):
        """A send that grants the session every cache file a JSON or event-stream response names."""
        scanning, tail = False, b""

        async def sending(message):
            nonlocal scanning, tail
            if message["type"] == "http.response.start":
                kind = dict((k.lower(), v) for k, v in message.get("headers", [])).get(b"content-type", b"")
                scanning = kind.startswith((b"application/json", b"text/event-stream"))
            elif message["type"] == "http.response.body" and scanning:
                window = tail + message.get("body", b"")
                for match in _PATH_IN_JSON.finditer(window):
                    try:
                        self.files.grant(json.loads(match.group(1)), session)
                    except ValueError:
                        continue
                tail = window[-_TAIL:]
            await send(message)

        return sending


def _session_cookies(value: str) -> list[tuple[bytes, bytes]]:
    """The session cookie twice, as Gradio sets its login cookie: SameSite=None and Secure, which a browser
    sends from inside another site's frame over HTTPS (a Hugging Face Space), and a Lax one for plain HTTP."""
    return [(b"set-cookie", f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=None; Secure".encode()),
            (b"set-cookie", f"{SESSION_COOKIE}-lax={value}; Path=/; HttpOnly; SameSite=Lax".encode())]


def _replace_files(data, allowed, replacement: str, refused: list):
    """`data` with the path of every file reference that `allowed` refuses replaced (and listed in `refused`)."""
    if isinstance(data, dict):
        if isinstance(data.get("path"), str) and set(data) <= _FILE_DATA_KEYS:
            if allowed(data["path"]):
                return data
            refused.append(data["path"])
            return {"path": replacement, "meta": {"_type": "gradio.FileData"}}
        return {key: _replace_files(value, allowed, replacement, refused) for key, value in data.items()}
    if isinstance(data, list):
        return [_replace_files(item, allowed, replacement, refused) for item in data]
    return data


def _requested_file(path: str) -> str | None:
    """The file a request for one of Gradio's file routes asks for, as Gradio would read it; None otherwise."""
    for route in _FILE_ROUTES:
        at = path.find(route)
        if at >= 0:
            return path[at + len(route):]
    return None
