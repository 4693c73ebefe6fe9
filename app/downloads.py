"""Where the app writes the files it hands out (reports, verdicts, DICOM results, audit exports).

Each download gets a fresh folder, so that its files keep the names a reader expects (`quadrant-audit.csv`, a
study's `.sr.dcm`) and two downloads never clash. Gradio's cache sweep deletes the files once they are old, but
not the folders they sat in, which would pile up, empty, until the server stops; so making a folder also
removes the empty ones old enough to have been swept.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

#: a folder is filled the moment it is made: one empty for longer has had its files swept
EMPTY_FOR_S = 60
#: the empty folders are looked for at most this often (the folder holds one entry per recent download)
PRUNE_EVERY_S = 600


class DownloadFolders:
    """Fresh folders under `root`, one per download, and the removal of emptied ones."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._pruned = float("-inf")

    def new(self) -> Path:
        """A fresh, empty folder for one download's files."""
        self._prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def _prune(self) -> None:
        with self._lock:
            now = time.time()
            if now - self._pruned < PRUNE_EVERY_S or not self.root.is_dir():
                return
            self._pruned = now
            for folder in self.root.iterdir():
                try:
                    if folder.is_dir() and now - folder.stat().st_mtime > EMPTY_FOR_S and not any(folder.iterdir()):
                        folder.rmdir()
                except OSError:  # gone already, or filled meanwhile: left as it is
                    continue
