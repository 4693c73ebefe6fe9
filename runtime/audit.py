"""The audit log: every check the app completes, one row each, in an append-only SQLite file.

Why SQLite: one file a hospital's IT can copy, query and archive, with transactions, so a crash loses
nothing committed (WAL journal, synchronous FULL: a committed check survives a power cut). Why triggers:
the schema itself refuses UPDATE and DELETE, so a row once written cannot be edited or removed through
SQL; only replacing the whole file can, which is the file system's business (permissions, backups).

A row holds what is needed to reproduce and account for a check (time, user, the model's fingerprint, the
image's sha256, the question, the paraphrases, the quadrant and the whole verdict JSON), never pixels and
never a patient identifier: the verdict carries the image's hash and size only.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from quadrant.errors import OptionError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,               -- ISO 8601, UTC
    user TEXT,                        -- the logged-in user, NULL without --auth
    model_name TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,       -- of the study file's bytes; never the pixels
    question TEXT NOT NULL,
    paraphrases TEXT NOT NULL,        -- JSON list of {"text", "inverted"}, prompt 0 excluded
    quadrant TEXT NOT NULL,
    answer TEXT NOT NULL,
    verdict TEXT NOT NULL             -- the whole schema-v1 verdict JSON
);
CREATE TRIGGER IF NOT EXISTS checks_refuse_update BEFORE UPDATE ON checks
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS checks_refuse_delete BEFORE DELETE ON checks
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted'); END;
"""

#: the columns the app's table and the CSV export show, in order (the verdict JSON stays in the file)
COLUMNS = ("id", "time", "user", "model_name", "model_fingerprint", "image_sha256", "question", "paraphrases",
           "quadrant", "answer")
#: what a spreadsheet runs as a formula when a cell starts with it (OWASP's "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class AuditLog:
    """An append-only log of checks in one SQLite file, safe to share between the app's threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def open(self) -> "AuditLog":
        """Create the file and schema if needed; refuse a file that is not an audit log we can write."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OptionError(f"audit log {self.path}: cannot be opened for writing ({exc})") from exc
        self._connection = connection
        return self

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def record(self, verdict: dict, user: str | None = None) -> int:
        """Append one completed check, in its own transaction; returns the row id."""
        paraphrases = [{"text": p["text"], "inverted": p["inverted"]} for p in verdict["prompts"][1:]]
        row = (
            datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            user,
            verdict["model"]["name"],
            verdict["model"]["fingerprint"],
            verdict["image"]["sha256"],
            verdict["prompts"][0]["text"],
            json.dumps(paraphrases, ensure_ascii=False),
            verdict["quadrant"],
            verdict["answer"],
            json.dumps(verdict, ensure_ascii=False, sort_keys=True),
        )
        with self._lock:
            connection = self._require_open()
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(
                    "INSERT INTO checks (time, user, model_name, model_fingerprint, image_sha256, question, "
                    "paraphrases, quadrant, answer, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid)

    def recent(self, limit: int = 50) -> list[tuple]:
        """The latest checks, newest first, as rows of COLUMNS."""
        with self._lock:
            return self._require_open().execute(
                f"SELECT {', '.join(COLUMNS)} FROM checks ORDER BY id DESC LIMIT ?", (int(limit),)
            ).fetchall()

    def count(self) -> int:
        with self._lock:
            return self._require_open().execute("SELECT COUNT(*) FROM checks").fetchone()[0]

    def to_csv(self) -> str:
        """Every check, oldest first, as CSV with a header (the verdict JSON included as the last column)."""
        with self._lock:
            rows = self._require_open().execute(
                f"SELECT {', '.join(COLUMNS)}, verdict FROM checks ORDER BY id").fetchall()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*COLUMNS, "verdict"])
        writer.writerows([_spreadsheet_safe(value) for value in row] for row in rows)
        return out.getvalue()

    def _require_open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the audit log is not open: call open() first")
        return self._connection


def _spreadsheet_safe(value):
    """The export is opened in spreadsheets, and a question is free text ("@SUM(A1)?" is a yes/no question to
    Quadrant, a formula to Excel): text that would run is written with a leading apostrophe, which a
    spreadsheet shows as text. The database keeps it as typed, and so does the verdict JSON column."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value
