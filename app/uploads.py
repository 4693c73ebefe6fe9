"""Uploaded studies: kept under random names, a DICOM without its header, and never the file's own name.

Gradio's own upload route writes each upload to disk under its original name (which may be a patient's name)
in a folder named by the file's hash, before any code of ours sees it. `UploadRoute` answers that route
instead: the request is parsed in memory, and what is written is

- a PNG, JPEG or other image Quadrant reads: its bytes, under a random name;
- a DICOM file: a new DICOM file holding only the pixel data, the image-pixel, modality-LUT and VOI-LUT
  elements (group 0028) and a short list of technical facts (KEPT_DICOM_ELEMENTS), with a new SOP Instance
  UID made from the pixels: the patient's name, IDs, dates, accession number, institution and every private element
  are gone before anything reaches the disk;
- anything else (not an image, or a DICOM file pydicom cannot parse, whose header cannot be separated from
  its pixels): a short note saying why it cannot be used (`refusal`), so the page and the API give the same
  one-line message as for any bad file, and none of its bytes are kept.

The client gets the new path back, exactly as from Gradio's route; who may then use or fetch that path is
files.py's business.

A DICOM upload's filing header (the patient and study modules and UIDs that a structured report or secondary
capture for the patient's record must carry: quadrant.results.Source) is kept in the server's memory only,
beside the path, for the results the page offers (results.py), and goes when the upload is swept.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

from python_multipart.multipart import MultipartParser, parse_options_header

from quadrant.errors import StudyError
from quadrant.images import READERS, load_study_bytes
from quadrant.results.source import Source, source_from_bytes

from .asgi import BodyTooLarge, body_chunks, header, reply, reply_json
from .auth import signed_in_user
from .files import SESSION_KEY, SessionFiles
from .upload_progress import Progress, UploadProgress

#: how messages name an upload: never the file's own name, which may carry a patient's name
UPLOAD_NAME = "uploaded study"
#: technical DICOM elements kept beside group 0028 and the pixel data: what the page, the scope rule and the
#: evidence map's orientation read; none identifies a person
KEPT_DICOM_ELEMENTS = ("SpecificCharacterSet", "ImageType", "SOPClassUID", "Modality", "PresentationIntentType",
                       "BodyPartExamined", "ViewPosition", "ImagerPixelSpacing", "PatientOrientation",
                       "Laterality", "ImageLaterality")
_PIXEL_DATA_TAGS = (0x7FE00001, 0x7FE00002, 0x7FE00008, 0x7FE00009, 0x7FE00010)
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_NOTE = b"QUADRANT-REFUSED-UPLOAD\n"
#: uploads older than this are deleted as new ones arrive (Gradio sweeps its own files the same way)
MAX_AGE_S = 3600
#: the folder is swept at most this often: a sweep looks at every upload of the last hour, so sweeping on every
#: upload made each one slower the busier the hour (5.5 ms an upload with 1,000 in the folder, 17 ms with 3,000)
SWEEP_EVERY_S = 60


class Uploads:
    """The folder uploads are written to (mode 0700, inside the server's private cache)."""

    def __init__(self, cache: str | os.PathLike, max_age_s: float = MAX_AGE_S, sweep_every_s: float = SWEEP_EVERY_S):
        self.folder = Path(cache).resolve() / "uploads"
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.max_age_s = max_age_s
        self.sweep_every_s = sweep_every_s
        self._swept_at = float("-inf")
        self._sources: dict[Path, Source] = {}  # in memory only: see the module docstring
        #: what a request naming a file its session was not given is pointed at instead (files.py)
        self.foreign = self._write(_note(f"{UPLOAD_NAME}: the study must be uploaded to the app from this session; "
                                         "a file elsewhere on the server, or another session's upload, is not read"),
                                   "foreign-file")

    def store(self, data: bytes) -> Path:
        """Keep one upload under a random name, as the module docstring says; returns its path."""
        self._sweep()
        path = self._write(_kept_bytes(data), secrets.token_hex(16))
        if data[128:132] == b"DICM":
            try:
                self._sources[path] = source_from_bytes(data, UPLOAD_NAME, "the results")
            except StudyError:  # no UIDs to file under: the check goes on, with no results offered
                pass
        return path

    def source(self, path: str | os.PathLike) -> Source | None:
        """The filing header of the DICOM upload at `path`; None for any other upload."""
        return self._sources.get(Path(path).resolve())

    def _write(self, data: bytes, name: str) -> Path:
        path = self.folder / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        return path

    def _sweep(self) -> None:
        """Delete the uploads older than max_age_s, unless the last sweep was under sweep_every_s ago: an upload
        then lives at most max_age_s + sweep_every_s."""
        now = time.time()
        if now - self._swept_at < self.sweep_every_s:
            return
        self._swept_at = now
        cutoff = now - self.max_age_s
        for path in self.folder.iterdir():
            try:
                if path != self.foreign and path.stat().st_mtime < cutoff:
                    path.unlink()
                    self._sources.pop(path, None)
            except FileNotFoundError:
                continue


def refusal(data: bytes) -> str | None:
    """The one-line reason an upload was not kept, when `data` is the note written in its place."""
    return data[len(_NOTE):].decode("utf-8") if data.startswith(_NOTE) else None


def _kept_bytes(data: bytes) -> bytes:
    head = data[:512]
    if head[128:132] == b"DICM":
        try:
            return without_header(data)
        except StudyError as exc:
            return _note(str(exc))
    if any(reader.can_read(head) for reader in READERS):
        return data
    try:
        load_study_bytes(data, UPLOAD_NAME)  # no reader takes it: refused with the message the core gives
    except StudyError as exc:
        return _note(str(exc))
    return data


def without_header(data: bytes) -> bytes:
    """A DICOM file rewritten with only its pixels and technical elements (see the module docstring)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    try:
        source = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ... on a damaged file
        raise StudyError(f"{UPLOAD_NAME}: not a readable DICOM file ({type(exc).__name__}); it may be truncated") \
            from None
    syntax = source.file_meta.get("TransferSyntaxUID")
    if not syntax:
        raise StudyError(f"{UPLOAD_NAME}: DICOM file meta names no transfer syntax, so its pixel data cannot be "
                         "decoded")
    kept = Dataset()
    wanted = set(KEPT_DICOM_ELEMENTS)
    for element in source:
        if element.tag.group == 0x0028 or element.tag in _PIXEL_DATA_TAGS or element.keyword in wanted:
            kept.add(element)
    # a UID of the pixels, not a random one: the same study uploaded twice is the same file (the verdict's file
    # hash, and the noise ablation seeded by it, stay put), and it says nothing the pixels do not
    pixels = hashlib.sha256(str(syntax).encode())
    for tag in _PIXEL_DATA_TAGS:
        if tag in kept and isinstance(kept[tag].value, bytes):
            pixels.update(kept[tag].value)
    uid = generate_uid(entropy_srcs=[pixels.hexdigest()])
    kept.SOPClassUID = kept.get("SOPClassUID") or _SECONDARY_CAPTURE
    kept.SOPInstanceUID = uid
    kept.file_meta = FileMetaDataset()
    kept.file_meta.TransferSyntaxUID = syntax
    kept.file_meta.MediaStorageSOPClassUID = kept.SOPClassUID
    kept.file_meta.MediaStorageSOPInstanceUID = uid
    out = io.BytesIO()
    try:
        kept.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise StudyError(f"{UPLOAD_NAME}: the DICOM file cannot be rewritten without its header "
                         f"({type(exc).__name__})") from None
    return out.getvalue()


def _note(message: str) -> bytes:
    return _NOTE + " ".join(message.split()).encode("utf-8")


class UploadRoute:
    """ASGI middleware that answers Gradio's upload route (`POST /gradio_api/upload`) itself, as the module
    docstring says, with Gradio's login rule (with a login, only a signed-in request may upload) and size
    limit. The new paths are granted to the uploading session only. It answers the upload's progress stream
    too (`GET /gradio_api/upload_progress`, upload_progress.py), which Gradio's route fed."""

    def __init__(self, app, uploads: Uploads, files: SessionFiles, max_bytes: int, login_required: bool):
        self.app = app
        self.uploads = uploads
        self.files = files
        self.max_bytes = max_bytes
        self.login_required = login_required
        self.progress = UploadProgress()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope.get("path", "").rstrip("/")
            if scope["method"] == "POST" and path.endswith("/gradio_api/upload"):
                return await self._upload(scope, receive, send)
            if scope["method"] == "GET" and path.endswith("/gradio_api/upload_progress"):
                return await self._progress(scope, send)
        await self.app(scope, receive, send)

    async def _upload(self, scope, receive, send) -> None:
        if self.login_required and signed_in_user(scope) is None:
            return await reply_json(send, 401, {"detail": "Not authenticated"})
        upload_id = _upload_id(scope)
        progress = self.progress.begin(upload_id, scope[SESSION_KEY]) if upload_id else None
        try:
            await self._store(scope, receive, send, progress)
        finally:
            if progress is not None:
                progress.finished()

    async def _store(self, scope, receive, send, progress: Progress | None) -> None:
        import anyio

        too_large = {"detail": f"{UPLOAD_NAME}: over the {self.max_bytes // 2**20} MB upload limit"}
        try:
            parts = _FileParts(header(scope, b"content-type"), progress.received if progress else None)
        except ValueError as exc:
            return await reply_json(send, 400, {"detail": f"not a file upload ({exc})"})
        try:
            async for chunk in body_chunks(receive, self.max_bytes + 2**20):  # room for the multipart framing
                parts.write(chunk)
            files = parts.files()
        except BodyTooLarge:
            return await reply_json(send, 413, too_large)
        except ValueError as exc:
            return await reply_json(send, 400, {"detail": f"not a file upload ({exc})"})
        paths = []
        for data in files:
            if len(data) > self.max_bytes:
                return await reply_json(send, 413, too_large)
            path = await anyio.to_thread.run_sync(self.uploads.store, data)
            self.files.grant(path, scope[SESSION_KEY])
            paths.append(str(path))
        await reply_json(send, 200, paths)

    async def _progress(self, scope, send) -> None:
        if self.login_required and signed_in_user(scope) is None:
            return await reply_json(send, 401, {"detail": "Not authenticated"})
        upload_id = _upload_id(scope)
        events = await self.progress.stream(upload_id, scope[SESSION_KEY]) if upload_id else None
        if events is None:
            return await reply(send, 404, b"Upload not found")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        async for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _upload_id(scope) -> str | None:
    """The id the page gave an upload (`?upload_id=`), or None."""
    found = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("upload_id")
    return found[0] if found else None


class _FileParts:
    """The files of a multipart/form-data body (field `files`), parsed in memory as the body arrives, never
    spooled to disk; `on_data(file name, bytes)` hears of each piece of a file as it is parsed. A malformed
    body raises ValueError, from `write` or once it has all come (`files`)."""

    def __init__(self, content_type: str, on_data: Callable[[str, int], None] | None = None):
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise ValueError("expected multipart/form-data")
        self._on_data = on_data
        self._found: list[bytes] = []
        self._part: dict = {}
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._end})

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except Exception as exc:  # python_multipart's parse errors
            raise ValueError(type(exc).__name__) from None

    def files(self) -> list[bytes]:
        """The files, once the body has all been written."""
        try:
            self._parser.finalize()
        except Exception as exc:
            raise ValueError(type(exc).__name__) from None
        return self._found

    def _begin(self):
        self._part = {"headers": {}, "field": b"", "value": b"", "data": bytearray(), "name": None}

    def _header_field(self, data, start, end):
        self._part["field"] += data[start:end]

    def _header_value(self, data, start, end):
        self._part["value"] += data[start:end]

    def _header_end(self):
        self._part["headers"][self._part["field"].lower()] = self._part["value"]
        self._part.update(field=b"", value=b"")

    def _headers_finished(self):
        _, disposition = parse_options_header(self._part["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == b"files" and b"filename" in disposition:
            self._part["name"] = disposition[b"filename"].decode("utf-8", "replace")

    def _data(self, chunk, start, end):
        self._part["data"] += chunk[start:end]
        if self._part["name"] is not None and self._on_data is not None:
            self._on_data(self._part["name"], end - start)

    def _end(self):
        if self._part["name"] is not None:
            self._found.append(bytes(self._part["data"]))
