"""The node's spool: every study it has accepted and every result it has not yet delivered, on disk.

    SPOOL/incoming/KEY.dcm      a received study, exactly as sent; accepted only once written and fsynced
    SPOOL/outbox/KEY/*.dcm      the results of a checked study, waiting to be sent
    SPOOL/failed/KEY.dcm        a study an unexpected error stopped (the log says which and why)

A study moves incoming -> outbox -> gone, each step a rename, so a node killed at any point restarts with
each study either still to check or its results still to send: nothing accepted is lost, nothing is checked
twice once its results are staged. KEY is a hash of the instance's SOP Instance UID: a study sent twice is
one file. The folder is private to the node's user (mode 0700): it holds patient data.

The spool is bounded: studies waiting to be checked and results waiting to be delivered together may not
exceed `capacity`, so a destination that is down makes the node refuse new studies rather than fill a disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..errors import OptionError

_DIRS = ("incoming", "outbox", "failed")


def study_key(sop_instance_uid: str) -> str:
    return hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()[:32]


class Spool:
    """The spool folder; safe to use from the receiving threads and the worker threads at once."""

    def __init__(self, root: str | Path, capacity: int):
        self.root = Path(root).expanduser().resolve()
        self.capacity = capacity
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)  # notified when a study is accepted

    def open(self) -> "Spool":
        """Create the folders (mode 0700) and drop what a killed node left half-written."""
        try:
            for name in _DIRS:
                (self.root / name).mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
            for leftover in self.root.glob("*/.tmp-*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        except OSError as exc:
            raise OptionError(f"spool {self.root}: cannot be used ({exc.strerror or exc})") from exc
        return self

    # -- receiving -------------------------------------------------------------------------------

    def accept(self, key: str, data: bytes) -> bool:
        """Keep one received study, durably; False (nothing written) when the spool is full."""
        target = self.root / "incoming" / f"{key}.dcm"
        with self._lock:
            if not target.exists() and self.waiting() >= self.capacity:
                return False
            _write_durably(target, data)
            self.arrived.notify_all()
        return True

    def waiting(self) -> int:
        """Studies waiting to be checked plus results waiting to be delivered."""
        return len(self.incoming()) + len(self.outbox())

    # -- checking --------------------------------------------------------------------------------

    def incoming(self) -> list[Path]:
        """Accepted studies, oldest first."""
        return _oldest_first((self.root / "incoming").glob("*.dcm"))

    def stage(self, study: Path, results: dict[str, bytes]) -> Path:
        """Put a checked study's results in the outbox and retire the study, in that order."""
        folder = self.root / "outbox" / study.stem
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root / "outbox"))
        for name, data in results.items():
            _write_durably(temporary / name, data, rename=False)
        shutil.rmtree(folder, ignore_errors=True)  # a study sent again after its results were staged
        os.replace(temporary, folder)
        _sync_folder(folder.parent)
        self.retire(study)
        return folder

    def retire(self, study: Path) -> None:
        """Forget a study that was checked (its results staged) or can never be (refused, with a log line)."""
        study.unlink(missing_ok=True)
        _sync_folder(study.parent)

    def quarantine(self, study: Path) -> Path | None:
        """Set aside a study an unexpected error stopped, for a person to look at; it is not retried. None when
        the study was already retired."""
        target = self.root / "failed" / study.name
        try:
            os.replace(study, target)
        except FileNotFoundError:
            return None
        return target

    # -- delivering ------------------------------------------------------------------------------

    def outbox(self) -> list[Path]:
        """Staged results, oldest first: one folder per study."""
        return _oldest_first(p for p in (self.root / "outbox").iterdir() if p.is_dir() and not p.name.startswith("."))

    def delivered(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)


def _oldest_first(paths) -> list[Path]:
    stamped = []
    for path in paths:
        try:
            stamped.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # retired meanwhile
            continue
    return [path for _, _, path in sorted(stamped)]


def _write_durably(path: Path, data: bytes, rename: bool = True) -> None:
    """Write, fsync, and (by default) rename into place: a reader sees the whole file or none of it."""
    target = path.with_name(f".tmp-{path.name}.part") if rename else path
    with open(target, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if rename:
        os.replace(target, path)
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry itself)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
