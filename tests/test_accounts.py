"""Dashboard accounts (issue 17): no built-in credentials outside development mode, scrypt
password hashes, sign-in throttling. The two-advisor sign-in/out runs in Chromium in
tests/test_ui.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.ui.accounts import (
    MAX_FAILURES,
    WINDOW_SECONDS,
    SignIn,
    hash_password,
    is_hash,
    parse_users,
    verify_password,
)
from services.ui.settings import UISettings


def test_hashes_are_salted_and_verified() -> None:
    one, two = hash_password("s3cret"), hash_password("s3cret")
    assert one != two and is_hash(one) and "s3cret" not in one
    assert verify_password("s3cret", one) and not verify_password("S3cret", one)
    assert not verify_password("s3cret", "scrypt$x$y$z$00$00")  # malformed: refused


def test_no_built_in_or_plain_credentials_outside_development_mode() -> None:
    with pytest.raises(ValueError, match="UI_USERS is not set"):
        parse_users(None, dev_mode=False)
    with pytest.raises(ValueError, match="not a hash"):
        parse_users("alice:password", dev_mode=False)
    assert parse_users(None, dev_mode=True) == {"advisor": "demo"}  # make up's demo
    hashed = hash_password("pw")
    assert parse_users(f"alice:{hashed}", dev_mode=False) == {"alice": hashed}
    with pytest.raises(ValueError):
        UISettings(users=None, dev_mode=False).sign_in()


def test_the_dashboard_refuses_to_start_with_default_credentials() -> None:
    """``python -m services.ui`` with UI_USERS unset and no development mode exits with
    the reason, before it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UI_")}
    env.update(UI_GATEWAY_API_KEY="unused", UI_PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "services.ui"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "UI_USERS is not set" in done.stderr


def test_sign_in_is_throttled_per_name() -> None:
    now = [1000.0]
    sign_in = SignIn(
        {"alice": hash_password("right"), "bob": hash_password("bob")}, clock=lambda: now[0]
    )
    assert sign_in("alice", "right")
    for _ in range(MAX_FAILURES):
        assert not sign_in("alice", "wrong")
    # Locked: even the right password is refused until the window has passed...
    assert sign_in.locked("alice") and not sign_in("alice", "right")
    # ...for that name only.
    assert sign_in("bob", "bob")
    now[0] += WINDOW_SECONDS + 1
    assert sign_in("alice", "right")
    # Made-up names are throttled the same way (no hint of which names exist).
    for _ in range(MAX_FAILURES):
        assert not sign_in("mallory", "x")
    assert sign_in.locked("mallory")
