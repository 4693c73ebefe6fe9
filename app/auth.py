"""Optional login for the app: who may sign in (an auth file of users, roles and scrypt hashes), how a
sign-in is checked, slowed after failures and recorded, and when an idle login ends.

Why scrypt: it is memory-hard (slow to brute-force on GPUs), it ships with Python (no extra package on a
hospital server), and its parameters travel inside the hash, so they can be raised later without breaking
old lines. A line reads

    alice:clinician:scrypt$16384$8$1$<salt, base64>$<key, base64>

(`user:role:hash`; a line without a role, `alice:scrypt$...`, is a clinician), and
`quadrant app --hash-password alice [--role auditor]` prints one. Blank lines and lines starting with '#'
are skipped. Roles: a `clinician` checks studies and sees their own checks in the audit tab; an `auditor`
also sees everyone's checks and exports them.

A sign-in does the same work whether or not the user exists (an unknown name is checked against a decoy
hash with the same parameters), so its timing does not tell which user names exist. Failures are counted per
user name and per client address (`Throttle`); each attempt, refused or not, is a row in the audit log's
`access` table, never with the password.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quadrant.audit import AuditLog
from quadrant.errors import OptionError

log = logging.getLogger("quadrant.app")

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1
_KEY_BYTES = 32
DEFAULT_ROLE, AUDITOR = "clinician", "auditor"
ROLES = (DEFAULT_ROLE, AUDITOR)
#: requests that do not count as using the app: Gradio's heartbeat (open as long as the tab is) and the
#: page's question whether its login still holds
_PASSIVE_ROUTES = ("/heartbeat/", "/login_check")
#: the client's address for the sign-in being checked (Gradio hands `auth=` only a name and a password)
CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("quadrant_client_address", default="unknown")


@dataclass(frozen=True)
class Account:
    """One line of an auth file: the password's hash and what the user may see."""

    hash: str
    role: str = DEFAULT_ROLE


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


def auth_line(user: str, password: str, role: str = DEFAULT_ROLE) -> str:
    """One auth file line for `user` (what `quadrant app --hash-password` prints)."""
    check_account(user, role)
    return f"{user}:{role}:{hash_password(password)}"


def check_account(user: str, role: str) -> None:
    """Refuse a user name an auth file cannot hold, or an unknown role."""
    if not user or ":" in user or user != user.strip():
        raise OptionError(f"user name {user!r} must be non-empty, without ':' or surrounding spaces")
    if role not in ROLES:
        raise OptionError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def read_auth_file(path: str | os.PathLike) -> dict[str, Account]:
    """user -> Account from an auth file; OptionError naming the file and line for anything malformed."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"auth file {where}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    users: dict[str, Account] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, role, encoded = _fields(line)
        if not user or not _well_formed(encoded):
            raise OptionError(
                f"auth file {where}, line {number}: expected 'user:role:scrypt$N$r$p$salt$key' "
                "(make one with: quadrant app --hash-password USER)"
            )
        if role not in ROLES:
            raise OptionError(f"auth file {where}, line {number}: unknown role {role!r} "
                              f"(one of {', '.join(ROLES)})")
        if user in users:
            raise OptionError(f"auth file {where}, line {number}: user {user!r} appears twice")
        users[user] = Account(encoded, role)
    if not users:
        raise OptionError(f"auth file {where}: no users in it (make a line with: quadrant app --hash-password USER)")
    return users


def _fields(line: str) -> tuple[str, str, str]:
    """(user, role, hash) of `user:role:hash`, or of `user:hash` (a clinician: the older form)."""
    user, _, rest = line.partition(":")
    if rest.startswith(_SCHEME + "$"):
        return user, DEFAULT_ROLE, rest
    role, _, encoded = rest.partition(":")
    return user, role, encoded


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    until: float = 0.0  # no attempt is checked before this time


@dataclass
class Throttle:
    """Failed sign-ins slow down sign-in for that user name and for that client address, each on its own.

    The first `free` attempts go through; after that every attempt locks its name and its address for
    `first` seconds, doubling with each further attempt up to `cap` (1, 2, 4, ... 900 s): an attacker gets a
    few guesses, then about one every 15 minutes per name, and per address, which makes guessing a password
    impractical while a user who mistypes waits seconds. An attempt counts before its password is checked,
    so parallel attempts cannot slip through together; a success clears the name and the address. A name or
    address is forgotten `forget` seconds after its last attempt; at most `keep` of them are remembered.
    """

    free: int = 3
    first: float = 1.0
    cap: float = 900.0
    forget: float = 86_400.0
    keep: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _keys: OrderedDict[tuple[str, str], _Failures] = field(default_factory=OrderedDict, repr=False)

    def wait(self, user: str, address: str) -> float:
        """Seconds until an attempt for `user` from `address` is checked again (0: now)."""
        now = self.clock()
        return max(0.0, *(self._record(key, now).until - now for key in _keys(user, address)))

    def attempt(self, user: str, address: str) -> None:
        """Count an attempt, before its password is checked."""
        now = self.clock()
        for key in _keys(user, address):
            record = self._record(key, now)
            record.count += 1
            record.last = now
            if record.count > self.free:
                record.until = now + min(self.cap, self.first * 2 ** (record.count - self.free - 1))
            self._keys[key] = record
            self._keys.move_to_end(key)
        while len(self._keys) > self.keep:
            self._keys.popitem(last=False)

    def succeeded(self, user: str, address: str) -> None:
        for key in _keys(user, address):
            self._keys.pop(key, None)

    def _record(self, key: tuple[str, str], now: float) -> _Failures:
        record = self._keys.get(key)
        if record is None or now - record.last > self.forget:
            return _Failures()
        return record


def _keys(user: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("user", user), ("address", address)


class LoginGate:
    """What Gradio's `auth=` calls for each sign-in (through `login`, a coroutine, so that scrypt runs on a
    worker thread and a sign-in never stalls the server): throttled, the same work for every name, recorded."""

    def __init__(self, accounts: dict[str, Account], audit: AuditLog | None = None,
                 throttle: Throttle | None = None):
        self.accounts = dict(accounts)
        self.audit = audit
        self.throttle = throttle or Throttle()
        # an unknown name is checked against this: the parameters every --hash-password line has
        self._decoy = hash_password(secrets.token_urlsafe(24))

    def role(self, user: str | None) -> str | None:
        """The user's role; None for no user (no login: the app is then the operator's own)."""
        account = self.accounts.get(user) if user else None
        return account.role if account is not None else None

    async def login(self, username: str, password: str) -> bool:
        import anyio

        address = CLIENT_ADDRESS.get()
        account = self.accounts.get(username)
        known = username if account is not None else None  # an unknown name may be a mistyped password
        if self.throttle.wait(username, address) > 0:
            await self.record("login_throttled", known, address)
            return False
        self.throttle.attempt(username, address)
        encoded = account.hash if account is not None else self._decoy
        matched = await anyio.to_thread.run_sync(verify_password, password, encoded)
        signed_in = matched and account is not None
        if signed_in:
            self.throttle.succeeded(username, address)
        await self.record("login" if signed_in else "login_failed", known, address)
        return signed_in

    async def record(self, event: str, user: str | None, address: str) -> None:
        """One access row, written on a worker thread (the audit log commits to disk)."""
        import anyio

        if self.audit is not None:
            await anyio.to_thread.run_sync(self.audit.record_access, event, user, address)
        if event != "login":
            log.info("access: %s, user %s, from %s", event, user or "(not a user)", address)


def signed_in_user(scope) -> str | None:
    """The user a request's Gradio login cookie belongs to (None: no valid login)."""
    token = login_token(scope)
    return scope["app"].tokens.get(token) if token else None


def login_token(scope) -> str | None:
    """The Gradio login token a request carries, valid or not (Gradio keeps tokens in `app.tokens`)."""
    from starlette.requests import HTTPConnection

    cookie_id = getattr(scope.get("app"), "cookie_id", None)
    if cookie_id is None:
        return None
    cookies = HTTPConnection(scope).cookies
    return cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")


def client_address(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class AccessGuard:
    """ASGI middleware around Gradio's login: hands the client's address to the sign-in check, ends a login
    left idle for `idle` seconds, and records sign-outs.

    Idle means no request: a request in flight (a long check) keeps a login alive until it ends; the page's
    heartbeat, which stays open as long as the tab does, and its question whether the login still holds
    (account.py), do not count."""

    def __init__(self, app, gate: LoginGate, idle: float | None):
        self.app = app
        self.gate = gate
        self.idle = idle
        self._seen: dict[str, float] = {}
        self._busy: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        address = client_address(scope)
        reset = CLIENT_ADDRESS.set(address)
        try:
            path = scope.get("path", "")
            if path.rstrip("/").endswith("/logout"):
                user = signed_in_user(scope)
                await self.app(scope, receive, send)
                if user is not None:
                    await self.gate.record("logout", user, address)
                return
            passive = any(route in path for route in _PASSIVE_ROUTES)
            token = await self._current(scope, address, passive)
            if token is None or passive:
                return await self.app(scope, receive, send)
            self._busy[token] = self._busy.get(token, 0) + 1
            try:
                await self.app(scope, receive, send)
            finally:
                self._busy[token] -= 1
                self._seen[token] = time.monotonic()
        finally:
            CLIENT_ADDRESS.reset(reset)

    async def _current(self, scope, address: str, passive: bool) -> str | None:
        """This request's login token when it is signed in and not idle too long; an idle one is ended here,
        so Gradio sees the request as signed out. A passive request does not count as use."""
        token = login_token(scope)
        tokens = scope["app"].tokens if token else {}
        if token not in tokens:
            self._seen.pop(token, None)
            return None
        now = time.monotonic()
        last = self._seen.setdefault(token, now)
        if self.idle and not self._busy.get(token) and now - last > self.idle:
            user = tokens.pop(token, None)
            self._seen.pop(token, None)
            self._busy.pop(token, None)
            await self.gate.record("idle_timeout", user, address)
            return None
        if not passive:
            self._seen[token] = now
        return token


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
