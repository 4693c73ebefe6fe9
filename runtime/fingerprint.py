"""A model's fingerprint: one hash over its weight files and its adapter's, so two verdicts can be told
apart by the exact weights that produced them (the verdict JSON's `model.fingerprint`).

Hashing a 4B model's 8 GB of weights takes tens of seconds, on every load; so each file's digest is
remembered in a small JSON cache keyed by its path, size and modification time, and recomputed only when
one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import write_atomically

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".data")
_CHUNK = 1 << 20


def weight_files(directory: Path) -> list[Path]:
    """Weight files under a model or adapter directory, in a stable order."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def fingerprint(*directories: Path | str | None) -> str:
    """sha256 over (relative name, file digest) of every weight file of the given directories, in order.

    Names are hashed with the contents so that swapping two shards changes the fingerprint; the
    directories' own paths are not, so a copied model keeps its fingerprint.
    """
    cache = DigestCache.load()
    digest = hashlib.sha256()
    for index, directory in enumerate(directories):
        if directory is None:
            continue
        directory = Path(directory)
        for path in weight_files(directory):
            digest.update(f"{index}:{path.relative_to(directory).as_posix()}:{cache.digest(path)}\0".encode())
    cache.save()
    return "sha256:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DigestCache:
    """File digests by (path, size, mtime), kept in a JSON file (the user's cache, or one a caller names); a cache
    that cannot be read or written is simply not used."""

    def __init__(self, path: Path, entries: dict[str, list]):
        self.path = path
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls, path: Path | None = None) -> "DigestCache":
        if path is None:
            root = os.environ.get("QUADRANT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "quadrant")
            path = Path(root) / "fingerprints.json"
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def known(self, path: Path) -> str | None:
        """The file's digest where its size and mtime are those it was hashed with, else None."""
        return self._entry(path, path.stat())

    def digest(self, path: Path) -> str:
        stat = path.stat()
        known = self._entry(path, stat)
        if known is not None:
            return known
        value = file_digest(path)
        self.entries[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns, value]
        self.changed = True
        return value

    def _entry(self, path: Path, stat: os.stat_result) -> str | None:
        entry = self.entries.get(str(path.resolve()))
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return entry[2]
        return None

    def save(self) -> None:
        """Replaced whole or not at all (`write_atomically`): a full disk or Ctrl-C in an evaluation leaves no
        stray file in the user's cache or run folder."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, lambda handle: handle.write(json.dumps(self.entries).encode("utf-8")))
        except OSError:
            pass  # a read-only home: fingerprints are still right, only slower next time
