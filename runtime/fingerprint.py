"""A model's fingerprint: one hash over its weight files and its adapter's, so two verdicts can be told
apart by the exact weights that produced them (SPEC, Verdict JSON `model.fingerprint`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".data")
_CHUNK = 1 << 20


def weight_files(directory: Path) -> list[Path]:
    """Weight files under a model or adapter directory, in a stable order."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def fingerprint(*directories: Path | None) -> str:
    """sha256 over (relative name, bytes) of every weight file of the given directories, in order.

    Names are hashed with the bytes so that swapping two shards changes the fingerprint; the directories'
    own paths are not, so a copied model keeps its fingerprint.
    """
    digest = hashlib.sha256()
    for index, directory in enumerate(directories):
        if directory is None:
            continue
        for path in weight_files(Path(directory)):
            digest.update(f"{index}:{path.relative_to(directory).as_posix()}\0".encode())
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()
