"""Champion/challenger: how a challenger scored in shadow compares with the champion.

The scoring service scores every request with the model holding the ``challenger`` alias
too (never returned to the partner); the gateway logs that shadow score beside the decision
(table ``shadow_scores``). ``challenger_report`` joins the two, per (champion version,
challenger version) pair, over real decisions (simulations excluded; archived decisions
count, their shadow scores stay in the table):

* agreement: the share of decisions the challenger would have made the same way, and the
  decisions that would flip, by direction (``granted->refused``, ``refused->review``, ...);
* probabilities: challenger minus champion (mean, mean and 95th percentile of the absolute
  difference, largest), and each model's approval rate;
* cost on outcomes where known: ``cost_fn`` per granted client who defaulted and
  ``cost_fp`` per refused client who repaid, each model deciding at its own threshold (a
  ``review`` counted on its side of the threshold). Outcomes exist almost only for loans the
  champion granted: the challenger's cost is measured on the champion's population, and
  what its own refusals would have saved or lost among the champion's refusals stays
  unknown (the report says how many outcomes each side rests on).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.performance import read_log

SHADOW_COLUMNS = ["decision_id", "model_version", "probability", "decision", "threshold"]


def read_shadow(database_url: str) -> pd.DataFrame:
    """Every logged shadow score (an empty frame when the log has none yet)."""
    from sqlalchemy import create_engine, inspect, select

    from services.gateway.decisions import ShadowRow

    engine = create_engine(database_url)
    try:
        if "shadow_scores" not in set(inspect(engine).get_table_names()):
            return pd.DataFrame(columns=SHADOW_COLUMNS)
        with engine.connect() as connection:
            rows = connection.execute(
                select(*[getattr(ShadowRow, c) for c in SHADOW_COLUMNS])
            ).all()
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=SHADOW_COLUMNS)


def _cost(frame: pd.DataFrame, probability: str, threshold: str, fn: float, fp: float) -> float:
    refused = frame[probability] >= frame[threshold]
    defaulted = frame["defaulted"].astype(bool)
    return float(fn * (~refused & defaulted).sum() + fp * (refused & ~defaulted).sum())


def _rate(values: pd.Series, of: str) -> float | None:
    return None if values.empty else float((values == of).mean())


def compare(frame: pd.DataFrame, cost_fn: float, cost_fp: float) -> dict[str, Any]:
    """The figures of one (champion, challenger) pair: ``frame`` holds the champion's
    ``probability``/``decision``/``threshold`` and the challenger's with a ``shadow_``
    prefix, and ``defaulted`` (NaN when unknown)."""
    agree = frame["decision"] == frame["shadow_decision"]
    difference = frame["shadow_probability"] - frame["probability"]
    flips = frame.loc[~agree, ["decision", "shadow_decision"]].value_counts().sort_index().items()
    labelled = frame[frame["defaulted"].notna()]
    champion_cost = _cost(labelled, "probability", "threshold", cost_fn, cost_fp)
    challenger_cost = _cost(labelled, "shadow_probability", "shadow_threshold", cost_fn, cost_fp)
    return {
        "decisions": len(frame),
        "agreement_rate": float(agree.mean()),
        "flips": {f"{a}->{b}": int(n) for (a, b), n in flips},
        "flipped": int((~agree).sum()),
        "probability_difference": {
            "mean": float(difference.mean()),
            "mean_abs": float(difference.abs().mean()),
            "p95_abs": float(np.quantile(difference.abs(), 0.95)),
            "max_abs": float(difference.abs().max()),
        },
        "approval_rate": {
            "champion": _rate(frame["decision"], "granted"),
            "challenger": _rate(frame["shadow_decision"], "granted"),
        },
        "review_rate": {
            "champion": _rate(frame["decision"], "review"),
            "challenger": _rate(frame["shadow_decision"], "review"),
        },
        "outcomes": {
            "known": len(labelled),
            "defaults": int(labelled["defaulted"].astype(bool).sum()),
            "on_champion_refusals": int((labelled["probability"] >= labelled["threshold"]).sum()),
            "cost_champion": champion_cost,
            "cost_challenger": challenger_cost,
            "cost_difference": challenger_cost - champion_cost,
        },
    }


def challenger_report(
    database_url: str,
    archive_dir: Path | None = None,
    challenger: str | None = None,
    cost_fn: float = 10.0,
    cost_fp: float = 1.0,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """The comparison per (champion, challenger) pair, over real decisions with a shadow
    score (``challenger``: that version only); written to ``out_dir/challenger.json``."""
    shadow = read_shadow(database_url)
    if shadow.empty:
        raise ValueError(
            "no shadow scores in the decision log: register a challenger (MLflow alias "
            "`challenger`) and let it score in shadow first"
        )
    shadow = shadow.rename(columns={c: f"shadow_{c}" for c in SHADOW_COLUMNS[1:]})
    shadow["shadow_model_version"] = shadow["shadow_model_version"].astype(str)
    if challenger is not None:
        shadow = shadow[shadow["shadow_model_version"] == str(challenger)]
        if shadow.empty:
            raise ValueError(f"no shadow scores of model version {challenger}")
    decisions = read_log(database_url, archive_dir)
    frame = decisions.merge(shadow, on="decision_id", how="inner")
    pairs: list[dict[str, Any]] = []
    for (champion, candidate), group in frame.groupby(
        ["model_version", "shadow_model_version"], sort=True
    ):
        pairs.append(
            {
                "champion": str(champion),
                "challenger": str(candidate),
                **compare(group, cost_fn, cost_fp),
            }
        )
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cost_false_negative": cost_fn,
        "cost_false_positive": cost_fp,
        "simulations_excluded": int(decisions.attrs.get("simulations_excluded", 0)),
        "pairs": pairs,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "challenger.json"
        path.write_text(json.dumps(report, indent=2))
        report["report_json"] = str(path)
    return report
