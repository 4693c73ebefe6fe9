"""Optional login for the app: a file of `user:hash` lines, the hash from Python's own hashlib.scrypt.

Why scrypt: it is memory-hard (slow to brute-force on GPUs), it ships with Python (no extra package on a
hospital server), and its parameters travel inside the hash, so they can be raised later without breaking
old lines. A line reads

    alice:scrypt$16384$8$1$<salt, base64>$<key, base64>

and `quadrant app --hash-password alice` prints one. Blank lines and lines starting with '#' are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from quadrant.errors import OptionError

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1
_KEY_BYTES = 32


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, in the self-describing form an auth file holds."""
    if not password:
        raise OptionError("an empty password cannot be hashed: choose a password")
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES)
    return "$".join((_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(key)))


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded` (constant-time comparison of the derived keys)."""
    scheme, n, r, p, salt, key = encoded.split("$")
    if scheme != _SCHEME:
        return False
    expected = base64.b64decode(key)
    derived = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected), maxmem=2**27)
    return hmac.compare_digest(derived, expected)


def read_auth_file(path: str | os.PathLike) -> dict[str, str]:
    """user -> hash from an auth file; OptionError naming the file and line for anything malformed."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"auth file {where}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user or not _well_formed(encoded):
            raise OptionError(
                f"auth file {where}, line {number}: expected 'user:scrypt$N$r$p$salt$key' "
                "(make one with: quadrant app --hash-password USER)"
            )
        if user in users:
            raise OptionError(f"auth file {where}, line {number}: user {user!r} appears twice")
        users[user] = encoded
    if not users:
        raise OptionError(f"auth file {where}: no users in it (make a line with: quadrant app --hash-password USER)")
    return users


class PasswordCheck:
    """The callable Gradio's `auth=` takes: (username, password) -> whether to let them in."""

    def __init__(self, users: dict[str, str]):
        self.users = dict(users)

    def __call__(self, username: str, password: str) -> bool:
        encoded = self.users.get(username)
        return encoded is not None and verify_password(password, encoded)


def _well_formed(encoded: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME or not all(part.isdigit() for part in parts[1:4]):
        return False
    try:
        base64.b64decode(parts[4], validate=True)
        base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
