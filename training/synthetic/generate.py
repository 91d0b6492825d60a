"""Generate Kaggle-format Home Credit tables from the shipped statistics.

The generator never reads real data: it samples from ``reference/synthetic_stats.json.gz``
(see ``fit.py``). Clients are built in chunks, so memory stays bounded at any size; every
chunk draws from its own random stream (seeded with ``(seed, chunk index)``), so a run is
reproducible for a given ``(n_clients, seed, chunk_clients)``.

How default is made to depend on the whole file of a client:

* every client gets a latent history-risk factor ``h ~ N(0, 1)``. It shifts the copula
  latents of the "bad history" columns of all their child rows (overdue amounts in bureau,
  bad STATUS months in bureau_balance, refusals in previous_application, days past due in
  POS_CASH and credit cards, card balances and drawings, late and partial instalment
  payments). A shifted latent ``(z + k h) / sqrt(1 + k^2)`` is still N(0, 1), so the
  marginals stay as fitted while riskier clients sit higher in them;
* the applicant part is ``z_app @ w`` with ``w`` the real data's latent-space regression of
  TARGET on the application columns (EXT_SOURCE_*, age, ... matter as in Kaggle);
* ``TARGET = 1`` when ``APP_WEIGHT * applicant + HISTORY_WEIGHT * h + noise`` is in its top
  ``rate`` share (rate fitted: about 8 %).

Test applicants get a TARGET drawn the same way; like Kaggle, ``application_test`` has no
TARGET column, but the truth is written apart to ``HELDOUT_FILE`` (SK_ID_CURR, TARGET): what
a lender would observe later about clients the model never trained on. Training never reads
it; ``credit outcomes simulate`` labels decisions with it (out-of-sample outcomes).
"""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from scipy.special import ndtr, ndtri

from serving_core.ranges import STATS as STATS_PATH
from serving_core.schema import DAYS_SENTINEL, TABLE_NAMES, kaggle_schema

DAYS_PER_MONTH = 30.4375
# Kaggle's train/test split (rows of application_train : application_test).
KAGGLE_TRAIN, KAGGLE_TEST = 307_511, 48_744
# Kaggle-like id ranges: SK_ID_CURR 100002.., SK_ID_BUREAU 5000000.., SK_ID_PREV 1000001..
FIRST_CURR, FIRST_BUREAU, FIRST_PREV = 100_001, 5_000_000, 1_000_001

# Weights of the default latent; with these the application-only model reaches an AUC of
# about 0.7 and the history adds a few points, as on the real data.
APP_WEIGHT, HISTORY_WEIGHT = 0.55, 0.38
# Loadings of the history factor on columns' latents (higher latent = higher value, or the
# later category in the fitted order, e.g. "Refused").
RISK_LOADINGS: dict[str, dict[str, float]] = {
    "bureau": {
        "CREDIT_DAY_OVERDUE": 0.9,
        "AMT_CREDIT_MAX_OVERDUE": 0.7,
        "AMT_CREDIT_SUM_OVERDUE": 0.9,
        "CNT_CREDIT_PROLONG": 0.5,
        "AMT_CREDIT_SUM_DEBT": 0.4,
        "CREDIT_ACTIVE": 0.4,
        "DAYS_CREDIT": 0.3,
    },
    "previous_application": {"NAME_CONTRACT_STATUS": 0.7, "DAYS_DECISION": 0.2},
    "POS_CASH_balance": {"SK_DPD": 1.0, "SK_DPD_DEF": 1.0},
    "credit_card_balance": {
        "AMT_BALANCE": 0.5,
        "AMT_RECEIVABLE_PRINCIPAL": 0.5,
        "AMT_RECIVABLE": 0.5,
        "AMT_TOTAL_RECEIVABLE": 0.5,
        "AMT_DRAWINGS_CURRENT": 0.4,
        "AMT_DRAWINGS_ATM_CURRENT": 0.4,
        "CNT_DRAWINGS_ATM_CURRENT": 0.4,
        "SK_DPD": 0.8,
        "SK_DPD_DEF": 0.8,
    },
}
STATUS_LOADING = 0.8  # bureau_balance: pushes months from 0/X towards 1..5 days-past-due
DELAY_LOADING = 0.8  # installments: later payments
PAID_LOADING = 0.6  # installments: smaller paid share
# Monthly tables: share of a row's latent variance that is the contract's own (persistent)
# effect; the rest is month-to-month noise.
PERSISTENCE = 0.6
# installments_payments has no real per-client counts (see fit.py): one instalment per
# POS_CASH month, one per second credit-card month, and this share paid in two parts.
INSTALMENT_CARD_EVERY = 2
INSTALMENT_SPLIT = 0.12
# The test applicants' truth (SK_ID_CURR, TARGET), written next to the tables; no Kaggle table.
HELDOUT_FILE = "application_test_target.csv"  # training.loader.HELDOUT_TARGET
SHORT = dict(
    zip(TABLE_NAMES, ("train", "test", "bur", "bb", "prev", "pos", "inst", "cc"), strict=True)
)


@cache
def load_stats(path: Path = STATS_PATH) -> dict[str, Any]:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


class Marginal:
    """Inverse CDF of a fitted marginal; missing is the lowest slice of (0, 1)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.missing = float(spec["missing"])
        self.values = spec.get("values")
        if self.values is not None:
            p = np.asarray(spec["probs"], dtype=float)
            self.cum = np.cumsum(p) / p.sum()
            self.numeric = np.asarray(
                [v if isinstance(v, int | float) else np.nan for v in self.values], dtype=float
            )
        else:
            self.quantiles = np.asarray(spec["quantiles"], dtype=float)
            self.grid = np.linspace(0, 1, len(self.quantiles))
            self.sentinel = float(spec.get("sentinel", 0.0))
            self.decimals = int(spec["decimals"])

    def _v(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        miss = u < self.missing
        v = np.clip((u - self.missing) / max(1e-12, 1 - self.missing), 0, 1 - 1e-12)
        return miss, v

    def codes(self, u: np.ndarray) -> np.ndarray:
        """Index into ``values`` (categories), -1 where missing."""
        miss, v = self._v(u)
        idx = np.minimum(np.searchsorted(self.cum, v, side="right"), len(self.cum) - 1)
        return np.where(miss, -1, idx)

    def numbers(self, u: np.ndarray) -> np.ndarray:
        """Float values, NaN where missing."""
        miss, v = self._v(u)
        if self.values is not None:
            idx = np.minimum(np.searchsorted(self.cum, v, side="right"), len(self.cum) - 1)
            x = self.numeric[idx]
        else:
            keep = 1 - self.sentinel
            x = np.round(np.interp(v / keep, self.grid, self.quantiles), self.decimals)
            if self.sentinel:
                x[v >= keep] = DAYS_SENTINEL
        x[miss] = np.nan
        return x


def draw_counts(pmf: dict[str, list], u: np.ndarray) -> np.ndarray:
    cum = np.cumsum(pmf["probs"])
    idx = np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(cum) - 1)
    return np.asarray(pmf["values"], dtype=np.int64)[idx]


@dataclass
class TableModel:
    """Copula and marginals of one table's value columns."""

    columns: list[str]
    marginals: dict[str, Marginal]
    chol: np.ndarray | None

    @classmethod
    def from_stats(cls, spec: dict[str, Any]) -> TableModel:
        marginals = {c: Marginal(m) for c, m in spec["columns"].items()}
        chol = None
        if "copula" in spec:
            cols = spec["copula"]["columns"]
            k = len(cols)
            corr = np.eye(k)
            corr[np.triu_indices(k, 1)] = spec["copula"]["upper"]
            corr = np.triu(corr, 1) + np.triu(corr, 1).T + np.eye(k)
            w, v = np.linalg.eigh(corr)  # the rounding of the stored values may break PD
            corr = (v * np.clip(w, 1e-4, None)) @ v.T
            d = np.sqrt(np.diag(corr))
            chol = np.linalg.cholesky(corr / np.outer(d, d))
            return cls(cols, marginals, chol)
        return cls(list(marginals), marginals, chol)

    def latent(self, rng: np.random.Generator, n: int) -> np.ndarray:
        assert self.chol is not None
        return rng.standard_normal((n, len(self.columns))) @ self.chol.T

    def load(self, z: np.ndarray, loadings: dict[str, float], h: np.ndarray) -> None:
        """Shift the risk columns' latents by the history factor, in place, keeping N(0, 1)."""
        for col, k in loadings.items():
            j = self.columns.index(col)
            z[:, j] = (z[:, j] + k * h) / np.sqrt(1 + k * k)

    def values(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Column arrays: floats (NaN missing) or category codes (-1 missing)."""
        u = ndtr(z)
        out = {}
        for j, col in enumerate(self.columns):
            m = self.marginals[col]
            is_cat = m.values is not None and np.isnan(m.numeric).all()
            out[col] = m.codes(u[:, j]) if is_cat else m.numbers(u[:, j])
        return out


@dataclass
class Models:
    stats: dict[str, Any]
    tables: dict[str, TableModel]
    target_w: np.ndarray
    target_scale: float


@cache
def _models() -> Models:
    stats = load_stats()
    tables = {name: TableModel.from_stats(spec) for name, spec in stats["tables"].items()}
    app = tables["application"]
    assert app.chol is not None
    w = np.asarray(stats["target"]["weights"])
    # standard deviation of z @ w under the copula correlation
    scale = float(np.linalg.norm(app.chol.T @ w))
    return Models(stats, tables, w, scale)


def _positions(counts: np.ndarray) -> np.ndarray:
    """0..n-1 within each group of a repeated index (rows of one parent)."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def _month_latent(
    rng: np.random.Generator, model: TableModel, parent: np.ndarray, n_parents: int
) -> np.ndarray:
    """Row latents = persistent per-contract effect + monthly noise (both copula draws)."""
    z_parent = model.latent(rng, n_parents)[parent]
    return np.sqrt(PERSISTENCE) * z_parent + np.sqrt(1 - PERSISTENCE) * model.latent(
        rng, len(parent)
    )


def _month_span(start_days: np.ndarray, n: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Months of each contract's history: from its start month on, shifted so it ends <= last."""
    start = np.floor(np.nan_to_num(start_days, nan=-DAYS_PER_MONTH) / DAYS_PER_MONTH)
    end = np.minimum(start + n - 1, last).astype(np.int64)
    return end - n + 1, end


def _arrow_table(table: str, cols: dict[str, Any], stats_cols: dict[str, Any]) -> pa.Table:
    """Kaggle column order and kinds: ints without decimals, missing as null."""
    arrays = []
    for col in kaggle_schema()[table].columns:
        x = cols[col.name]
        if col.kind == "category":
            spec = stats_cols[col.name]
            values = pa.array(spec["values"], type=pa.string())
            x = np.asarray(x)
            # train and test share fitted statistics but not category sets (test has no
            # "Businessman", ...): such rare values become the table's most common category
            allowed = np.isin(spec["values"], col.categories)
            if not allowed.all():
                common = int(np.argmax(np.where(allowed, spec["probs"], -1.0)))
                x = np.where((x >= 0) & ~allowed[np.maximum(x, 0)], common, x)
            arrays.append(pc.take(values, pa.array(x, mask=x < 0, type=pa.int32())))
        elif col.kind in ("id", "int"):
            x = np.asarray(x)
            if x.dtype.kind == "f":
                arrays.append(pa.array(np.nan_to_num(x).astype(np.int64), mask=np.isnan(x)))
            else:
                arrays.append(pa.array(x.astype(np.int64)))
        else:
            arrays.append(pa.array(np.asarray(x, dtype=np.float64), from_pandas=True))
    return pa.Table.from_arrays(arrays, names=kaggle_schema()[table].column_names)


def _fix_applications(v: dict[str, np.ndarray], m: TableModel) -> None:
    """Rules the copula only approximates: the DAYS_EMPLOYED sentinel means a pensioner."""
    sentinel = v["DAYS_EMPLOYED"] == DAYS_SENTINEL
    income = m.marginals["NAME_INCOME_TYPE"].values
    org = m.marginals["ORGANIZATION_TYPE"].values
    assert income is not None and org is not None
    pensioner, working = income.index("Pensioner"), income.index("Working")
    xna, business = org.index("XNA"), org.index("Business Entity Type 3")
    income_code = v["NAME_INCOME_TYPE"]
    v["NAME_INCOME_TYPE"] = np.where(
        sentinel, pensioner, np.where(income_code == pensioner, working, income_code)
    )
    v["ORGANIZATION_TYPE"] = np.where(
        sentinel, xna, np.where(v["ORGANIZATION_TYPE"] == xna, business, v["ORGANIZATION_TYPE"])
    )
    v["FLAG_EMP_PHONE"] = np.where(sentinel, 0.0, v["FLAG_EMP_PHONE"])


def _chunk(
    rng: np.random.Generator, curr_ids: np.ndarray, is_test: np.ndarray, next_ids: dict[str, int]
) -> dict[str, pa.Table]:
    """All eight tables for one chunk of clients."""
    mods = _models()
    st, T = mods.stats["structure"], mods.tables
    n = len(curr_ids)
    out: dict[str, pa.Table] = {}

    # --- applications and TARGET -------------------------------------------------------
    app = T["application"]
    z = app.latent(rng, n)
    h = rng.standard_normal(n)
    applicant = z @ mods.target_w / mods.target_scale
    noise_w = np.sqrt(max(0.0, 1 - APP_WEIGHT**2 - HISTORY_WEIGHT**2))
    default = APP_WEIGHT * applicant + HISTORY_WEIGHT * h + noise_w * rng.standard_normal(n)
    target = (default > ndtri(1 - mods.stats["target"]["rate"])).astype(np.int64)
    v = app.values(z)
    _fix_applications(v, app)
    v["SK_ID_CURR"], v["TARGET"] = curr_ids, target
    for name, rows in (("application_train", ~is_test), ("application_test", is_test)):
        sub = {c: x[rows] for c, x in v.items()}
        out[name] = _arrow_table(name, sub, app_specs())
    out[HELDOUT_FILE] = pa.table({"SK_ID_CURR": curr_ids[is_test], "TARGET": target[is_test]})

    # --- bureau and bureau_balance --------------------------------------------------------
    bm = T["bureau"]
    owner = np.repeat(np.arange(n), draw_counts(st["bureau_per_client"], rng.random(n)))
    zb = bm.latent(rng, len(owner))
    bm.load(zb, RISK_LOADINGS["bureau"], h[owner])
    b = bm.values(zb)
    active = np.asarray(bm.marginals["CREDIT_ACTIVE"].values)[b["CREDIT_ACTIVE"]] == "Active"
    b["DAYS_ENDDATE_FACT"] = np.where(active, np.nan, b["DAYS_ENDDATE_FACT"])
    b["SK_ID_CURR"] = curr_ids[owner]
    b["SK_ID_BUREAU"] = next_ids["bureau"] + np.arange(len(owner))
    next_ids["bureau"] += len(owner)
    out["bureau"] = _arrow_table("bureau", b, stats_columns("bureau"))

    share = np.where(is_test[owner], *(st["bureau_balance_share"][k] for k in ("test", "train")))
    with_bb = np.nonzero(rng.random(len(owner)) < share)[0]
    # Longer histories for older credits: the count's uniform follows -DAYS_CREDIT's rank.
    age_z = -zb[with_bb, bm.columns.index("DAYS_CREDIT")]
    u_n = ndtr(0.9 * age_z + np.sqrt(1 - 0.81) * rng.standard_normal(len(with_bb)))
    n_months = draw_counts(st["bureau_balance_months"], u_n)
    rec = np.repeat(with_bb, n_months)
    month = -_positions(n_months)
    closed_at = np.floor(np.nan_to_num(b["DAYS_ENDDATE_FACT"], nan=1.0) / DAYS_PER_MONTH)[rec]
    zs = 0.6 * rng.standard_normal(len(with_bb))[np.repeat(np.arange(len(with_bb)), n_months)]
    zs = zs + 0.8 * rng.standard_normal(len(rec)) + STATUS_LOADING * h[owner[rec]]
    status = np.searchsorted(
        np.cumsum(st["bureau_balance_status"]["probs"]) / sum(st["bureau_balance_status"]["probs"]),
        ndtr(zs / np.sqrt(1 + STATUS_LOADING**2)),
        side="right",
    ).clip(0, 6)
    labels = ["X", "0", "1", "2", "3", "4", "5", "C"]
    status = np.where(month > closed_at, 7, status)  # months after closure are "C"
    bb_cats = {"STATUS": {"values": labels}}
    out["bureau_balance"] = _arrow_table(
        "bureau_balance",
        {"SK_ID_BUREAU": b["SK_ID_BUREAU"][rec], "MONTHS_BALANCE": month, "STATUS": status},
        bb_cats,
    )

    # --- previous_application ------------------------------------------------------------
    pm = T["previous_application"]
    powner = np.repeat(np.arange(n), draw_counts(st["previous_per_client"], rng.random(n)))
    zp = pm.latent(rng, len(powner))
    pm.load(zp, RISK_LOADINGS["previous_application"], h[powner])
    p = pm.values(zp)
    statuses = pm.marginals["NAME_CONTRACT_STATUS"].values
    assert statuses is not None
    approved = p["NAME_CONTRACT_STATUS"] == statuses.index("Approved")
    for col in (
        "DAYS_FIRST_DRAWING",
        "DAYS_FIRST_DUE",
        "DAYS_LAST_DUE_1ST_VERSION",
        "DAYS_LAST_DUE",
        "DAYS_TERMINATION",
    ):
        p[col] = np.where(approved, p[col], np.nan)  # only approved loans have a schedule
    p["SK_ID_CURR"] = curr_ids[powner]
    p["SK_ID_PREV"] = next_ids["previous_application"] + np.arange(len(powner))
    next_ids["previous_application"] += len(powner)
    out["previous_application"] = _arrow_table(
        "previous_application", p, stats_columns("previous_application")
    )
    types = pm.marginals["NAME_CONTRACT_TYPE"].values
    assert types is not None

    # --- POS_CASH_balance ---------------------------------------------------------------
    monthly: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for table in ("POS_CASH_balance", "credit_card_balance"):
        spec, mm = st[table], T[table]
        has = rng.random(len(powner)) < spec["share"]
        eligible = np.zeros(len(powner), dtype=bool)
        for pair in spec["eligible"]:
            ctype, cstatus = pair.split("|")
            eligible |= (p["NAME_CONTRACT_TYPE"] == types.index(ctype)) & (
                p["NAME_CONTRACT_STATUS"] == statuses.index(cstatus)
            )
        has &= eligible
        prev_idx = np.nonzero(has)[0]
        n_m = draw_counts(spec["months"], rng.random(len(prev_idx)))
        start, _ = _month_span(p["DAYS_DECISION"][prev_idx], n_m, -1)
        row_prev = np.repeat(np.arange(len(prev_idx)), n_m)
        pos_in = _positions(n_m)
        zm = _month_latent(rng, mm, row_prev, len(prev_idx))
        mm.load(zm, RISK_LOADINGS[table], h[powner[prev_idx]][row_prev])
        m = mm.values(zm)
        m["MONTHS_BALANCE"] = start[row_prev] + pos_in
        m["SK_ID_PREV"] = p["SK_ID_PREV"][prev_idx][row_prev]
        m["SK_ID_CURR"] = p["SK_ID_CURR"][prev_idx][row_prev]
        if table == "POS_CASH_balance":
            planned = p["CNT_PAYMENT"][prev_idx]
            planned = np.where(planned > 0, planned, m["CNT_INSTALMENT"][np.cumsum(n_m) - n_m])
            m["CNT_INSTALMENT"] = planned[row_prev]
            m["CNT_INSTALMENT_FUTURE"] = np.maximum(m["CNT_INSTALMENT"] - pos_in, 0)
            names = mm.marginals["NAME_CONTRACT_STATUS"].values
            assert names is not None
            done, act = names.index("Completed"), names.index("Active")
            st_code = np.where(m["NAME_CONTRACT_STATUS"] == done, act, m["NAME_CONTRACT_STATUS"])
            m["NAME_CONTRACT_STATUS"] = np.where(m["CNT_INSTALMENT_FUTURE"] == 0, done, st_code)
        m["SK_DPD_DEF"] = np.minimum(m["SK_DPD_DEF"], m["SK_DPD"])
        out[table] = _arrow_table(table, m, stats_columns(table))
        monthly[table] = (prev_idx[row_prev], m["MONTHS_BALANCE"], pos_in)

    # --- installments_payments ------------------------------------------------------------
    im = T["installments_payments"]
    pos_prev, pos_month, pos_k = monthly["POS_CASH_balance"]
    cc_prev, cc_month, cc_k = monthly["credit_card_balance"]
    card_rows = cc_k % INSTALMENT_CARD_EVERY == INSTALMENT_CARD_EVERY - 1
    prev_of = np.concatenate([pos_prev, cc_prev[card_rows]])
    month = np.concatenate([pos_month, cc_month[card_rows]])
    number = np.concatenate([pos_k + 1, cc_k[card_rows] // INSTALMENT_CARD_EVERY + 1])
    parts = 1 + (rng.random(len(prev_of)) < INSTALMENT_SPLIT)
    rows = np.repeat(np.arange(len(prev_of)), parts)
    prev_of, month, number, part_share = prev_of[rows], month[rows], number[rows], 1 / parts[rows]
    uniq, row_prev = np.unique(prev_of, return_inverse=True)
    n_prev = len(uniq)
    day = rng.integers(-29, 1, n_prev)[row_prev]  # due day within the month, per contract
    days_inst = np.round(month * DAYS_PER_MONTH) + day
    hrow = h[powner[prev_of]]
    z_prev, z_row = rng.standard_normal((2, n_prev)), rng.standard_normal((2, len(rows)))
    zd = np.sqrt(PERSISTENCE) * z_prev[0][row_prev] + np.sqrt(1 - PERSISTENCE) * z_row[0]
    zd = (zd + DELAY_LOADING * hrow) / np.sqrt(1 + DELAY_LOADING**2)
    zq = np.sqrt(PERSISTENCE) * z_prev[1][row_prev] + np.sqrt(1 - PERSISTENCE) * z_row[1]
    zq = (zq - PAID_LOADING * hrow) / np.sqrt(1 + PAID_LOADING**2)
    delay = Marginal(st["installments"]["delay"]).numbers(ndtr(zd))
    paid = Marginal(st["installments"]["paid_share"] | {"missing": 0.0}).numbers(ndtr(zq))
    annuity = p["AMT_ANNUITY"][uniq]
    own_amount = im.marginals["AMT_INSTALMENT"].numbers(rng.random(n_prev))
    amount = np.where(annuity > 0, annuity, own_amount)[row_prev]
    version = im.marginals["NUM_INSTALMENT_VERSION"].numbers(rng.random(n_prev))[row_prev]
    unpaid = rng.random(len(rows)) < im.marginals["AMT_PAYMENT"].missing
    out["installments_payments"] = _arrow_table(
        "installments_payments",
        {
            "SK_ID_PREV": p["SK_ID_PREV"][prev_of],
            "SK_ID_CURR": p["SK_ID_CURR"][prev_of],
            "NUM_INSTALMENT_VERSION": np.nan_to_num(version),
            "NUM_INSTALMENT_NUMBER": number,
            "DAYS_INSTALMENT": days_inst,
            "DAYS_ENTRY_PAYMENT": np.where(
                unpaid, np.nan, np.minimum(days_inst + np.nan_to_num(delay), -1)
            ),
            "AMT_INSTALMENT": np.round(amount, 3),
            "AMT_PAYMENT": np.where(unpaid, np.nan, np.round(amount * paid * part_share, 3)),
        },
        {},
    )
    return out


def stats_columns(table: str) -> dict[str, Any]:
    return load_stats()["tables"][table]["columns"]


def app_specs() -> dict[str, Any]:
    return stats_columns("application")


def split_train_test(n_clients: int) -> np.ndarray:
    """True for test clients: evenly spread, exactly Kaggle's share (no randomness needed)."""
    ratio = KAGGLE_TEST / (KAGGLE_TRAIN + KAGGLE_TEST)
    i = np.arange(n_clients)
    return np.floor((i + 1) * ratio) > np.floor(i * ratio)


def generate(
    out_dir: Path,
    n_clients: int,
    seed: int = 0,
    progress: bool = True,
    chunk_clients: int = 20_000,
) -> dict[str, int]:
    """Write the eight Kaggle tables as ``out_dir/<table>.csv`` and the test applicants'
    truth as ``out_dir/HELDOUT_FILE``; return rows per table.

    Files are written to a temporary folder inside ``out_dir`` and moved into place only
    when every table is complete, so a failed run leaves no half-written CSV behind.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if n_clients < 1:
        raise ValueError("n_clients must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".synthetic-{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    rows = dict.fromkeys(TABLE_NAMES, 0)
    next_ids = {"bureau": FIRST_BUREAU, "previous_application": FIRST_PREV}
    is_test = split_train_test(n_clients)
    # pyarrow quotes every string value ("needed" cannot see inside values); that is valid
    # CSV and reads back identically. Header names never need quotes.
    options = pacsv.WriteOptions(quoting_style="needed", quoting_header="none")
    writers: dict[str, pacsv.CSVWriter] = {}
    bar = Progress(
        TextColumn("[bold]synthetic[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("", total=n_clients)
            for index, lo in enumerate(range(0, n_clients, chunk_clients)):
                hi = min(n_clients, lo + chunk_clients)
                rng = np.random.default_rng([seed, index])
                tables = _chunk(rng, FIRST_CURR + np.arange(lo, hi), is_test[lo:hi], next_ids)
                for name, table in tables.items():
                    if name not in writers:
                        file = name if name == HELDOUT_FILE else f"{name}.csv"
                        writers[name] = pacsv.CSVWriter(
                            tmp / file, table.schema, write_options=options
                        )
                    writers[name].write_table(table)
                    if name in rows:
                        rows[name] += table.num_rows
                summary = " ".join(f"{SHORT[k]} {v:,}" for k, v in rows.items())
                bar.update(task, completed=hi, description=summary)
        for w in writers.values():
            w.close()
        writers.clear()
        for name in TABLE_NAMES:
            (tmp / f"{name}.csv").replace(out_dir / f"{name}.csv")
        if (tmp / HELDOUT_FILE).is_file():
            (tmp / HELDOUT_FILE).replace(out_dir / HELDOUT_FILE)
        else:  # no test applicant in so small a set: no stale truth of an earlier one
            (out_dir / HELDOUT_FILE).unlink(missing_ok=True)
    finally:
        for w in writers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
