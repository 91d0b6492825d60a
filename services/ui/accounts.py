"""Advisor accounts of the dashboard: hashed passwords, sign-in throttling, development mode.

``UI_USERS`` lists ``user:hash`` entries separated by commas, each hash made by
``credit dashboard hash-password`` (scrypt, a random salt per password:
``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``). Plain ``user:password`` entries, and the
built-in ``advisor:demo`` when ``UI_USERS`` is unset, are accepted only in development
mode (``UI_DEV_MODE=true``, which ``make up`` / ``credit services start`` set); anywhere
else the dashboard refuses to start rather than run with a password anyone can guess.

Throttling: after ``MAX_FAILURES`` failed sign-ins for one user name within
``WINDOW_SECONDS``, that name is refused (even with the right password) until the window
has passed; scrypt itself makes each guess cost ~50 ms of CPU. Gradio's sign-in handler
calls ``check`` on its event loop, so a lock-out refuses at once instead of sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check
MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
MAX_TRACKED_NAMES = 10_000  # bounded memory under a spray of made-up names
DEMO_USERS = "advisor:demo"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def is_hash(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isalnum() for p in parts[1:])


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, expected = stored.split("$")
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected) // 2,
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


def parse_users(raw: str | None, dev_mode: bool) -> dict[str, str]:
    """User name -> stored secret (a scrypt hash; a plain password in development mode)."""
    if raw is None or not raw.strip():
        if not dev_mode:
            raise ValueError(
                "UI_USERS is not set: the dashboard has no built-in accounts outside "
                "development mode (set UI_USERS to user:hash entries from `credit dashboard "
                "hash-password`, or UI_DEV_MODE=true on a developer's machine)"
            )
        raw = DEMO_USERS
    users: dict[str, str] = {}
    for item in raw.split(","):
        user, sep, secret = item.strip().partition(":")
        if not sep or not user or not secret:
            raise ValueError("UI_USERS must be 'user:hash' entries separated by commas")
        if not is_hash(secret) and not dev_mode:
            raise ValueError(
                f"UI_USERS: the password of {user[:40]!r} is not a hash; make one with "
                "`credit dashboard hash-password` (plain passwords: UI_DEV_MODE=true only)"
            )
        users[user] = secret
    return users


class SignIn:
    """Gradio's ``auth`` callable: password check with a per-name lock-out."""

    def __init__(self, users: dict[str, str], clock: Callable[[], float] = time.monotonic):
        self.users = users
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        # Checked against for unknown names too, so a guess costs the same either way.
        self._dummy = hash_password(secrets.token_hex(8))

    def locked(self, user: str) -> bool:
        now = self._clock()
        with self._lock:
            failures = self._failures.get(user)
            if failures is None:
                return False
            while failures and now - failures[0] > WINDOW_SECONDS:
                failures.popleft()
            return len(failures) >= MAX_FAILURES

    def _failed(self, user: str) -> None:
        with self._lock:
            failures = self._failures.setdefault(user, deque())
            self._failures.move_to_end(user)
            failures.append(self._clock())
            while len(self._failures) > MAX_TRACKED_NAMES:
                self._failures.popitem(last=False)

    def __call__(self, user: str, password: str) -> bool:
        if self.locked(user):
            log.warning("sign-in refused: too many failures for this name (locked out)")
            return False
        stored = self.users.get(user)
        if stored is None:
            verify_password(password, self._dummy)
            ok = False
        elif is_hash(stored):
            ok = verify_password(password, stored)
        else:  # development mode only (parse_users refuses it elsewhere)
            ok = hmac.compare_digest(password.encode(), stored.encode())
        if not ok:
            self._failed(user)
            log.info("sign-in failed")
        else:
            with self._lock:
                self._failures.pop(user, None)
        return ok
