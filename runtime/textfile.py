"""Small text files a person names on the command line (a paraphrase file, a paraphrase bank): read whole,
with one clear message for each way the path can be wrong."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def read_text_file(path: Path, what: str, limit: int, kind: str, error: type[InputError]) -> str:
    """The file's text (UTF-8, a BOM allowed), or `error` naming `what` and the file: missing, a folder, over
    `limit` bytes, unreadable, not UTF-8, or binary. `kind` says what to give instead ("a JSON file")."""
    name = str(path)
    if not path.exists():
        raise error(f"{what} {name} does not exist: check the path")
    if path.is_dir():
        raise error(f"{what} {name} is a folder, not a file: give {kind}")
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{what} {name} is {size} bytes, over the limit of {limit}: is it the right file?")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {name}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {name} is not UTF-8 text (undecodable byte at offset {exc.start}): save it as "
                    "UTF-8") from exc
    if "\x00" in text:
        raise error(f"{what} {name} is binary, not text: give {kind}")
    return text
