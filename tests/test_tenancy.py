"""Tenants (issue 17): every key belongs to a partner, which alone sees its decisions (read,
list, list by client, explain, report an outcome), except keys with ``audit:all``; keys are
created, rotated and revoked with ``credit keys`` and the running gateway follows the file.
On SQLite and on a throwaway PostgreSQL database, against the real gRPC stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.gateway.keys import KeyStore, add_key, create_key, hash_key
from tests.test_gateway_support import APPLICATION, running, settings_for


def partner_keys(path: Path) -> dict[str, str]:
    rate = 100_000
    return {
        "a": create_key(path, "a-app", "bank-a", ["score", "outcomes"], rate),
        "a_audit": create_key(path, "a-audit", "bank-a", ["audit", "explain"], rate),
        "a_reader": create_key(path, "a-reader", "bank-a", ["read:clients"], rate),
        "b": create_key(
            path, "b-app", "bank-b", ["score", "audit", "read:clients", "explain", "outcomes"], rate
        ),
        "auditor": create_key(path, "regulator", "regulator", ["audit:all"], rate),
    }


def h(plain: str) -> dict[str, str]:
    return {"X-API-Key": plain}


def test_a_partner_sees_only_its_own_decisions(
    database_url: str, stack: Any, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.json"
    plain = partner_keys(keys_file)
    settings = settings_for(keys_file, database_url, stack.scoring_address, stack.explainer_address)
    client_id = stack.train_ids[3]
    with running(settings) as client:
        mine = client.post("/v1/scores", json={"client_id": client_id}, headers=h(plain["a"]))
        theirs = client.post("/v1/scores", json={"client_id": client_id}, headers=h(plain["b"]))
        new_app = client.post(
            "/v1/scores", json={"application": APPLICATION}, headers=h(plain["b"])
        )
        assert mine.status_code == theirs.status_code == new_app.status_code == 200
        a_id, b_id = mine.json()["decision_id"], theirs.json()["decision_id"]
        b_ids = {b_id, new_app.json()["decision_id"]}

        # Partner B cannot read, explain or report on A's decision: it reads as unknown.
        for url in (f"/v1/decisions/{a_id}", f"/v1/decisions/{a_id}/explanation"):
            refused = client.get(url, headers=h(plain["b"]))
            assert refused.status_code == 404, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert client.get(url.replace(a_id, b_id), headers=h(plain["b"])).status_code == 200
        report = {"defaulted": False, "observed_at": "2026-11-30"}
        assert (
            client.put(
                f"/v1/decisions/{a_id}/outcome", json=report, headers=h(plain["b"])
            ).status_code
            == 404
        )
        assert (
            client.put(
                f"/v1/decisions/{a_id}/outcome", json=report, headers=h(plain["a"])
            ).status_code
            == 201
        )

        # Lists: each partner's own, also by client id (both scored the same client).
        def listed(key: str, query: str = "") -> set[str]:
            found = client.get(f"/v1/decisions?limit=200{query}", headers=h(plain[key]))
            assert found.status_code == 200, found.text
            return {d["decision_id"] for d in found.json()}

        assert listed("b") == b_ids
        assert listed("b", f"&client_id={client_id}") == {b_id}
        assert listed("a_reader") == {a_id}
        assert listed("a_reader", f"&client_id={client_id}") == {a_id}

        # A's audit key reads and explains A's decision; the same partner, another key.
        assert (
            client.get(f"/v1/decisions/{a_id}", headers=h(plain["a_audit"])).json()["key_id"]
            == "a-app"
        )
        explained = client.get(f"/v1/decisions/{a_id}/explanation", headers=h(plain["a_audit"]))
        assert explained.status_code == 200, explained.text
        assert client.get(f"/v1/decisions/{b_id}", headers=h(plain["a_audit"])).status_code == 404

        # The cross-partner auditor reads both partners' decisions and lists them all.
        for decision_id in (a_id, b_id):
            audited = client.get(f"/v1/decisions/{decision_id}", headers=h(plain["auditor"]))
            assert audited.status_code == 200, audited.text
        assert listed("auditor") >= {a_id} | b_ids
        assert listed("auditor", f"&client_id={client_id}") == {a_id, b_id}
        # ...but reports no outcome (auditors read) and lacks every other scope.
        assert (
            client.put(
                f"/v1/decisions/{b_id}/outcome", json=report, headers=h(plain["auditor"])
            ).status_code
            == 403
        )
        assert (
            client.post(
                "/v1/scores", json={"client_id": client_id}, headers=h(plain["auditor"])
            ).status_code
            == 403
        )


def test_keys_are_rotated_and_revoked_without_restart(
    database_url: str, stack: Any, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.json"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # The real command line, in a process of its own, as an operator would run it.
        return subprocess.run(
            [sys.executable, "-m", "credit.cli", "keys", *args, "--file", str(keys_file)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LOG_FORMAT": "console"},
        )

    def credit_keys(*args: str) -> str:
        result = run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    plain = credit_keys(
        "create", "bank-a-1", "--partner", "bank-a", "--scope", "score", "--scope", "audit"
    )
    assert plain not in keys_file.read_text()  # hashed at rest
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    settings = settings_for(keys_file, database_url, stack.scoring_address, stack.explainer_address)
    with running(settings) as client:
        scored = client.post("/v1/scores", json={"client_id": stack.train_ids[0]}, headers=h(plain))
        assert scored.status_code == 200, scored.text
        decision_id = scored.json()["decision_id"]

        # A key created while the gateway runs works at once.
        second = credit_keys("create", "bank-a-2", "--partner", "bank-a", "--scope", "audit")
        assert client.get(f"/v1/decisions/{decision_id}", headers=h(second)).status_code == 200

        rotated = credit_keys("rotate", "bank-a-1")
        assert client.get("/v1/model", headers=h(plain)).status_code == 401
        assert client.get(f"/v1/decisions/{decision_id}", headers=h(rotated)).status_code == 200

        credit_keys("revoke", "bank-a-1")
        revoked = client.get("/v1/model", headers=h(rotated))
        assert revoked.status_code == 401, revoked.text
        assert revoked.headers["content-type"] == "application/problem+json"
        # Revoked, the key still says whose its decisions are: bank-a's other key reads them.
        assert client.get(f"/v1/decisions/{decision_id}", headers=h(second)).status_code == 200
        listing = credit_keys("list")
        assert "bank-a-1\tbank-a\tscore,audit\trevoked" in listing and rotated not in listing

        # Ids are never reused (a decision's partner is found through its key id).
        reused = run("create", "bank-a-1", "--partner", "bank-b", "--scope", "audit")
        assert reused.returncode == 2 and "never reused" in reused.stderr


def test_old_key_files_load_and_a_broken_edit_keeps_the_last_good_keys(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    legacy = add_key(keys_file, "legacy", ["score"])  # the format before partners
    assert "partner" not in json.loads(keys_file.read_text())[0]
    store = KeyStore(keys_file)
    key = store.get(hash_key(legacy))
    assert key is not None and key.tenant == "legacy"  # its own partner
    assert store.partner_of("legacy") == "legacy" and store.key_ids_of("legacy") == ["legacy"]
    assert store.partner_of("gone") == "gone"  # a key no longer in the file

    keys_file.write_text("[{not json")
    os.utime(keys_file, ns=(1, 1))  # a stamp of its own, whatever the clock's resolution
    assert store.get(hash_key(legacy)) is not None  # last good keys kept, error logged
    newer = create_key(tmp_path / "other.json", "x", "p", ["score"])
    keys_file.write_text((tmp_path / "other.json").read_text())
    assert store.get(hash_key(newer)) is not None and store.get(hash_key(legacy)) is None
