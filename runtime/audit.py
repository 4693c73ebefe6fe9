"""The audit log: every check the app completes, one row each, in an append-only SQLite file.

Why SQLite: one file a hospital's IT can copy, query and archive, with transactions, so a crash loses
nothing committed (WAL journal, synchronous FULL: a committed check survives a power cut). Why triggers:
the schema itself refuses UPDATE and DELETE, so a row once written cannot be edited or removed through
SQL; only replacing the whole file can, which is the file system's business (permissions, backups).

A row holds what is needed to reproduce and account for a check (time, user, the model's fingerprint, the
study's hashes, the question, the paraphrases, the quadrant and the whole verdict JSON), never pixels and
never a patient identifier: the verdict carries the image's hashes and size only. The study is named by the
hash of its decoded pixels (`pixels_sha256`): a file's own hash changes with its header, and a DICOM header
holds the patient's name.

An evidence map the app draws after showing its verdict (so that the verdict does not wait for the map's
many forwards) is its own row in `evidence`, naming its check's row: the check's row is written before its
verdict is shown, and a row cannot be changed afterwards. A map drawn with its check (the DICOM node's) stays
inside the verdict JSON.

A third table, `access`, records sign-ins, refused and throttled sign-ins, sign-outs and idle timeouts:
time, the user (NULL when the name typed is not a user: someone may have typed a password there), the
client's address and the event, never a password. It is append-only in the same way.

Files written by an older version gain what is new when opened (tables and columns are added, never dropped
or changed), so one file keeps the whole history.
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
    image_sha256 TEXT NOT NULL,       -- of the study file's bytes as checked; never the pixels
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
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,               -- ISO 8601, UTC: when the map was drawn, after its check's row
    check_id INTEGER NOT NULL REFERENCES checks(id),
    evidence TEXT NOT NULL            -- the verdict's `evidence` object (the occlusion map), as JSON
);
CREATE TRIGGER IF NOT EXISTS evidence_refuse_update BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS evidence_refuse_delete BEFORE DELETE ON evidence
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS access (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,               -- ISO 8601, UTC
    user TEXT,                        -- a user of the auth file; NULL when the name given is none of them
    address TEXT NOT NULL,            -- the client's address as the server saw it
    event TEXT NOT NULL               -- one of ACCESS_EVENTS
);
CREATE TRIGGER IF NOT EXISTS access_refuse_update BEFORE UPDATE ON access
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS access_refuse_delete BEFORE DELETE ON access
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted'); END;
"""
#: columns added since the first version, with their type: added to an older file when it is opened
_ADDED_COLUMNS = {"checks": (("pixels_sha256", "TEXT"),)}  # of the decoded pixels (quadrant.images.pixel_sha256)
#: what the access table records
ACCESS_EVENTS = ("login", "login_failed", "login_throttled", "logout", "idle_timeout")

#: the columns the app's table and the CSV export show, in order (the verdict JSON stays in the file)
COLUMNS = ("id", "time", "user", "model_name", "model_fingerprint", "image_sha256", "question", "paraphrases",
           "quadrant", "answer", "pixels_sha256")
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
            _add_new_columns(connection)
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
            _now(),
            user,
            verdict["model"]["name"],
            verdict["model"]["fingerprint"],
            verdict["image"]["sha256"],
            verdict["prompts"][0]["text"],
            json.dumps(paraphrases, ensure_ascii=False),
            verdict["quadrant"],
            verdict["answer"],
            json.dumps(verdict, ensure_ascii=False, sort_keys=True),
            verdict["image"].get("pixels_sha256"),
        )
        return self._insert("INSERT INTO checks (time, user, model_name, model_fingerprint, image_sha256, question, "
                            "paraphrases, quadrant, answer, verdict, pixels_sha256) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def record_evidence(self, check_id: int, evidence: dict) -> int:
        """Append the evidence map drawn for the check in row `check_id`, in its own transaction; returns the
        row id."""
        return self._insert("INSERT INTO evidence (time, check_id, evidence) VALUES (?, ?, ?)",
                            (_now(), int(check_id), json.dumps(evidence, ensure_ascii=False, sort_keys=True)))

    def record_access(self, event: str, user: str | None, address: str) -> int:
        """Append one sign-in event (ACCESS_EVENTS); `user` None for a name that is not a user."""
        if event not in ACCESS_EVENTS:
            raise ValueError(f"unknown access event {event!r}")
        return self._insert("INSERT INTO access (time, user, address, event) VALUES (?, ?, ?, ?)",
                            (_now(), user, address, event))

    def access(self, limit: int = 50) -> list[tuple]:
        """The latest access events, newest first, as (id, time, user, address, event)."""
        with self._lock:
            return self._require_open().execute(
                "SELECT id, time, user, address, event FROM access ORDER BY id DESC LIMIT ?", (int(limit),)
            ).fetchall()

    def recent(self, limit: int = 50, user: str | None = None) -> list[tuple]:
        """The latest checks, newest first, as rows of COLUMNS; with `user`, only that user's."""
        where, args = ("WHERE user = ? ", (user,)) if user is not None else ("", ())
        with self._lock:
            return self._require_open().execute(
                f"SELECT {', '.join(COLUMNS)} FROM checks {where}ORDER BY id DESC LIMIT ?", (*args, int(limit))
            ).fetchall()

    def count(self) -> int:
        with self._lock:
            return self._require_open().execute("SELECT COUNT(*) FROM checks").fetchone()[0]

    def to_csv(self) -> str:
        """Every check, oldest first, as CSV with a header: the verdict JSON, then the evidence map drawn after it
        (empty when none was), as the last columns."""
        with self._lock:
            rows = self._require_open().execute(
                f"SELECT {', '.join(COLUMNS)}, verdict, (SELECT evidence FROM evidence WHERE check_id = checks.id "
                f"ORDER BY id DESC LIMIT 1) FROM checks ORDER BY id").fetchall()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*COLUMNS, "verdict", "evidence"])
        writer.writerows([_spreadsheet_safe(value) for value in row] for row in rows)
        return out.getvalue()

    def _insert(self, statement: str, row: tuple) -> int:
        """One row in its own transaction; returns its id."""
        with self._lock:
            connection = self._require_open()
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(statement, row)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid)

    def _require_open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the audit log is not open: call open() first")
        return self._connection


def _add_new_columns(connection: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to date: add the columns it lacks (old rows read NULL)."""
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in present:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _spreadsheet_safe(value):
    """The export is opened in spreadsheets, and a question is free text ("@SUM(A1)?" is a yes/no question to
    Quadrant, a formula to Excel): text that would run is written with a leading apostrophe, which a
    spreadsheet shows as text. The database keeps it as typed, and so does the verdict JSON column."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value
