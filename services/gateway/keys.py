"""API keys: stored as SHA-256 hashes, never in clear, never logged.

A key is 256 random bits, so a plain (unsalted) SHA-256 is enough: there is nothing to
brute-force, unlike a password. Keys come from a JSON file and/or an environment variable:
``[{"id": "ui", "partner": "bank-a", "hash": "<sha256 hex>", "scopes": ["score", ...],
"rate_per_minute": 600}]``.

Tenancy: every key belongs to a partner and sees only its partner's decisions, unless it holds
``audit:all`` (cross-partner audit). A key file written before partners existed still loads:
a key without ``partner`` is its own partner (partner = key id). A decision belongs to the
partner of the key that made it, looked up by key id, so key ids are never reused: revoking
keeps the entry (``revoked: true``), rotating keeps the id and partner with a new secret.

``credit keys create|rotate|revoke|list`` manages a key file; the gateway re-reads it when
it changes (``KeyStore``), no restart. ``python -m services.gateway.keys [keys.json]
[plain-key-file]`` creates a development key with every scope (``make up`` calls it).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

log = structlog.get_logger(__name__)
# ``audit`` reads the key's own partner's decisions; ``audit:all`` every partner's.
CROSS_PARTNER_AUDIT = "audit:all"
SCOPES = ("score", "explain", "read:clients", "audit", "outcomes", CROSS_PARTNER_AUDIT)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
DEV_KEYS_FILE = Path(".dev/api-keys.json")
DEV_KEY_FILE = Path(".dev/api-key")


class ApiKey(BaseModel):
    id: str = Field(min_length=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str]
    rate_per_minute: int = Field(600, gt=0)
    partner: str | None = Field(None, pattern=NAME_PATTERN)  # None: the key id (old files)
    revoked: bool = False
    created_at: datetime | None = None

    @property
    def tenant(self) -> str:
        """The partner whose decisions this key makes and sees."""
        return self.partner or self.id

    @property
    def cross_partner(self) -> bool:
        return CROSS_PARTNER_AUDIT in self.scopes


KEY_LIST = TypeAdapter(list[ApiKey])


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def load_keys(path: Path | None, inline: str | None) -> dict[str, ApiKey]:
    """Keys by hash; a missing file means no keys from it (everything but health is 401)."""
    return {key.hash: key for key in _read(path, inline)}


def _read(path: Path | None, inline: str | None) -> list[ApiKey]:
    keys: list[ApiKey] = []
    if path is not None and path.is_file():
        keys += KEY_LIST.validate_json(path.read_bytes())
    if inline:
        keys += KEY_LIST.validate_json(inline)
    return keys


class KeyStore:
    """The keys of a file (plus inline ones), re-read when the file changes: one ``stat``
    per lookup (a few microseconds), a parse only when its mtime, size or inode moved. A
    file that fails to parse keeps the last good keys (logged): a half-edited file must not
    lock every partner out; ``credit keys`` replaces the file atomically, so it never sees
    one."""

    def __init__(self, path: Path | None, inline: str | None = None) -> None:
        self.path, self.inline = path, inline
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}
        self._partner_of: dict[str, str] = {}
        self._reload(self._current_stamp(), initial=True)

    def _current_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, stamp: tuple[int, int, int] | None, initial: bool = False) -> None:
        try:
            keys = _read(self.path if stamp is not None else None, self.inline)
        except (ValidationError, OSError, ValueError) as error:
            if initial:
                raise
            log.error("api_keys_reload_failed", path=str(self.path), error=str(error)[:200])
            self._stamp = stamp  # do not re-parse the same broken file on every request
            return
        self._by_hash = {key.hash: key for key in keys if not key.revoked}
        self._partner_of = {key.id: key.tenant for key in keys}
        self._stamp = stamp
        if not initial:
            log.info("api_keys_reloaded", keys=len(self._by_hash))

    def _fresh(self) -> None:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp)

    def get(self, key_hash: str) -> ApiKey | None:
        self._fresh()
        return self._by_hash.get(key_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

    def partner_of(self, key_id: str) -> str:
        """The partner a decision made by ``key_id`` belongs to (a key no longer in the
        store: its id, as for old key files)."""
        self._fresh()
        return self._partner_of.get(key_id, key_id)

    def key_ids_of(self, partner: str) -> list[str]:
        """Every key id whose decisions belong to ``partner``."""
        self._fresh()
        ids = {key_id for key_id, owner in self._partner_of.items() if owner == partner}
        if partner not in self._partner_of:
            ids.add(partner)  # decisions of a key removed from the file
        return sorted(ids)


def _write(path: Path, keys: list[ApiKey]) -> None:
    """Atomic replace (temporary file + rename): the gateway never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(KEY_LIST.dump_json(keys, indent=2, exclude_none=True))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _existing(path: Path) -> list[ApiKey]:
    return KEY_LIST.validate_json(path.read_bytes()) if path.is_file() else []


def _check_scopes(scopes: list[str] | tuple[str, ...]) -> None:
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise ValueError(f"unknown or no scopes {sorted(unknown)}; expected some of {SCOPES}")


def create_key(
    path: Path,
    key_id: str,
    partner: str,
    scopes: list[str] | tuple[str, ...],
    rate_per_minute: int = 600,
) -> str:
    """A new key for ``partner``; refuses an id already used (even revoked: decisions
    belong to partners through key ids). Returns the plain key, its only clear copy."""
    _check_scopes(scopes)
    existing = _existing(path)
    if any(key.id == key_id for key in existing):
        raise ValueError(f"key id {key_id!r} exists (ids are never reused)")
    plain = secrets.token_urlsafe(32)
    entry = ApiKey(
        id=key_id,
        partner=partner,
        hash=hash_key(plain),
        scopes=list(scopes),
        rate_per_minute=rate_per_minute,
        created_at=datetime.now(UTC),
    )
    _write(path, [*existing, entry])
    return plain


def rotate_key(path: Path, key_id: str) -> str:
    """A new secret for ``key_id`` (same partner, scopes, rate); the old one stops working
    as soon as the gateway sees the file change."""
    existing = _existing(path)
    found = next((key for key in existing if key.id == key_id and not key.revoked), None)
    if found is None:
        raise ValueError(f"no active key {key_id!r}")
    plain = secrets.token_urlsafe(32)
    rotated = found.model_copy(
        update={"hash": hash_key(plain), "created_at": datetime.now(UTC), "partner": found.tenant}
    )
    _write(path, [rotated if key.id == key_id else key for key in existing])
    return plain


def revoke_key(path: Path, key_id: str) -> None:
    """Marks the key revoked (kept, so its decisions stay its partner's)."""
    existing = _existing(path)
    if not any(key.id == key_id for key in existing):
        raise ValueError(f"no key {key_id!r}")
    _write(
        path,
        [
            key.model_copy(update={"revoked": True, "partner": key.tenant})
            if key.id == key_id
            else key
            for key in existing
        ],
    )


def list_keys(path: Path) -> list[ApiKey]:
    return _existing(path)


def add_key(
    path_keys: Path,
    key_id: str,
    scopes: list[str] | tuple[str, ...],
    rate_per_minute: int = 600,
    partner: str | None = None,
) -> str:
    """Generate a key, append its hash to the key file (replacing one with the same id),
    and return the plain key: the only time it exists in clear (development keys)."""
    _check_scopes(scopes)
    plain = secrets.token_urlsafe(32)
    existing = _existing(path_keys)
    entry = ApiKey(
        id=key_id,
        hash=hash_key(plain),
        scopes=list(scopes),
        rate_per_minute=rate_per_minute,
        partner=partner,
    )
    kept = [key for key in existing if key.id != key_id] + [entry]
    _write(path_keys, kept)
    return plain


DEV_RATE_PER_MINUTE = 120_000  # local load tests (make bench) measure the service, not the limit


def create_dev_key(path_keys: Path = DEV_KEYS_FILE, path_plain: Path = DEV_KEY_FILE) -> str:
    """A development key with every scope: hash into ``path_keys``, plain key into
    ``path_plain`` (mode 0600, created that way so it is never world-readable)."""
    path_keys, path_plain = Path(path_keys), Path(path_plain)
    plain = add_key(path_keys, "dev", SCOPES, rate_per_minute=DEV_RATE_PER_MINUTE)
    path_plain.parent.mkdir(parents=True, exist_ok=True)
    path_plain.unlink(missing_ok=True)
    descriptor = os.open(path_plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(plain + "\n")
    return plain


def main(argv: list[str]) -> None:
    keys = Path(argv[0]) if argv else DEV_KEYS_FILE
    plain = Path(argv[1]) if len(argv) > 1 else DEV_KEY_FILE
    create_dev_key(keys, plain)
    print(f"dev API key (every scope) written to {plain}; its hash added to {keys}")


if __name__ == "__main__":
    main(sys.argv[1:])
