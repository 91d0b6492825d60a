"""Issue 22's done-when at small scale, through the real stack: a few hundred clients the
model never trained on (the synthetic set's test applicants) scored by the real gateway,
scoring service and feature store; `credit outcomes simulate` labels their granted decisions
with the generator's held-out truth; `credit performance report` writes a report whose
realised AUC is within 0.05 of the model card's comparable figure (out-of-fold AUC of the
band the threshold grants). Nothing is mocked; the figures can miss, and then it fails."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from credit.cli import app as cli
from tests.test_gateway_decisions import metric
from tests.test_gateway_support import running, settings_for, write_keys

MARGIN = 0.05  # the done-when


def test_realised_auc_of_unseen_clients_matches_the_model_card(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_file = tmp_path / "api-keys.json"
    key = write_keys(keys_file)["all"]
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    unseen = stack.features.loc[stack.features["split"] == "test", "SK_ID_CURR"].tolist()
    assert 300 <= len(unseen) <= 600  # "a few hundred known clients"
    # A batch of 100 on a busy 2-core machine can take longer than the 2 s default deadline.
    settings = settings_for(
        keys_file, url, stack.scoring_address, stack.explainer_address, scoring_deadline_seconds=60
    )
    with running(settings) as client:
        for start in range(0, len(unseen), 100):
            answer = client.post(
                "/v1/scores/batch",
                headers={"X-API-Key": key},
                json={"client_ids": unseen[start : start + 100]},
            )
            assert answer.status_code == 200, answer.text
            assert all(item["score"] for item in answer.json()["items"]), answer.text

    monkeypatch.setenv("TABLES_DIR", str(stack.root / "tables"))
    monkeypatch.setenv("ARTIFACTS_DIR", str(stack.root / "artifacts-0"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.tracking_uri)
    runner = CliRunner()
    simulated = runner.invoke(cli, ["outcomes", "simulate", "--database-url", url])
    assert simulated.exit_code == 0, simulated.output
    assert "0 of training clients" in simulated.output
    out = tmp_path / "performance"
    reported = runner.invoke(
        cli, ["performance", "report", "--database-url", url, "--out-dir", str(out)]
    )
    assert reported.exit_code == 0, reported.output

    report = json.loads((out / "report.json").read_text())
    (version,) = report["model_versions"].values()
    overall = version["overall"]
    truth = pd.read_parquet(stack.root / "tables" / "application_test_target.parquet")
    granted = overall["granted"]
    assert overall["decisions"] == len(unseen) and overall["outcomes_known"] == granted
    assert overall["outcome_sources"] == {"simulated": granted}  # out of sample only
    assert overall["defaults"] >= 5, overall  # an AUC needs defaults (its interval says how many)
    assert 0 < overall["defaults"] < truth["TARGET"].sum()  # the refused took no loan
    assert version["reference_auc_source"] == "model card: out-of-fold, granted band"
    assert version["reference_auc"] == pytest.approx(stack.metrics["oof_auc_granted"])
    low, high = overall["auc_ci95"]
    assert low < overall["auc"] < high
    print(
        f"\n{len(unseen)} unseen clients, {granted} granted, {overall['defaults']} defaults: "
        f"realised AUC {overall['auc']:.4f} (95% {low:.3f}-{high:.3f}) vs the model card's "
        f"{version['reference_auc']:.4f} on the granted band (population "
        f"{version['training_auc']:.4f})"
    )
    assert abs(overall["auc"] - version["reference_auc"]) <= MARGIN
    assert (out / "performance.prom").is_file()


def test_exploration_share_grants_a_flagged_slice_of_refusals(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GATEWAY_EXPLORATION_SHARE (off by default): that share of would-be refusals, drawn
    from the decision id, is granted, flagged in the log, and reported apart."""
    from sqlalchemy import create_engine, select

    from services.gateway.decisions import ExplorationRow
    from services.gateway.service import explored
    from services.gateway.settings import GatewaySettings

    assert GatewaySettings(api_keys_file=None).exploration_share == 0.0
    share = 0.2  # the most the setting allows
    keys_file = tmp_path / "api-keys.json"
    key = write_keys(keys_file)["all"]
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    settings = settings_for(
        keys_file,
        url,
        stack.scoring_address,
        stack.explainer_address,
        scoring_deadline_seconds=60,
        exploration_share=share,
    )
    ids = stack.train_ids[:300]
    scores = []
    with running(settings) as client:
        grants_before = metric(client, "credit_exploration_grants_total")
        for start in range(0, len(ids), 100):
            answer = client.post(
                "/v1/scores/batch",
                headers={"X-API-Key": key},
                json={"client_ids": ids[start : start + 100]},
            )
            assert answer.status_code == 200, answer.text
            scores += [item["score"] for item in answer.json()["items"]]
        # What-ifs of refused clients until one draws an id the share would grant (a fifth
        # of them; 60 tries all missing it: 0.8**60, about 1e-6).
        refused_ids = [s["client_id"] for s in scores if s["probability"] >= s["threshold"]]
        what_ifs = []
        for client_id in itertools.islice(itertools.cycle(refused_ids), 60):
            what_ifs.append(
                client.post(
                    "/v1/scores",
                    headers={"X-API-Key": key},
                    json={"client_id": client_id, "simulation": True},
                ).json()
            )
            if explored(what_ifs[-1]["decision_id"], share):
                break
        grants = metric(client, "credit_exploration_grants_total") - grants_before
    above = [s for s in scores if s["probability"] >= s["threshold"]]
    granted_above = {s["decision_id"] for s in above if s["decision"] == "granted"}
    assert granted_above == {s["decision_id"] for s in above if explored(s["decision_id"], share)}
    assert 0 < len(granted_above) < len(above)  # about a fifth of the would-be refusals
    assert grants == len(granted_above)  # counted for the SREs, what-ifs never
    assert all(s["decision"] == "granted" for s in scores if s["probability"] < s["threshold"])
    assert explored(what_ifs[-1]["decision_id"], share)
    assert all(w["decision"] == "refused" for w in what_ifs)  # a what-if grants no loan
    engine = create_engine(url)
    with engine.connect() as connection:
        flagged = set(connection.execute(select(ExplorationRow.decision_id)).scalars())
    engine.dispose()
    assert flagged == granted_above

    monkeypatch.setenv("TABLES_DIR", str(stack.root / "tables"))
    monkeypatch.setenv("ARTIFACTS_DIR", str(stack.root / "artifacts-0"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.tracking_uri)
    runner = CliRunner()
    simulated = runner.invoke(
        cli, ["outcomes", "simulate", "--training-clients", "--database-url", url]
    )
    assert simulated.exit_code == 0, simulated.output
    out = tmp_path / "performance"
    reported = runner.invoke(
        cli, ["performance", "report", "--database-url", url, "--out-dir", str(out)]
    )
    assert reported.exit_code == 0, reported.output
    (version,) = json.loads((out / "report.json").read_text())["model_versions"].values()
    overall, exploration = version["overall"], version["overall"]["exploration"]
    assert exploration["decisions"] == exploration["outcomes_known"] == len(granted_above)
    assert exploration["share_of_refusals"] == pytest.approx(len(granted_above) / len(above))
    below = sum(s["probability"] < s["threshold"] for s in scores)
    assert overall["outcomes_known"] == below  # the policy's grants only
    assert overall["granted"] == below + len(granted_above)
    assert overall["outcome_sources"] == {"simulated-train": below}  # in sample, and says so
    assert "exploration:" in reported.output
