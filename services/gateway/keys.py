"""API keys: stored as SHA-256 hashes, never in clear, never logged.

A key is 256 random bits, so a plain (unsalted) SHA-256 is enough: there is nothing to
brute-force, unlike a password. Keys come from a JSON file and/or an environment variable:
``[{"id": "ui", "hash": "<sha256 hex>", "scopes": ["score", ...], "rate_per_minute": 600}]``.

``python -m services.gateway.keys [keys.json] [plain-key-file]`` creates a development key
with every scope (``make up`` calls it).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

SCOPES = ("score", "explain", "read:clients", "audit", "outcomes")
DEV_KEYS_FILE = Path(".dev/api-keys.json")
DEV_KEY_FILE = Path(".dev/api-key")


class ApiKey(BaseModel):
    id: str = Field(min_length=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str]
    rate_per_minute: int = Field(600, gt=0)


KEY_LIST = TypeAdapter(list[ApiKey])


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def load_keys(path: Path | None, inline: str | None) -> dict[str, ApiKey]:
    """Keys by hash; a missing file means no keys from it (everything but health is 401)."""
    keys: list[ApiKey] = []
    if path is not None and path.is_file():
        keys += KEY_LIST.validate_json(path.read_bytes())
    if inline:
        keys += KEY_LIST.validate_json(inline)
    return {key.hash: key for key in keys}


def add_key(
    path_keys: Path, key_id: str, scopes: list[str] | tuple[str, ...], rate_per_minute: int = 600
) -> str:
    """Generate a key, append its hash to the key file (replacing one with the same id),
    and return the plain key: the only time it exists in clear."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; expected some of {SCOPES}")
    plain = secrets.token_urlsafe(32)
    existing = KEY_LIST.validate_json(path_keys.read_bytes()) if path_keys.is_file() else []
    entry = ApiKey(id=key_id, hash=hash_key(plain), scopes=list(scopes),
                   rate_per_minute=rate_per_minute)  # fmt: skip
    kept = [key for key in existing if key.id != key_id] + [entry]
    path_keys.parent.mkdir(parents=True, exist_ok=True)
    path_keys.write_bytes(KEY_LIST.dump_json(kept, indent=2))
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
