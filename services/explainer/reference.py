"""What the explainer learns from a version's reference sample: where its probabilities fall
(the score distribution, by outcome, with the threshold) and which way each feature pushes
the risk (the direction of the global importance).

The reference sample (``reference.parquet``, saved with the version's reports) is a random
sample of the training clients with their model inputs and outcome. Its probabilities:

- out of fold when training saved them (column ``oof_prediction``): each from the
  cross-validation model that was not fitted on that client, through the served calibrator;
  what the same clients would have been given as new applicants (honest);
- otherwise the served model's own, predicted once here: it was fitted on these clients, so
  they are in sample (defaulters look riskier, repayers safer, than new clients would).

Both computations run once per version (the handler caches them): a probability per client
(one ``predict`` of the sample) and the SHAP values of the sample (``pred_contrib``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from services.explainer.population import MIN_CELL, merge_bins
from serving_core.bundle import ScoringModel

OOF_COLUMN = "oof_prediction"
# Bin widths tried, widest first: the first giving at least MIN_BINS bins (after small cells
# are merged) is kept. Round widths keep the edges readable (0.02, 0.04...).
WIDTHS = (0.05, 0.025, 0.02, 0.01, 0.005, 0.0025, 0.002, 0.001)
MIN_BINS, MAX_BINS = 20, 50
# |Spearman rho| below this: no single direction (raises for some clients, lowers for others).
DIRECTION_RHO = 0.3
MIN_DIRECTION_VALUES = 30  # fewer clients with a value: too few to tell a direction
# SHAP values of this many clients of the sample at most (its first rows: it is a random
# sample already): a rank correlation over 2,000 is stable to ~0.02, and pred_contrib of a
# full-mode model (thousands of trees) over all 5,000 would hold a first request for seconds.
DIRECTION_ROWS = 2_000
Direction = Literal["raises", "lowers", "mixed"]


@dataclass(frozen=True)
class Bin:
    lower: float
    upper: float
    repaid: int
    defaulted: int
    hidden: int = 0  # clients counted whose outcome is not shown (a side under min_cell)


@dataclass(frozen=True)
class ScoreDistribution:
    model_version: str
    threshold: float
    n: int
    source: str
    bins: list[Bin]
    out_of_fold: bool
    min_cell: int = MIN_CELL


def load_reference(reports: Path) -> pd.DataFrame:
    return pd.read_parquet(reports / "reference.parquet")


def probabilities(reference: pd.DataFrame, model: ScoringModel) -> tuple[np.ndarray, bool]:
    """The sample's calibrated probabilities of default and whether they are out of fold."""
    if OOF_COLUMN in reference.columns and reference[OOF_COLUMN].notna().all():
        return reference[OOF_COLUMN].to_numpy(dtype=np.float64), True
    return np.asarray(model.predict_proba(reference), dtype=np.float64), False


def source_text(n: int, out_of_fold: bool) -> str:
    clients = f"the explainer's reference sample: {n:,} training clients drawn at random"
    if out_of_fold:
        return (
            f"{clients}, each with the probability of default an out-of-fold model gave them "
            "(a cross-validation model not fitted on that client), calibrated as the API's "
            "probabilities are: what they would have been given as new applicants"
        )
    return (
        f"{clients}, each with the served model's probability of default; the model was "
        "fitted on these clients (in sample), so defaulters look riskier and repayers safer "
        "than new applicants would"
    )


def _histogram(
    p: np.ndarray, defaulted: np.ndarray, edges: np.ndarray
) -> tuple[list[int], list[int]]:
    # right-open bins, the last one closed: what np.histogram does
    repaid = np.histogram(p[~defaulted], bins=edges)[0]
    bad = np.histogram(p[defaulted], bins=edges)[0]
    return [int(v) for v in repaid], [int(v) for v in bad]


def _bins(
    p: np.ndarray, defaulted: np.ndarray, threshold: float, width: float, minimum: int
) -> list[Bin]:
    """Bins of ``width`` from 0 past the largest probability, with the threshold as an extra
    edge; small non-empty cells merged with a neighbour on their own side of the threshold
    (``population.merge_bins``), so no bin straddles it and none tells one client's outcome."""
    top = max(float(p.max()), threshold)
    steps = max(1, math.ceil(top / width - 1e-9))  # the last bin is closed: p == upper fits
    # Never under the largest probability (a rounding of steps * width could be).
    upper = max(min(1.0, round(steps * width, 10)), top)
    grid = [round(i * width, 10) for i in range(steps)] + [upper]
    sides = [grid]
    if 0.0 < threshold < upper:
        below = [e for e in grid if e < threshold] + [threshold]
        sides = [below, [threshold] + [e for e in grid if e > threshold]]
    bins: list[Bin] = []
    for edges in sides:
        if len(edges) < 2:
            continue
        repaid, bad = _histogram(p, defaulted, np.asarray(edges))
        if edges is not sides[-1]:  # np.histogram closes its last bin: keep p == edge out
            at_edge = p == edges[-1]
            repaid[-1] -= int((at_edge & ~defaulted).sum())
            bad[-1] -= int((at_edge & defaulted).sum())
        merged_edges, repaid, bad, hidden = merge_bins(list(edges), repaid, bad, minimum)
        bins.extend(
            Bin(
                lower=float(merged_edges[i]),
                upper=float(merged_edges[i + 1]),
                repaid=r,
                defaulted=d,
                hidden=h,
            )
            for i, (r, d, h) in enumerate(zip(repaid, bad, hidden, strict=True))
        )
    return bins


def score_distribution(
    model: ScoringModel, reference: pd.DataFrame, minimum: int = MIN_CELL
) -> ScoreDistribution:
    p, out_of_fold = probabilities(reference, model)
    defaulted = reference["TARGET"].to_numpy().astype(bool)
    chosen: list[Bin] = []
    for width in WIDTHS:
        previous, chosen = chosen, _bins(p, defaulted, model.threshold, width, minimum)
        if len(chosen) >= MIN_BINS:
            if len(chosen) > MAX_BINS and previous:  # each width is at most 2.5x the next
                chosen = previous
            break
    return ScoreDistribution(
        model_version=model.model_version,
        threshold=model.threshold,
        n=len(p),
        source=source_text(len(p), out_of_fold),
        bins=chosen,
        out_of_fold=out_of_fold,
        min_cell=minimum,
    )


def _ranks(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(method="average").to_numpy(dtype=np.float64)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (Pearson's of the average ranks); NaN when either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / scale) if scale > 0 else math.nan


def directions(model: ScoringModel, reference: pd.DataFrame) -> dict[str, Direction]:
    """Per feature, what higher values do to the risk: the sign of the Spearman correlation
    between its value and its SHAP value over the sample's clients that have a value;
    "mixed" under |rho| < DIRECTION_RHO, for a categorical feature (its categories have no
    order) and with too few values to tell."""
    matrix = model.model_input(reference.head(DIRECTION_ROWS))
    contributions = np.asarray(
        model.booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64
    )
    found: dict[str, Direction] = {}
    for j, spec in enumerate(model.schema["features"]):
        name = spec["name"]
        if spec["dtype"] == "category":
            found[name] = "mixed"
            continue
        values = matrix[name].to_numpy(dtype=np.float64)
        present = ~np.isnan(values)
        if present.sum() < MIN_DIRECTION_VALUES:
            found[name] = "mixed"
            continue
        rho = spearman(values[present], contributions[present, j])
        if math.isnan(rho) or abs(rho) < DIRECTION_RHO:
            found[name] = "mixed"
        else:
            found[name] = "raises" if rho > 0 else "lowers"
    return found
