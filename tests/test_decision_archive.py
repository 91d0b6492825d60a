"""Decision-log retention: old decisions move into Parquet archives, nothing lost or
changed, and the audit API still finds them; on SQLite and on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from services.gateway import archive
from services.gateway.decisions import Decision, DecisionLog
from tests.test_gateway_support import postgres_database, running, settings_for, write_keys

NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionLog]:
    if request.param == "sqlite":
        decision_log = DecisionLog(
            f"sqlite:///{tmp_path / 'decisions.db'}", archive_dir=tmp_path / "archive"
        )
        decision_log.open()
        yield decision_log
        decision_log.close()
    else:
        with postgres_database() as url:
            decision_log = DecisionLog(url, archive_dir=tmp_path / "archive")
            decision_log.open()
            yield decision_log
            decision_log.close()


def decision(i: int, age_days: float, infinite: bool = True) -> Decision:
    """Every kind of field: client or application, a simulation, an infinite input (not on
    PostgreSQL: its json type refuses Infinity; served features are finite anyway)."""
    new = Decision.new(
        key_id="partner",
        client_id=100_000 + i if i % 3 else None,
        application_hash=None if i % 3 else f"{i:064x}",
        model_version="3",
        probability=i / 1000,
        decision="refused" if i % 2 else "granted",
        threshold=0.3,
        simulation=i % 5 == 0,
        features={
            "numeric": {
                "AMT_CREDIT": 1000.0 * i,
                "EXT_SOURCE_2": i / 100,
                "RATIO": math.inf if infinite and i % 4 == 0 else 0.5,
            },
            "categorical": {"NAME_CONTRACT_TYPE": "Cash loans"},
        },
    )
    return dataclasses.replace(new, created_at=NOW - timedelta(days=age_days))


def write(log: DecisionLog, decisions: list[Decision]) -> None:
    asyncio.run(log.write(decisions))


def archived_ids(archive_dir: Path) -> list[str]:
    tables = [
        pq.read_table(path, columns=["decision_id"])
        for path in sorted(archive_dir.glob("*.parquet"))
    ]
    return [i for table in tables for i in table.column(0).to_pylist()]


def test_old_decisions_move_to_parquet_unchanged_and_stay_retrievable(
    log: DecisionLog, tmp_path: Path
) -> None:
    infinite = log.engine.dialect.name == "sqlite"
    old = [decision(i, age_days=100 + i, infinite=infinite) for i in range(1, 24)]
    recent = [decision(i, age_days=1, infinite=infinite) for i in range(24, 28)]
    write(log, old + recent)
    assert log.archive_dir is not None

    report = archive.archive_decisions(
        log.engine, log.archive_dir, NOW - timedelta(days=30), batch_size=10
    )

    assert report.decisions == 23 and len(report.files) == 3
    assert sorted(archived_ids(log.archive_dir)) == sorted(d.decision_id for d in old)
    left = asyncio.run(log.recent(100, simulations=True))
    assert sorted(d.decision_id for d in left) == sorted(d.decision_id for d in recent)
    for original in old + recent:  # from the archive or the table, field for field
        assert asyncio.run(log.get(original.decision_id)) == original
    assert asyncio.run(log.get("00000000-0000-7000-8000-000000000000")) is None

    again = archive.archive_decisions(log.engine, log.archive_dir, NOW - timedelta(days=30))
    assert again.decisions == 0 and again.files == []
    assert len(archived_ids(log.archive_dir)) == 23


def test_a_run_stopped_between_file_and_delete_is_taken_up_again(tmp_path: Path) -> None:
    """The first batch's file was written but its rows were not deleted (a crash between
    the two): the next run writes the same file again; every decision is archived once."""
    log = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
    log.open()
    old = [decision(i, age_days=60) for i in range(1, 13)]
    write(log, old)
    cutoff, directory = NOW - timedelta(days=30), tmp_path / "archive"
    directory.mkdir()
    first_batch = next(archive._batches(log.engine, cutoff, 5))
    written_before_the_crash = archive._write_durably(directory, first_batch)

    report = archive.archive_decisions(log.engine, directory, cutoff, batch_size=5)

    assert report.decisions == 12 and report.files[0] == written_before_the_crash
    assert sorted(archived_ids(directory)) == sorted(d.decision_id for d in old)
    assert not list(directory.glob("*.partial"))
    log.close()


def test_cli_archives_and_the_audit_api_still_answers(tmp_path: Path) -> None:
    url, directory = f"sqlite:///{tmp_path / 'decisions.db'}", tmp_path / "archive"
    log = DecisionLog(url)
    log.open()
    old, recent = decision(7, age_days=400), decision(8, age_days=2)
    write(log, [old, recent])
    log.close()

    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "credit.cli",
            "decisions",
            "archive",
            "--older-than-days",
            "365",
            "--purge-older-than-days",
            "30",
            "--database-url",
            url,
            "--archive-dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "--purge-older-than-days must be at least --older-than-days" in refused.stderr
    assert not directory.exists()  # refused before anything was archived
    metrics_file = tmp_path / "archive.prom"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "credit.cli",
            "decisions",
            "archive",
            "--older-than-days",
            "365",
            "--database-url",
            url,
            "--archive-dir",
            str(directory),
            "--metrics-file",
            str(metrics_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 decision(s) created before" in result.stdout
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics_file.read_text())
        for sample in family.samples
    }
    assert metrics["credit_decision_archive_moved"] == 1
    assert metrics["credit_decision_archive_purged"] == 0  # no retention period given
    finished = metrics["credit_decision_archive_last_success_timestamp_seconds"]
    assert abs(finished - datetime.now(UTC).timestamp()) < 120
    cutoff = metrics["credit_decision_archive_cutoff_timestamp_seconds"]
    assert abs(finished - cutoff - 365 * 86400) < 120
    engine = create_engine(url)
    assert archive.count_older(engine, NOW) == 1  # the recent one only
    engine.dispose()

    keys = write_keys(tmp_path / "keys.json")
    settings = settings_for(
        tmp_path / "keys.json", url, "127.0.0.1:1", "127.0.0.1:1", decision_archive_dir=directory
    )
    with running(settings) as client:
        headers = {"X-API-Key": keys["all"]}
        archived = client.get(f"/v1/decisions/{old.decision_id}", headers=headers)
        assert archived.status_code == 200, archived.text
        body = archived.json()
        assert body["features"]["numeric"]["RATIO"] == 0.5
        assert datetime.fromisoformat(body["created_at"]) == old.created_at
        assert {k: body[k] for k in ("client_id", "probability", "decision", "key_id")} == {
            "client_id": old.client_id,
            "probability": old.probability,
            "decision": old.decision,
            "key_id": old.key_id,
        }
        missing = client.get("/v1/decisions/00000000-0000-7000-8000-000000000000", headers=headers)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")


def test_purge_deletes_only_files_wholly_past_retention(tmp_path: Path) -> None:
    """Retention: a file whose decisions are all older than the cutoff goes; a file with
    any newer decision stays whole; the audit lookup then finds only what is kept."""
    log = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}", archive_dir=tmp_path / "archive")
    log.open()
    expired = [decision(i, age_days=2_000) for i in range(1, 6)]
    mixed = [decision(i, age_days=2_000 if i % 2 else 400) for i in range(6, 11)]
    kept = [decision(i, age_days=400) for i in range(11, 16)]
    write(log, expired + mixed + kept)  # ids in this order: one file each at batch size 5
    assert log.archive_dir is not None
    archived = archive.archive_decisions(log.engine, log.archive_dir, NOW, batch_size=5)
    assert len(archived.files) == 3

    purged = archive.purge_archives(log.archive_dir, NOW - timedelta(days=5 * 365))

    assert purged.decisions == 5 and purged.files == archived.files[:1]
    assert sorted(archived_ids(log.archive_dir)) == sorted(d.decision_id for d in mixed + kept)
    assert asyncio.run(log.get(expired[0].decision_id)) is None
    assert asyncio.run(log.get(mixed[0].decision_id)) == mixed[0]  # old, in a kept file
    log.close()
