"""The realised-performance report: cohorts by decision month and model version, what-ifs
excluded, granted-only figures, archived decisions counted, the files and metrics it writes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import brier_score_loss, roc_auc_score
from sqlalchemy import create_engine, insert
from typer.testing import CliRunner

from credit.cli import app as cli
from services.gateway.decisions import SIDE_FIELDS, Base, Decision, DecisionRow, OutcomeRow
from training.performance import psi, read_log, run_performance

RNG = np.random.default_rng(7)


def make_decision(
    created_at: datetime, probability: float, version: str = "1", simulation: bool = False
) -> Decision:
    import uuid6

    return Decision(
        decision_id=str(uuid6.uuid7()),
        created_at=created_at,
        key_id="partner",
        client_id=100_001,
        application_hash=None,
        model_version=version,
        probability=probability,
        decision="granted" if probability < 0.1 else "refused",
        threshold=0.1,
        simulation=simulation,
        features={"numeric": {}, "categorical": {}},
    )


def write_log(url: str, decisions: list[Decision], outcomes: dict[str, bool]) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        if not decisions:
            return
        rows = [{k: v for k, v in vars(d).items() if k not in SIDE_FIELDS} for d in decisions]
        connection.execute(insert(DecisionRow), rows)
        connection.execute(
            insert(OutcomeRow),
            [
                {
                    "decision_id": k,
                    "defaulted": v,
                    "observed_at": date(2026, 11, 30),
                    "reported_at": datetime.now(UTC),
                    "key_id": "k",
                    "source": "import",
                }
                for k, v in outcomes.items()
            ],
        )
    engine.dispose()


@pytest.fixture
def scenario(tmp_path: Path) -> dict[str, Any]:
    """Two months of version 1 (granted and refused), a month of version 2, what-ifs with
    outcomes that must not count, and a training reference for version 1 only."""
    decisions, outcomes = [], {}
    months = {
        "2026-01": datetime(2026, 1, 15, tzinfo=UTC),
        "2026-02": datetime(2026, 2, 10, tzinfo=UTC),
    }
    for cohort, when in months.items():
        n = 300 if cohort == "2026-01" else 200
        probabilities = RNG.beta(1.2, 18, n)
        for p in probabilities:
            d = make_decision(when, float(p))
            decisions.append(d)
            outcomes[d.decision_id] = bool(RNG.random() < p)  # granted and refused alike
    for p in RNG.beta(1.2, 18, 100):
        d = make_decision(datetime(2026, 2, 20, tzinfo=UTC), float(p), version="2")
        decisions.append(d)
        outcomes[d.decision_id] = bool(RNG.random() < p)
    for _ in range(50):  # what-ifs, even given (impossible) outcomes, never count
        d = make_decision(datetime(2026, 1, 20, tzinfo=UTC), 0.05, simulation=True)
        decisions.append(d)
        outcomes[d.decision_id] = True
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    write_log(url, decisions, outcomes)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "metrics.json").write_text(json.dumps({"model_version": "1", "auc_mean": 0.77}))
    reference_p = RNG.beta(1.2, 18, 2000)
    reference = {"TARGET": (RNG.random(2000) < reference_p).astype(int), "prediction": reference_p}
    pd.DataFrame(reference).to_parquet(artifacts / "reference.parquet")
    real = [d for d in decisions if not d.simulation]
    return {"url": url, "artifacts": artifacts, "decisions": real, "outcomes": outcomes}


def expected(decisions: list[Decision], outcomes: dict[str, bool]) -> dict[str, Any]:
    granted = [d for d in decisions if d.decision == "granted"]
    y = np.array([outcomes[d.decision_id] for d in granted], dtype=float)
    p = np.array([d.probability for d in granted])
    return {
        "decisions": len(decisions),
        "granted": len(granted),
        "auc": roc_auc_score(y, p),
        "brier": brier_score_loss(y, p),
        "calibration_ratio": y.mean() / p.mean(),
        "outcomes_on_refused": len(decisions) - len(granted),
    }


def test_report_by_version_and_decision_month(scenario: dict[str, Any], tmp_path: Path):
    out = tmp_path / "performance"
    report = run_performance(
        scenario["url"], out, artifacts_dir=scenario["artifacts"], tracking_uri=None
    )
    assert report["simulations_excluded"] == 50
    assert list(report["model_versions"]) == ["1", "2"]
    v1 = report["model_versions"]["1"]
    assert list(v1["cohorts"]) == ["2026-01", "2026-02"]
    for cohort, month in (("2026-01", 1), ("2026-02", 2)):
        mine = [
            d
            for d in scenario["decisions"]
            if d.model_version == "1" and d.created_at.month == month
        ]
        want, got = expected(mine, scenario["outcomes"]), v1["cohorts"][cohort]
        assert got["decisions"] == want["decisions"] and got["granted"] == want["granted"]
        assert got["outcomes_known"] == want["granted"]  # refused outcomes kept apart
        assert got["outcomes_on_refused"] == want["outcomes_on_refused"] > 0
        everyone = [scenario["outcomes"][d.decision_id] for d in mine]
        assert got["auc_all_outcomes"] == pytest.approx(
            roc_auc_score(everyone, [d.probability for d in mine])
        )
        for name in ("auc", "brier", "calibration_ratio"):
            assert got[name] == pytest.approx(want[name]), name
        assert sum(b["outcomes"] for b in got["calibration"]) == got["outcomes_known"]
        assert all(b["high"] <= 0.1 for b in got["calibration"])  # granted: below threshold
    assert v1["overall"]["decisions"] == 500
    assert v1["training_auc"] == 0.77 and v1["reference_auc"] is not None
    assert v1["overall"]["psi"] is not None and v1["overall"]["psi"] < 0.1  # same population
    v2 = report["model_versions"]["2"]  # no reference known for it: no PSI, no training AUC
    assert v2["overall"]["decisions"] == 100 and v2["overall"]["psi"] is None
    assert v2["training_auc"] is None

    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["model_versions"]["1"]["cohorts"]["2026-02"]["decisions"] == 200
    page = (out / "report.html").read_text()
    assert "Selection bias" in page and "2026-02" in page and "evidently-v1.html" in page
    assert (out / "evidently-v1.html").stat().st_size > 10_000
    series = {
        (s.name, s.labels.get("model_version"), s.labels.get("cohort")): s.value
        for family in text_string_to_metric_families((out / "performance.prom").read_text())
        for s in family.samples
    }
    assert series[("credit_performance_auc", "1", "2026-01")] == pytest.approx(
        v1["cohorts"]["2026-01"]["auc"]
    )
    bounds = {
        s.labels["bound"]: s.value
        for family in text_string_to_metric_families((out / "performance.prom").read_text())
        for s in family.samples
        if s.name == "credit_performance_auc_ci95"
        and s.labels["model_version"] == "1"
        and s.labels["cohort"] == "2026-01"
    }
    assert bounds["low"] <= v1["cohorts"]["2026-01"]["auc"] <= bounds["high"]
    assert bounds == dict(zip(("low", "high"), v1["cohorts"]["2026-01"]["auc_ci95"], strict=True))
    assert series[("credit_performance_decisions", "1", "all")] == 500
    assert series[("credit_performance_training_auc", "1", None)] == 0.77
    assert ("credit_performance_psi", "2", "all") not in series  # unknown, not made up
    assert ("credit_performance_last_run_timestamp_seconds", None, None) in series


def test_archived_decisions_count(scenario: dict[str, Any], tmp_path: Path) -> None:
    from services.gateway.archive import archive_decisions

    archive_dir = tmp_path / "archive"
    engine = create_engine(scenario["url"])
    moved = archive_decisions(engine, archive_dir, datetime(2026, 2, 1, tzinfo=UTC), 100)
    engine.dispose()
    assert moved.decisions == 300 + 50  # January's, what-ifs included
    without = read_log(scenario["url"])
    with_archive = read_log(scenario["url"], archive_dir)
    assert set(without["cohort"]) == {"2026-02"}
    assert len(with_archive) == 600 and with_archive.attrs["simulations_excluded"] == 50
    assert with_archive["defaulted"].notna().sum() == 600  # outcomes survive the archive


def test_psi_reads_a_shift() -> None:
    reference = RNG.beta(1.2, 18, 5000)
    assert psi(RNG.beta(1.2, 18, 5000), reference) < 0.02
    assert psi(RNG.beta(3, 12, 5000), reference) > 0.25
    assert psi(np.array([]), reference) is None


def test_report_command_on_an_empty_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    write_log(url, [], {})
    result = CliRunner().invoke(
        cli, ["performance", "report", "--database-url", url, "--out-dir", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "no real decision" in result.output
    missing = CliRunner().invoke(
        cli, ["performance", "report", "--database-url", f"sqlite:///{tmp_path / 'none.db'}"]
    )
    assert missing.exit_code == 2 and "no decision log" in missing.output


def test_exploration_slice_reported_apart(tmp_path: Path) -> None:
    """Refusals granted by the exploration share: out of the policy's figures, shown apart
    with an inverse-probability-weighted AUC over every applicant."""
    from services.gateway.decisions import ExplorationRow

    when = datetime(2026, 3, 5, tzinfo=UTC)
    decisions, outcomes, explored = [], {}, []
    for p in RNG.beta(1.2, 18, 1000):
        d = make_decision(when, float(p))
        if d.decision == "refused" and RNG.random() < 0.25:  # explored: granted, flagged
            d = Decision(**{**vars(d), "decision": "granted"})
            explored.append(d.decision_id)
        decisions.append(d)
        if d.decision == "granted":
            outcomes[d.decision_id] = bool(RNG.random() < p)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    write_log(url, decisions, outcomes)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(ExplorationRow), [{"decision_id": i} for i in explored])
    engine.dispose()
    report = run_performance(url, tmp_path / "out", artifacts_dir=None, tracking_uri=None)
    overall = report["model_versions"]["1"]["overall"]
    policy = [d for d in decisions if d.probability < 0.1]
    assert overall["outcomes_known"] == len(policy)  # explorations are not the policy's
    assert overall["granted"] == len(policy) + len(explored)
    slice_ = overall["exploration"]
    refused = len(decisions) - len(policy) - len(explored)
    share = len(explored) / (len(explored) + refused)
    assert slice_["decisions"] == slice_["outcomes_known"] == len(explored)
    assert slice_["share_of_refusals"] == pytest.approx(share)
    both = policy + [d for d in decisions if d.decision_id in explored]
    weights = [1.0 if d.probability < 0.1 else 1 / share for d in both]
    assert slice_["auc_unbiased"] == pytest.approx(
        roc_auc_score(
            [outcomes[d.decision_id] for d in both],
            [d.probability for d in both],
            sample_weight=weights,
        )
    )
    low, high = overall["auc_ci95"]
    assert low < overall["auc"] < high
    assert "Exploration" in (tmp_path / "out" / "report.html").read_text()
