"""How far an upload has come, for the page's progress bar.

The page names each upload (`POST /gradio_api/upload?upload_id=...`) and at once opens an event stream for it
(`GET /gradio_api/upload_progress?upload_id=...`): a message for each piece of the file received (its name and
bytes, added up by the page per file) and `done` once the upload is answered. Gradio's own upload route fed that
stream; ours (uploads.UploadRoute) replaces the route, so it feeds this one, and the stream is answered here.

An upload's progress goes only to the session that uploads it: the messages carry the file's own name, which
may be a patient's, and which that page already shows. The stream may come before the upload's first bytes (it
waits up to PROGRESS_WAIT_S, as Gradio's did) or after the upload was answered (a small file often is first):
a finished upload's messages are kept for PROGRESS_KEPT_S. Everything here runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

#: how long the stream waits for its upload to start before it answers 404 (Gradio's route waits 3 s)
PROGRESS_WAIT_S = 3.0
#: how long a finished upload's messages wait for a stream that has not come yet
PROGRESS_KEPT_S = 60.0


@dataclass
class Progress:
    """One upload's progress as it is received (`received` for each piece of a file, `finished` once), queued
    for its stream."""

    session: str | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    messages: asyncio.Queue = field(default_factory=asyncio.Queue)
    finished_at: float | None = None

    def received(self, name: str, size: int) -> None:
        self.messages.put_nowait({"msg": "update", "orig_name": name, "chunk_size": size})

    def finished(self) -> None:
        self.messages.put_nowait({"msg": "done"})
        self.finished_at = time.monotonic()


class UploadProgress:
    """Every upload's progress under the id its page gave it, until its stream has read it or it is old."""

    def __init__(self):
        self._uploads: dict[str, Progress] = {}

    def begin(self, upload_id: str, session: str) -> Progress:
        """An upload by `session` has started: its stream may read it."""
        self._sweep()
        upload = self._uploads.setdefault(upload_id, Progress())
        if upload.started.is_set():  # the id is taken: a second upload under it gets a stream of its own
            upload = self._uploads[upload_id] = Progress()
        upload.session = session
        upload.started.set()
        return upload

    async def stream(self, upload_id: str, session: str) -> AsyncIterator[bytes] | None:
        """The upload's messages as server-sent events, `done` last; None when no upload of this session by
        that id starts within PROGRESS_WAIT_S."""
        upload = self._uploads.setdefault(upload_id, Progress())
        try:
            await asyncio.wait_for(upload.started.wait(), PROGRESS_WAIT_S)
        except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11 on, its own class before
            if not upload.started.is_set() and self._uploads.get(upload_id) is upload:
                del self._uploads[upload_id]
            return None
        if upload.session != session:
            return None
        return self._events(upload_id, upload)

    async def _events(self, upload_id: str, upload: Progress) -> AsyncIterator[bytes]:
        try:
            while True:
                message = await upload.messages.get()
                yield f"data: {json.dumps(message)}\n\n".encode()
                if message["msg"] == "done":
                    return
        finally:
            if self._uploads.get(upload_id) is upload:
                del self._uploads[upload_id]

    def _sweep(self) -> None:
        """Forget the finished uploads whose stream never came."""
        cutoff = time.monotonic() - PROGRESS_KEPT_S
        for upload_id, upload in list(self._uploads.items()):
            if upload.finished_at is not None and upload.finished_at < cutoff:
                del self._uploads[upload_id]
