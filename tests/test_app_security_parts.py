"""The app's security parts without a server: the auth file and its roles, the sign-in check (the same scrypt
work for every name, throttling), uploads kept without their DICOM header, the pixel hash, the session file
grants, the audit log's access table and its upgrade of older files.

The running server, through HTTP and a browser, is tested in test_app_security.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from quadrant.app.auth import (Account, LoginGate, Throttle, auth_line, hash_password, read_auth_file,
                               verify_password)
from quadrant.app.files import SessionFiles
from quadrant.app.studyinfo import SAFE_DICOM_ELEMENTS
from quadrant.app.uploads import KEPT_DICOM_ELEMENTS, UPLOAD_NAME, Uploads, _FileParts, refusal, without_header
from quadrant.audit import AuditLog
from quadrant.errors import OptionError, StudyError
from quadrant.images import load_study, load_study_bytes
from quadrant.models.presets import MODELS_DIR

from test_app_parts import PATIENT_ID, PATIENT_NAME, identified_dicom

SAMPLES = MODELS_DIR / "samples"
IDENTIFIERS = (PATIENT_NAME.encode(), PATIENT_NAME.split("^")[0].encode(), PATIENT_ID.encode(), b"19510203",
               b"St Elsewhere General", b"ACC-5550123")


def _identified(path: Path) -> Path:
    """The bundled CR sample with a patient's name, ID, birth date, institution, accession number and a
    private element written into it."""
    identified_dicom(path)
    ds = pydicom.dcmread(path)
    ds.InstitutionName, ds.AccessionNumber = "St Elsewhere General", "ACC-5550123"
    ds.private_block(0x0011, "HOSPITAL PACS", create=True).add_new(0x01, "LO", PATIENT_ID)
    ds.save_as(path)
    return path


# -- the auth file and the sign-in check -------------------------------------------------------------------

def test_auth_file_lines_carry_roles_and_older_lines_are_clinicians(tmp_path):
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$") and verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded) and hash_password("correct horse") != encoded  # salted
    users = tmp_path / "users"
    users.write_text(f"# team\nalice:{encoded}\n{auth_line('audrey', 'pw', 'auditor')}\n"
                     f"{auth_line('carl', 'pw')}\n\n", encoding="utf-8")
    accounts = read_auth_file(users)
    assert {name: a.role for name, a in accounts.items()} == {"alice": "clinician", "audrey": "auditor",
                                                              "carl": "clinician"}
    for line, message in (("alice:plaintext-password", "line 1: expected 'user:role:scrypt"),
                          (f"alice:admin:{encoded}", "line 1: unknown role 'admin'"),
                          (f"alice:{encoded}\nalice:auditor:{encoded}", "line 2: user 'alice' appears twice")):
        users.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(OptionError, match=message):
            read_auth_file(users)
    with pytest.raises(OptionError, match="cannot be read"):
        read_auth_file(tmp_path / "missing")
    with pytest.raises(OptionError, match="unknown role"):
        auth_line("bob", "pw", "root")


def test_hash_password_helper_prints_a_line_with_its_role(monkeypatch, capsys):
    from quadrant.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))  # piped, as in `echo ... | quadrant app ...`
    assert main(["app", "--hash-password", "bob", "--role", "auditor"]) == 0
    out = capsys.readouterr().out
    user, role, encoded = out.strip().split(":")
    assert (user, role) == ("bob", "auditor") and verify_password("s3cret", encoded) and out.count("\n") == 1
    assert main(["app", "--hash-password", "bad:name"]) == 2


def _signed_in(gate: LoginGate, attempt: tuple[str, str]) -> bool:
    """gate.login, awaited on an event loop of its own (a browser test may hold this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, gate.login(*attempt)).result()


def _spy_on_scrypt(monkeypatch) -> list[tuple]:
    """Every hashlib.scrypt call's cost parameters, the call itself going through to the real function."""
    calls: list[tuple] = []
    real = hashlib.scrypt

    def scrypt(password, *, salt, n, r, p, maxmem=0, dklen=64):
        calls.append((len(salt), n, r, p, maxmem, dklen))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(hashlib, "scrypt", scrypt)
    return calls


def test_an_unknown_user_costs_the_same_scrypt_work_as_a_wrong_password(monkeypatch, tmp_path):
    """No timing tells which user names exist: an unknown name is checked against a decoy hash with the
    parameters of every real line, so both refusals run exactly one scrypt derivation of the same cost (and
    the same audit write). The wall-clock figures are printed, never asserted (the machine is shared)."""
    audit = AuditLog(tmp_path / "audit.sqlite").open()
    gate = LoginGate({"alice": Account(hash_password("correct horse"))}, audit=audit,
                     throttle=Throttle(free=10**6))  # throttling is tested on its own below
    calls = _spy_on_scrypt(monkeypatch)
    timings: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
    for i in range(12):
        for kind, user in (("unknown user", f"nobody{i}"), ("wrong password", "alice")):
            calls.clear()
            start = time.perf_counter()
            assert _signed_in(gate, (user, "guess")) is False
            timings[kind].append((time.perf_counter() - start) * 1000)
            assert len(calls) == 1, (kind, calls)
            timings.setdefault(kind + " work", []).append(calls[0])
    assert set(timings["unknown user work"]) == set(timings["wrong password work"]) == {(16, 2**14, 8, 1, 2**27, 32)}
    assert _signed_in(gate, ("alice", "correct horse")) is True  # and the real password still works
    rows = audit.access(100)
    assert len(rows) == 25 and {r[4] for r in rows} == {"login_failed", "login"}
    assert {r[2] for r in rows if r[4] == "login_failed"} == {None, "alice"}  # an unknown name is not kept
    for kind in ("unknown user", "wrong password"):
        values = timings[kind]
        print(f"in-process sign-in, {kind}: median {statistics.median(values):.1f} ms, "
              f"min {min(values):.1f}, max {max(values):.1f} (n={len(values)})")


def test_throttle_slows_each_name_and_each_address_and_a_success_clears_them():
    now = [1000.0]
    throttle = Throttle(free=3, first=1.0, cap=8.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait("bob", "10.0.0.1") == 0
        throttle.attempt("bob", "10.0.0.1")
    assert throttle.wait("bob", "10.0.0.1") == 0  # three free attempts
    throttle.attempt("bob", "10.0.0.1")  # the fourth locks both for 1 s
    assert throttle.wait("bob", "10.0.0.9") == 1.0  # the name, from anywhere
    assert throttle.wait("carol", "10.0.0.1") == 1.0  # the address, for any name
    assert throttle.wait("carol", "10.0.0.9") == 0
    locks = []
    for _ in range(6):
        now[0] += throttle.wait("bob", "10.0.0.1")
        throttle.attempt("bob", "10.0.0.1")
        locks.append(throttle.wait("bob", "10.0.0.1"))
    assert locks == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]  # doubling up to the cap
    throttle.succeeded("bob", "10.0.0.1")
    assert throttle.wait("bob", "10.0.0.1") == 0
    now[0] += 10
    throttle.attempt("dave", "10.0.0.2")
    now[0] += throttle.forget + 1
    for _ in range(3):
        throttle.attempt("dave", "10.0.0.2")
    assert throttle.wait("dave", "10.0.0.2") == 0  # a day later the old failure is forgotten


def test_a_throttled_sign_in_is_refused_without_checking_the_password(monkeypatch, tmp_path):
    audit = AuditLog(tmp_path / "audit.sqlite").open()
    gate = LoginGate({"bob": Account(hash_password("right"))}, audit=audit, throttle=Throttle(free=2, first=60))
    calls = _spy_on_scrypt(monkeypatch)
    assert [_signed_in(gate, ("bob", "wrong")) for _ in range(3)] == [False] * 3
    assert len(calls) == 3
    assert _signed_in(gate, ("bob", "right")) is False  # locked: even the right password waits
    assert len(calls) == 3  # and it was not even checked
    assert [r[4] for r in reversed(audit.access(10))] == ["login_failed"] * 3 + ["login_throttled"]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("audit.sqlite*"))
    assert b"wrong" not in stored and b"right" not in stored


# -- uploads -------------------------------------------------------------------------------------------

def test_old_uploads_are_swept_as_new_ones_arrive_at_most_once_a_minute(tmp_path):
    """An upload older than the age limit goes, with its DICOM filing header, when a later upload triggers a
    sweep; sweeps come at most every sweep_every_s, so one upload never pays for a whole busy hour's."""
    dicom = _identified(tmp_path / "study.dcm").read_bytes()
    uploads = Uploads(_cache(tmp_path), max_age_s=3600, sweep_every_s=60)
    old, kept = uploads.store(dicom), uploads.store(b"\x89PNG\r\n\x1a\n")
    assert uploads.source(old) is not None
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    uploads.store(b"\x89PNG\r\n\x1a\n")  # within a minute of the first sweep: none
    assert old.exists()
    uploads._swept_at -= 60  # a minute later
    new = uploads.store(b"\x89PNG\r\n\x1a\n")
    assert not old.exists() and uploads.source(old) is None
    assert kept.exists() and new.exists() and uploads.foreign.exists()


def test_a_dicom_upload_keeps_its_pixels_and_technical_facts_and_nothing_that_identifies(tmp_path):
    original = _identified(tmp_path / "Doe_Jane_MRN998877_ct.dcm").read_bytes()
    assert all(identifier in original for identifier in IDENTIFIERS)
    uploads = Uploads(_cache(tmp_path))
    path = uploads.store(original)
    kept = path.read_bytes()
    for identifier in IDENTIFIERS:
        assert identifier not in kept, identifier
    assert "Doe_Jane" not in path.name and len(path.name) == 32 and path.parent == uploads.folder
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(uploads.folder.stat().st_mode & 0o777) == "0o700"
    ds = pydicom.dcmread(io.BytesIO(kept))
    assert {e.keyword for e in ds} <= {*KEPT_DICOM_ELEMENTS, "SOPInstanceUID", "PixelData"} | \
           {e.keyword for e in ds if e.tag.group == 0x0028}
    assert (ds.Modality, ds.ViewPosition, ds.BodyPartExamined) == ("CR", "PA", "CHEST")
    assert {keyword for keyword, _ in SAFE_DICOM_ELEMENTS} <= {*KEPT_DICOM_ELEMENTS} | \
           {pydicom.datadict.keyword_for_tag(t) for t in pydicom.datadict.DicomDictionary if t >> 16 == 0x0028}
    before, after = load_study_bytes(original), load_study_bytes(kept)
    assert after.pixels_sha256 == before.pixels_sha256 and after.sha256 != before.sha256
    assert uploads.store(original).read_bytes() == kept  # the same study gives the same file, run after run


def _cache(tmp_path: Path) -> Path:
    """A cache folder as make_cache leaves it for the server: private to it."""
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return folder


def test_two_encodings_of_the_same_pixels_have_the_same_pixel_hash(tmp_path):
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(SAMPLES / "cardiomegaly-dicom.dcm")
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    plain, rle = load_study(SAMPLES / "cardiomegaly-dicom.dcm"), load_study(tmp_path / "rle.dcm")
    assert rle.pixels_sha256 == plain.pixels_sha256 and rle.sha256 != plain.sha256
    stripped = load_study_bytes(without_header((tmp_path / "rle.dcm").read_bytes()))
    assert stripped.pixels_sha256 == plain.pixels_sha256
    png = load_study(SAMPLES / "nodule.png")
    Image.open(SAMPLES / "nodule.png").save(tmp_path / "again.png", compress_level=1, optimize=False)
    again = load_study(tmp_path / "again.png")
    assert again.pixels_sha256 == png.pixels_sha256 and again.sha256 != png.sha256
    assert png.pixels_sha256 != plain.pixels_sha256
    shifted = Image.fromarray(np.roll(np.asarray(png.image), 1, axis=1))
    assert load_study_bytes(_png_bytes(shifted)).pixels_sha256 != png.pixels_sha256
    assert png.to_json()["pixels_sha256"] == png.pixels_sha256  # beside the file's hash in the verdict


def _png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_an_upload_that_cannot_be_kept_leaves_a_one_line_reason_and_none_of_its_bytes(tmp_path):
    uploads = Uploads(_cache(tmp_path))
    for data, reason in ((b"\0" * 128 + b"DICM" + PATIENT_NAME.encode() * 20, "names no transfer syntax"),
                         (b"", "empty"), (b"Patient: " + PATIENT_NAME.encode(), "not a PNG, JPEG, DICOM")):
        kept = uploads.store(data).read_bytes()
        assert reason in refusal(kept) and refusal(kept).startswith(UPLOAD_NAME)
        assert PATIENT_NAME.encode() not in kept and b"\n" not in kept.partition(b"\n")[2]
    damaged = uploads.store(_identified(tmp_path / "study.dcm").read_bytes()[:2000]).read_bytes()  # pixels cut short
    assert refusal(damaged) is None and not any(identifier in damaged for identifier in IDENTIFIERS)
    with pytest.raises(StudyError, match="pixel data cannot be decoded"):
        load_study_bytes(damaged, UPLOAD_NAME)  # refused when checked, as any damaged study is
    png = (SAMPLES / "nodule.png").read_bytes()
    assert uploads.store(png).read_bytes() == png and refusal(png) is None


def test_multipart_uploads_are_parsed_in_memory(tmp_path):
    boundary = "----WebKitFormBoundaryq1"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"Doe_Jane.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + b"\x89PNG\r\n--x" + \
           f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nvalue\r\n--{boundary}--\r\n".encode()
    heard = []
    parts = _FileParts(f"multipart/form-data; boundary={boundary}", lambda name, size: heard.append((name, size)))
    for start in range(0, len(body), 7):  # as a request's body arrives: in pieces, cut anywhere
        parts.write(body[start : start + 7])
    assert parts.files() == [b"\x89PNG\r\n--x"]
    # the progress bar's pieces: the file's bytes, under its own name, and nothing of the other field
    assert {name for name, _ in heard} == {"Doe_Jane.png"} and sum(size for _, size in heard) == 9
    with pytest.raises(ValueError):
        _FileParts("application/json")
    broken = _FileParts(f"multipart/form-data; boundary={boundary}")
    with pytest.raises(ValueError):
        broken.write(b"not multipart at all\r\n")
        broken.files()


def test_session_files_serve_a_file_only_to_its_session(tmp_path):
    cache = tmp_path / "cache"
    (cache / "uploads").mkdir(parents=True)
    (cache / "examples").mkdir()
    (cache / "examples" / "phantom.png").write_bytes(b"x")
    mine = cache / "uploads" / "abc"
    mine.write_bytes(b"x")
    (cache / "link").symlink_to("/etc/passwd")
    files = SessionFiles(cache, public=[cache / "examples"], discard=cache / "uploads")
    files.grant(mine, "session-a")
    files.grant("/etc/passwd", "session-a")  # outside the cache: never granted
    files.grant(cache / "link", "session-a")
    assert files.allows(str(mine), "session-a") and not files.allows(str(mine), "session-b")
    assert files.allows(str(cache / "uploads" / ".." / "uploads" / "abc"), "session-a")
    assert files.allows(str(cache / "examples" / "phantom.png"), "anyone")
    for requested in ("/etc/passwd", str(cache / "link"), str(cache / ".." / "elsewhere"),
                      "https://example.com/x.png", ""):
        assert not files.allows(requested, "session-a"), requested
    files.forget("session-a")
    assert not files.allows(str(mine), "session-a") and not mine.exists()  # a signed-out session's uploads go


# -- the audit log -------------------------------------------------------------------------------------

_FIRST_SCHEMA = """
CREATE TABLE checks (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT,
    model_name TEXT NOT NULL, model_fingerprint TEXT NOT NULL, image_sha256 TEXT NOT NULL, question TEXT NOT NULL,
    paraphrases TEXT NOT NULL, quadrant TEXT NOT NULL, answer TEXT NOT NULL, verdict TEXT NOT NULL);
CREATE TRIGGER checks_refuse_update BEFORE UPDATE ON checks
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be updated'); END;
CREATE TRIGGER checks_refuse_delete BEFORE DELETE ON checks
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted'); END;
INSERT INTO checks VALUES (1, '2026-01-01T00:00:00+00:00', 'alice', 'demo', 'sha256:00', 'ab', 'Is there X?', '[]',
    'Ideal', 'yes', '{}');
"""


def _verdict(user_quadrant: str = "Ideal") -> dict:
    return {"quadrant": user_quadrant, "answer": "yes", "model": {"name": "demo", "fingerprint": "sha256:00"},
            "image": {"sha256": "cd" * 32, "pixels_sha256": "ef" * 32},
            "prompts": [{"text": "Is there X?", "inverted": False}]}


def test_an_older_audit_file_gains_the_new_columns_and_tables_and_keeps_its_rows(tmp_path):
    path = tmp_path / "audit.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_FIRST_SCHEMA)
    log = AuditLog(path).open()
    log.record(_verdict("Dangerous"), user="bob")
    log.record_access("login_failed", None, "10.0.0.7")
    log.close()
    log = AuditLog(path).open()  # opening again changes nothing
    assert [(r[0], r[2], r[8], r[10]) for r in log.recent(10)] == [(2, "bob", "Dangerous", "ef" * 32),
                                                                     (1, "alice", "Ideal", None)]
    assert [r[0] for r in log.recent(10, user="alice")] == [1]
    assert log.access(5)[0][2:] == (None, "10.0.0.7", "login_failed")
    log.close()
    other = sqlite3.connect(path)
    for statement in ("UPDATE checks SET quadrant = 'Ideal'", "DELETE FROM checks", "UPDATE access SET user = 'x'",
                      "DELETE FROM access"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute(statement)
    with pytest.raises(ValueError, match="unknown access event"):
        AuditLog(path).open().record_access("password", "bob", "x")
