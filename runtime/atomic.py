"""Files replaced whole or not at all: written beside their place, synced, then renamed over it. Whatever stops
the writing (an error, a full disk, Ctrl-C) takes the half-written file with it, so a reader finds the old
file or the new one and no stray temporary file is left beside them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """`path` replaced by what `write` writes into the binary handle it is given."""
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path
