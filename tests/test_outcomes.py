"""Outcomes: the REST route (idempotent, conflicts, unknown decisions), the bulk import (all
or nothing), the simulated labels, on SQLite and on a throwaway PostgreSQL database. The
decisions are written through the decision log itself; no scoring service is needed."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, insert, select
from typer.testing import CliRunner

from credit.cli import app as cli
from services.gateway.decisions import Decision, DecisionLog, DecisionRow, OutcomeRow
from services.gateway.outcomes import (
    OutcomeFileError,
    import_outcomes,
    read_outcome_file,
    simulate_outcomes,
)
from tests.test_gateway_support import running, settings_for, write_keys

NOWHERE = "127.0.0.1:9"  # the outcome route calls no backend


def decision(client_id: int | None = 100_001, **fields: Any) -> Decision:
    values: dict[str, Any] = {
        "key_id": "partner",
        "client_id": client_id,
        "application_hash": None,
        "model_version": "1",
        "probability": 0.05,
        "decision": "granted",
        "threshold": 0.1,
        "simulation": False,
        "features": {"numeric": {}, "categorical": {}},
    }
    values.update(fields)
    return Decision.new(**values)


def log_decisions(url: str, decisions: list[Decision]) -> None:
    log = DecisionLog(url)
    log.open()
    try:
        asyncio.run(log.write(decisions))
    finally:
        log.close()


def outcome_rows(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(OutcomeRow).order_by(OutcomeRow.decision_id)))
    finally:
        engine.dispose()


# --- the route ---------------------------------------------------------------------------


def test_outcome_route_idempotent_and_conflicting(database_url: str, tmp_path: Path) -> None:
    granted, what_if = decision(), decision(simulation=True)
    log_decisions(database_url, [granted, what_if])
    plain = write_keys(tmp_path / "keys.json")
    settings = settings_for(tmp_path / "keys.json", database_url, NOWHERE, NOWHERE)
    url = f"/v1/decisions/{granted.decision_id}/outcome"
    body = {"defaulted": True, "observed_at": "2026-06-30"}
    with running(settings) as client:
        headers = {"X-API-Key": plain["all"]}
        first = client.put(url, json=body, headers=headers)
        again = client.put(url, json=body, headers=headers)
        other = client.put(
            url, json={"defaulted": False, "observed_at": "2026-06-30"}, headers=headers
        )
        later = client.put(
            url, json={"defaulted": True, "observed_at": "2026-07-01"}, headers=headers
        )
        unknown = client.put(
            "/v1/decisions/0190a0a0-0000-7000-8000-000000000000/outcome",
            json=body,
            headers=headers,
        )
        simulated = client.put(
            f"/v1/decisions/{what_if.decision_id}/outcome", json=body, headers=headers
        )
        no_scope = client.put(url, json=body, headers={"X-API-Key": plain["score"]})
        no_key = client.put(url, json=body)
        bad = [
            client.put(url, json=b, headers=headers)
            for b in (
                {"defaulted": "yes", "observed_at": "2026-06-30"},
                {"defaulted": True, "observed_at": "30/06/2026"},
                {"defaulted": True, "observed_at": (date.today() + timedelta(days=5)).isoformat()},
                {"defaulted": True},
                {"defaulted": True, "observed_at": "2026-06-30", "amount": 1},
            )
        ]
        bad_id = client.put("/v1/decisions/not-a-uuid/outcome", json=body, headers=headers)

    assert first.status_code == 201 and first.json()["status"] == "new"
    assert first.json()["defaulted"] is True and first.json()["observed_at"] == "2026-06-30"
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["reported_at"] == first.json()["reported_at"]
    for conflict in (other, later):
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "application/problem+json"
        problem = conflict.json()
        assert problem["type"].endswith("/outcome-conflict")
        assert problem["recorded"] == {"defaulted": True, "observed_at": "2026-06-30"}
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("/not-found")
    assert simulated.status_code == 422 and "simulation" in simulated.json()["detail"]
    assert no_scope.status_code == 403 and no_key.status_code == 401
    for response in [*bad, bad_id]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    rows = outcome_rows(database_url)  # one outcome, the first, reported by the key "all"
    assert [(r.decision_id, r.defaulted, r.observed_at, r.key_id, r.source) for r in rows] == [
        (granted.decision_id, True, date(2026, 6, 30), "all", "api")
    ]


def test_log_of_the_previous_version_gains_outcomes(tmp_path: Path) -> None:
    """A log written before outcomes existed (no ``outcomes`` table) keeps working: the
    gateway creates the table and the old decisions take outcomes."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = decision()
    engine = create_engine(url)
    DecisionRow.__table__.create(engine)  # type: ignore[attr-defined]
    with engine.begin() as connection:
        row = {k: v for k, v in vars(old).items() if k != "advisor"}  # not a column
        connection.execute(insert(DecisionRow), [row])
    engine.dispose()
    plain = write_keys(tmp_path / "keys.json")
    settings = settings_for(tmp_path / "keys.json", url, NOWHERE, NOWHERE)
    with running(settings) as client:
        reply = client.put(
            f"/v1/decisions/{old.decision_id}/outcome",
            json={"defaulted": False, "observed_at": "2026-01-31"},
            headers={"X-API-Key": plain["all"]},
        )
        record = client.get(f"/v1/decisions/{old.decision_id}", headers={"X-API-Key": plain["all"]})
    assert reply.status_code == 201 and record.status_code == 200


# --- the bulk import ---------------------------------------------------------------------


def test_import_counts_new_unchanged_conflicting_unknown(database_url: str, tmp_path: Path):
    decisions = [decision(client_id=100_000 + i) for i in range(4)]
    log_decisions(database_url, decisions)
    engine = create_engine(database_url)
    first = pd.DataFrame(
        {
            "decision_id": [d.decision_id for d in decisions[:2]],
            "defaulted": [True, False],
            "observed_at": [date(2026, 5, 31)] * 2,
        }
    )
    import_outcomes(engine, first)
    csv = tmp_path / "outcomes.csv"
    csv.write_text(
        "decision_id,defaulted,observed_at,comment\n"
        f"{decisions[0].decision_id},true,2026-05-31,same again\n"
        f"{decisions[1].decision_id},1,2026-05-31,conflicts\n"
        f"{decisions[2].decision_id.upper()},0,2026-06-30,new (id in capitals)\n"
        f"{decisions[3].decision_id},yes,2026-06-30,new\n"
        f"{decisions[3].decision_id},yes,2026-06-30,the same row twice\n"
        "0190a0a0-0000-7000-8000-000000000000,false,2026-06-30,unknown\n"
    )
    summary = import_outcomes(engine, read_outcome_file(csv), batch_size=2)
    assert (summary.rows, summary.new, summary.unchanged, summary.conflicting, summary.unknown) == (
        6,
        2,
        2,
        1,
        1,
    )
    assert summary.conflicts[0][0] == decisions[1].decision_id
    parquet = tmp_path / "outcomes.parquet"
    read_outcome_file(csv).to_parquet(parquet)  # typed columns: bool and date
    again = import_outcomes(engine, read_outcome_file(parquet))
    assert (again.new, again.unchanged, again.conflicting, again.unknown) == (0, 4, 1, 1)
    engine.dispose()
    rows = {r.decision_id: (r.defaulted, r.source) for r in outcome_rows(database_url)}
    assert rows == {
        decisions[0].decision_id: (True, "import"),
        decisions[1].decision_id: (False, "import"),  # the conflict did not overwrite it
        decisions[2].decision_id: (False, "import"),
        decisions[3].decision_id: (True, "import"),
    }


def test_import_failing_half_way_leaves_nothing(database_url: str) -> None:
    decisions = [decision(client_id=100_000 + i) for i in range(6)]
    log_decisions(database_url, decisions)
    engine = create_engine(database_url)
    outcomes = pd.DataFrame(
        {
            "decision_id": [d.decision_id for d in decisions],
            "defaulted": [False] * 6,
            "observed_at": [date(2026, 5, 31)] * 6,
        }
    )
    done: list[int] = []

    def interrupted(rows: int) -> None:  # the process dies after two batches were written
        done.append(rows)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_outcomes(engine, outcomes, batch_size=2, on_batch=interrupted)
    assert done == [2, 2]
    assert outcome_rows(database_url) == []
    summary = import_outcomes(engine, outcomes, batch_size=2)  # the retry imports it all
    engine.dispose()
    assert summary.new == 6 and len(outcome_rows(database_url)) == 6


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{id},maybe,2026-05-31", "line 3: defaulted: expected true/false or 1/0, found 'maybe'"),
        ("{id},true,31/05/2026", "line 3: observed_at: expected a date"),
        ("not-an-id,true,2026-05-31", "line 3: decision_id: expected a UUID"),
        ("{id},true,2999-01-01", "line 3: observed_at: 2999-01-01 is in the future"),
    ],
)
def test_import_bad_file_names_the_line_and_writes_nothing(
    tmp_path: Path, line: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    decisions = [decision(), decision()]
    log_decisions(url, decisions)
    csv = tmp_path / "outcomes.csv"
    csv.write_text(
        "decision_id,defaulted,observed_at\n"
        f"{decisions[0].decision_id},false,2026-05-31\n"
        + line.format(id=decisions[1].decision_id)
        + "\n"
    )
    with pytest.raises(OutcomeFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_outcome_file(csv)
    result = CliRunner().invoke(cli, ["outcomes", "import", str(csv), "--database-url", url])
    assert result.exit_code == 2, result.output
    assert "nothing imported" in result.output and "Traceback" not in result.output
    assert outcome_rows(url) == []


def test_import_command_summary_and_missing_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    granted = decision()
    log_decisions(url, [granted])
    good = tmp_path / "good.csv"
    good.write_text(f"decision_id,defaulted,observed_at\n{granted.decision_id},false,2026-05-31\n")
    result = CliRunner().invoke(cli, ["outcomes", "import", str(good), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "1 row(s): 1 new, 0 unchanged, 0 conflicting, 0 unknown" in result.output
    missing = tmp_path / "missing.csv"
    missing.write_text(f"decision_id,defaulted\n{granted.decision_id},false\n")
    result = CliRunner().invoke(cli, ["outcomes", "import", str(missing), "--database-url", url])
    assert result.exit_code == 2 and "missing column(s) observed_at" in result.output


# --- simulated labels --------------------------------------------------------------------


def test_simulate_labels_granted_decisions_of_known_clients(database_url: str) -> None:
    decisions = [
        decision(client_id=1, decision="granted"),
        decision(client_id=2, decision="granted"),
        decision(client_id=3, decision="refused", probability=0.4),
        decision(client_id=None, decision="granted"),  # a new application: no TARGET
        decision(client_id=99, decision="granted"),  # a test client: no TARGET
        decision(client_id=1, decision="granted", simulation=True),  # a what-if
    ]
    log_decisions(database_url, decisions)
    targets = pd.Series({1: 0, 2: 1, 3: 1})
    engine = create_engine(database_url)
    # Client 2 is a training client: its outcome is in sample, and says so.
    summary = simulate_outcomes(
        engine, targets, observed_at=date(2026, 6, 1), in_sample=pd.Index([2])
    )
    assert (
        summary.labelled,
        summary.defaulted,
        summary.in_sample,
        summary.refused_skipped,
        summary.unknown_client,
    ) == (2, 1, 1, 1, 2)
    again = simulate_outcomes(engine, targets, include_refused=True)  # only what is left
    assert (again.labelled, again.defaulted) == (1, 1)
    with engine.connect() as connection:
        sources = connection.execute(
            select(OutcomeRow.source, func.count()).group_by(OutcomeRow.source)
        ).all()
    engine.dispose()
    assert sorted(sources) == [("simulated", 2), ("simulated-train", 1)]
    labelled = {r.decision_id: r.defaulted for r in outcome_rows(database_url)}
    assert labelled == {
        decisions[0].decision_id: False,
        decisions[1].decision_id: True,
        decisions[2].decision_id: True,
    }


def test_concurrent_reports_of_one_outcome_record_it_once(database_url: str) -> None:
    """Reporters racing on one decision: the primary key lets one insert win; the others
    see it (inside their own transaction) and answer "unchanged" or, if different, conflict."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from services.gateway.decisions import Outcome

    granted = decision()
    log_decisions(database_url, [granted])
    log = DecisionLog(database_url)
    log.open()
    barrier = Barrier(6)

    def report(defaulted: bool) -> str:
        barrier.wait()
        outcome = Outcome(
            decision_id=granted.decision_id,
            defaulted=defaulted,
            observed_at=date(2026, 6, 30),
            reported_at=datetime.now(UTC),
            key_id="k",
            source="api",
        )
        return log._report_outcome(outcome)[0]

    try:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(report, [True] * 6))
    finally:
        log.close()
    assert sorted(statuses) == ["new"] + ["unchanged"] * 5
    assert len(outcome_rows(database_url)) == 1
