"""Small ASGI helpers shared by the layers the app puts in front of Gradio (files.py, uploads.py, auth.py,
api.py): reading a request's body, handing a changed one on, and short replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator


class BodyTooLarge(Exception):
    """A request body ran past the limit it was read against."""


async def body_chunks(receive, limit: int) -> AsyncIterator[bytes]:
    """A request body's chunks as they arrive, none kept here; BodyTooLarge once more than `limit` bytes came.
    A reader that parses as it goes (an upload streamed into its parts) holds no second copy of the body."""
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        yield chunk
        if not message.get("more_body"):
            return


async def read_body(receive, limit: int) -> bytes | None:
    """The whole request body, in memory; None when it is longer than `limit` bytes."""
    try:
        return b"".join([chunk async for chunk in body_chunks(receive, limit)])
    except BodyTooLarge:
        return None


def replaying(scope, body: bytes, receive):
    """A receive that hands on `body` (already read) as the request's body, its length set in `scope`."""
    scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"] + \
        [(b"content-length", str(len(body)).encode())]
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # after the body: the disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def header(scope, name: bytes) -> str:
    """A request header's value ('' when absent)."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def reply(send, status: int, body: bytes, kind: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def reply_json(send, status: int, payload) -> None:
    await reply(send, status, json.dumps(payload).encode("utf-8"), b"application/json")
