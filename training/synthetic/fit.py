"""Fit the compact statistics the synthetic generator samples from (a maintainer tool).

Run once, by hand, on the real linked sample::

    python -m training.synthetic.fit ../shared/data/home-credit

It writes ``serving_core/reference/synthetic_stats.json.gz``. The real rows never leave the
sample folder: only marginals, correlations and count distributions are stored, and the
generator reads nothing but that file.

What is stored, per table:

* per column: the missing rate and a marginal, either discrete (value -> probability, for
  categories and columns with few distinct values) or continuous (a quantile grid, plus the
  share of Kaggle's ``365243`` day sentinel, which sits at the top of the rank order);
* a Gaussian copula: the correlation of the columns' normal scores. Missing values take
  the lowest rank, so columns that are missing together (the building ``*_AVG/_MODE/_MEDI``
  block) stay missing together. Categories are ranked along the first principal axis of
  their per-category means of the numeric normal scores, so a category that goes with a
  numeric extreme (Pensioner with the DAYS_EMPLOYED sentinel) sits at that extreme;
  columns that carry the history-risk factor have a fixed, meaningful order instead
  (``Refused`` at the top of NAME_CONTRACT_STATUS);
* how many child rows a parent has (per-client counts, with the zeros, so the share of
  clients without rows in a table comes out right), and for the monthly tables the chance
  that a previous application has a monthly history and its length.

installments_payments is only a random sample of real rows (1,369 of ~400k), far too few
for per-client counts. Its statistics are therefore only per-row marginals of the payment
delay (DAYS_ENTRY_PAYMENT - DAYS_INSTALMENT), the paid share (AMT_PAYMENT /
AMT_INSTALMENT), AMT_INSTALMENT and NUM_INSTALMENT_VERSION. Its row counts come from the
structure of the other tables instead: the generator writes one instalment per POS_CASH
month of a consumer/cash loan and one per second month of a credit card, and splits some
instalments into two payments (see ``generate.INSTALMENT_*``). On the Kaggle data that gives
about the real 13.6 M rows.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from scipy.stats import rankdata

from serving_core.schema import DAYS_SENTINEL, DAYS_SENTINEL_COLUMNS, find_table_file, kaggle_schema
from training.synthetic.generate import STATS_PATH

STATS_VERSION = 1

# Columns with at most this many distinct values get a value -> probability marginal.
MAX_DISCRETE_VALUES = 50
QUANTILE_POINTS = 201
# Months-per-parent and children-per-client distributions are cut here (longer tails are rare
# and would only bloat the file).
MAX_COUNT = 120
# Categories whose rank order must mean "riskier is higher": the generator shifts these
# columns' latent value with the client's history-risk factor. Unlisted categories go last.
RISK_ORDER: dict[tuple[str, str], list[str]] = {
    ("previous_application", "NAME_CONTRACT_STATUS"): [
        "Approved",
        "Unused offer",
        "Canceled",
        "Refused",
    ],
    ("bureau", "CREDIT_ACTIVE"): ["Closed", "Active", "Sold"],
    ("credit_card_balance", "NAME_CONTRACT_STATUS"): [
        "Completed",
        "Active",
        "Signed",
        "Sent proposal",
        "Refused",
    ],
}
# Tables whose rows are built structurally (month sequences), not from a row copula.
NO_COPULA = ("bureau_balance", "installments_payments")
APP = "application_train"


def _decimals(x: np.ndarray) -> int:
    """Fewest decimals (<= 6) that reproduce the values, so output looks like the source."""
    for d in range(7):
        if np.allclose(x, np.round(x, d), rtol=0, atol=1e-9):
            return d
    return 6


def _round_sig(x: np.ndarray, sig: int = 7) -> list[float]:
    return [float(f"{v:.{sig}g}") for v in x]


def fit_marginal(s: pd.Series, kind: str, sentinel: bool, order: list[str] | None) -> dict:
    """Missing rate plus a discrete or continuous marginal of one column."""
    miss = float(s.isna().mean())
    x = s.dropna()
    out: dict[str, Any] = {"missing": round(miss, 6)}
    if kind == "category" or (x.nunique() <= MAX_DISCRETE_VALUES and not sentinel):
        freq = x.value_counts(normalize=True)
        if kind == "category":
            values = order if order is not None else sorted(freq.index)
            out["values"] = list(values)
        else:
            values = sorted(freq.index)
            out["values"] = [v.item() if hasattr(v, "item") else v for v in values]
        out["probs"] = _round_sig(freq.reindex(values).fillna(0.0).to_numpy(), 6)
        return out
    xv = x.to_numpy(dtype=float)
    if sentinel:
        is_s = xv == DAYS_SENTINEL
        out["sentinel"] = round(float(is_s.mean()), 6)
        xv = xv[~is_s]
    out["quantiles"] = _round_sig(np.quantile(xv, np.linspace(0, 1, QUANTILE_POINTS)))
    out["decimals"] = 0 if kind == "int" else _decimals(xv)
    return out


def _normal_scores(v: np.ndarray) -> np.ndarray:
    """Rank-based normal scores; NaN ranks lowest (so missingness is part of the copula)."""
    filled = np.where(np.isnan(v), -np.inf, v)
    r = rankdata(filled, method="average")
    return ndtri((r - 0.5) / len(r))


def _category_order(codes: pd.Series, numeric_z: np.ndarray) -> list[str]:
    """Order categories along the first principal axis of their mean numeric normal scores."""
    cats = codes.dropna().unique()
    if numeric_z.shape[1] == 0 or len(cats) < 3:
        # two categories: any order is as good, the copula sign takes care of it
        return sorted(cats)
    frame = pd.DataFrame(numeric_z).groupby(codes.to_numpy(), dropna=True)
    means, weights = frame.mean(), frame.size().to_numpy(dtype=float)
    centred = (means - np.average(means, axis=0, weights=weights)).to_numpy()
    _, _, vt = np.linalg.svd(centred * np.sqrt(weights)[:, None], full_matrices=False)
    score = pd.Series(centred @ vt[0], index=means.index)
    return list(score.sort_values().index)


def _nearest_correlation(c: np.ndarray) -> np.ndarray:
    """Clip to positive definite and back to unit diagonal, so Cholesky always works."""
    c = np.nan_to_num((c + c.T) / 2)
    np.fill_diagonal(c, 1.0)
    w, v = np.linalg.eigh(c)
    c = (v * np.clip(w, 1e-3, None)) @ v.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


def fit_table(df: pd.DataFrame, table: str, schema_table: Any) -> tuple[dict, np.ndarray]:
    """Marginals and copula of one table; also returns the normal-score matrix."""
    sentinel_cols = set(DAYS_SENTINEL_COLUMNS.get(table, ()))
    cols = [c for c in schema_table.columns if c.kind != "id" and c.name != "TARGET"]
    numeric = [c.name for c in cols if c.kind != "category"]
    z_num = np.column_stack([_normal_scores(df[n].to_numpy(dtype=float)) for n in numeric])
    marginals, z_cols = {}, []
    for c in cols:
        order = None
        if c.kind == "category":
            order = RISK_ORDER.get((table, c.name))
            if order is None:
                order = _category_order(df[c.name], z_num)
            order = order + sorted(set(c.categories) - set(order))
            marginals[c.name] = fit_marginal(df[c.name], c.kind, False, order)
            code = df[c.name].map({v: i for i, v in enumerate(order)}).to_numpy(dtype=float)
            z_cols.append(_normal_scores(code))
        else:
            marginals[c.name] = fit_marginal(df[c.name], c.kind, c.name in sentinel_cols, None)
            z_cols.append(z_num[:, numeric.index(c.name)])
    z = np.column_stack(z_cols)
    out: dict[str, Any] = {"columns": marginals}
    if table not in NO_COPULA:
        with np.errstate(invalid="ignore", divide="ignore"):  # constant columns: NaN -> 0
            corr = _nearest_correlation(np.corrcoef(z, rowvar=False))
        iu = np.triu_indices(len(cols), 1)
        out["copula"] = {
            "columns": [c.name for c in cols],
            "upper": [round(float(v), 4) for v in corr[iu]],
        }
    return out, z


def _pmf(counts: pd.Series | np.ndarray) -> dict[str, list]:
    n = np.clip(np.asarray(counts, dtype=int), 0, MAX_COUNT)
    p = np.bincount(n, minlength=1) / len(n)
    keep = np.nonzero(p)[0]
    return {"values": keep.tolist(), "probs": _round_sig(p[keep], 6)}


def fit_target(train: pd.DataFrame, z_train: np.ndarray, ridge: float = 0.5) -> dict:
    """Latent-space ridge weights of TARGET on the application columns.

    The generator turns ``z @ weights`` into the applicant part of the default latent, so
    the columns that predict default in the real data (EXT_SOURCE_*, age, ...) do so in the
    synthetic data too.
    """
    t = _normal_scores(train["TARGET"].to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):  # constant columns: NaN -> 0
        full = np.nan_to_num(np.corrcoef(np.column_stack([z_train, t]), rowvar=False))
    rxx, rxt = full[:-1, :-1], full[:-1, -1]
    w = np.linalg.solve(rxx + ridge * np.eye(len(rxx)), rxt)
    return {"rate": round(float(train["TARGET"].mean()), 6), "weights": _round_sig(w, 5)}


def fit(sample: Path) -> dict:
    schema = kaggle_schema()
    raw = {t: pd.read_csv(find_table_file(sample, t)) for t in schema}
    train, test = raw["application_train"], raw["application_test"]
    apps = pd.concat([train.drop(columns="TARGET"), test], ignore_index=True)
    clients = apps["SK_ID_CURR"]
    train_ids = set(train["SK_ID_CURR"])

    stats: dict[str, Any] = {"version": STATS_VERSION, "tables": {}, "structure": {}}
    app_stats, z_app = fit_table(apps, APP, schema["application_test"])
    stats["tables"]["application"] = app_stats
    stats["target"] = fit_target(train, z_app[: len(train)])
    for table in schema:
        if table not in ("application_train", "application_test"):
            stats["tables"][table], _ = fit_table(raw[table], table, schema[table])

    def per_client(table: str) -> pd.Series:
        return raw[table].groupby("SK_ID_CURR").size().reindex(clients, fill_value=0)

    bureau, bb, prev = raw["bureau"], raw["bureau_balance"], raw["previous_application"]
    pos, cc = raw["POS_CASH_balance"], raw["credit_card_balance"]
    has_bb = bureau["SK_ID_BUREAU"].isin(bb["SK_ID_BUREAU"])
    in_train = bureau["SK_ID_CURR"].isin(train_ids)
    status = bb["STATUS"][bb["STATUS"] != "C"]
    # Only approved consumer/cash loans have POS months, only approved cards have card months.
    kind = prev["NAME_CONTRACT_TYPE"] + "|" + prev["NAME_CONTRACT_STATUS"]
    eligible = {
        "POS_CASH_balance": ["Cash loans|Approved", "Consumer loans|Approved"],
        "credit_card_balance": ["Revolving loans|Approved"],
    }
    structure: dict[str, Any] = {
        "bureau_per_client": _pmf(per_client("bureau")),
        "previous_per_client": _pmf(per_client("previous_application")),
        # Kaggle's bureau_balance covers far fewer bureau records of train clients than of
        # test clients; keeping both rates keeps the full-size total right.
        "bureau_balance_share": {
            "train": round(float(has_bb[in_train].mean()), 6),
            "test": round(float(has_bb[~in_train].mean()), 6),
        },
        "bureau_balance_months": _pmf(bb.groupby("SK_ID_BUREAU").size()),
        "bureau_balance_status": {
            "values": ["X", "0", "1", "2", "3", "4", "5"],
            "probs": _round_sig(
                status.value_counts(normalize=True)
                .reindex(["X", "0", "1", "2", "3", "4", "5"])
                .fillna(0)
                .to_numpy(),
                6,
            ),
        },
    }
    for table, kinds in eligible.items():
        elig = kind.isin(kinds)
        months = raw[table].groupby("SK_ID_PREV").size()
        # Chance that an eligible application has a history, set so that rows per client
        # match the real ones (the real table also holds histories whose application is
        # missing from previous_application, which the generator does not make).
        share = len(raw[table]) / max(1.0, float(elig.sum()) * float(months.mean()))
        structure[table] = {
            "eligible": kinds,
            "share": round(min(1.0, share), 6),
            "months": _pmf(months),
        }
    structure["POS_CASH_balance"]["completed_share"] = round(
        float((pos["NAME_CONTRACT_STATUS"] == "Completed").mean()), 6
    )
    structure["credit_card_balance"]["clients_share"] = round(
        float(cc["SK_ID_CURR"].nunique() / len(clients)), 6
    )
    inst = raw["installments_payments"]
    delay = inst["DAYS_ENTRY_PAYMENT"] - inst["DAYS_INSTALMENT"]
    paid = inst["AMT_PAYMENT"] / inst["AMT_INSTALMENT"].replace(0, np.nan)
    structure["installments"] = {
        "delay": fit_marginal(delay, "int", False, None),
        "paid_share": fit_marginal(paid.clip(0, 3), "float", False, None),
    }
    stats["structure"] = structure
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample", type=Path, help="folder with the real Home Credit sample")
    parser.add_argument("--out", type=Path, default=STATS_PATH)
    args = parser.parse_args(argv)
    stats = fit(args.sample)
    payload = json.dumps(stats, separators=(",", ":")).encode()
    # mtime=0 keeps the file byte-identical across refits of the same sample
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(payload)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
