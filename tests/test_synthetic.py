"""The synthetic generator: Kaggle schema, links, determinism, TARGET rate and signal.

Generator tests need only the shipped statistics; the comparison with the real sample is
skipped when that sample is absent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving_core.schema import APPLICATION_TABLES, LINKS, TABLE_NAMES, kaggle_schema
from tests.conftest import REAL_SAMPLE as SAMPLE
from training.loader import convert
from training.synthetic import generate
from training.synthetic.generate import HELDOUT_FILE

N_CLIENTS = 12_000
PANDAS_KIND = {"id": "i", "int": "i", "float": "fi", "category": "O"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate(out, N_CLIENTS, seed=0, progress=False, chunk_clients=5_000)


@pytest.fixture(scope="module")
def tables(generated: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    out, _ = generated
    return {t: pd.read_csv(out / f"{t}.csv") for t in TABLE_NAMES}


def _digest(folder: Path) -> dict[str, str]:
    return {t: hashlib.sha256((folder / f"{t}.csv").read_bytes()).hexdigest() for t in TABLE_NAMES}


def test_files_and_row_counts(generated: tuple[Path, dict[str, int]], tables) -> None:
    out, rows = generated
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.csv" for t in TABLE_NAMES] + [HELDOUT_FILE]
    )
    # The test applicants' truth, kept apart (application_test has no TARGET, as in Kaggle).
    truth = pd.read_csv(out / HELDOUT_FILE)
    assert list(truth.columns) == ["SK_ID_CURR", "TARGET"]
    assert truth["SK_ID_CURR"].tolist() == tables["application_test"]["SK_ID_CURR"].tolist()
    assert set(truth["TARGET"]) == {0, 1} and "TARGET" not in tables["application_test"]
    assert rows == {t: len(tables[t]) for t in TABLE_NAMES}
    assert rows["application_train"] + rows["application_test"] == N_CLIENTS
    test_share = rows["application_test"] / N_CLIENTS
    assert test_share == pytest.approx(48_744 / 356_255, abs=1e-3)
    assert all(rows[t] > 0 for t in TABLE_NAMES)


def test_schema_matches_kaggle(tables: dict[str, pd.DataFrame]) -> None:
    for name, table in kaggle_schema().items():
        df = tables[name]
        assert list(df.columns) == table.column_names, name
        for col in table.columns:
            s = df[col.name]
            if s.isna().all():
                continue
            assert s.dtype.kind in PANDAS_KIND[col.kind], (name, col.name, s.dtype)
            if col.kind == "category":
                assert set(s.dropna()) <= set(col.categories), (name, col.name)
            if col.kind in ("id", "int"):
                assert s.notna().all(), (name, col.name)


def test_common_categories_are_covered(tables: dict[str, pd.DataFrame]) -> None:
    # Very rare categories (one row in 10,000 real ones) may legitimately not show up.
    for name in ("application_train", "bureau", "previous_application", "bureau_balance"):
        for col in kaggle_schema()[name].columns:
            if col.kind == "category" and len(col.categories) <= 8:
                seen = set(tables[name][col.name].dropna())
                assert len(seen) >= len(col.categories) - 2, (name, col.name, seen)


def test_integers_have_no_decimals(generated: tuple[Path, dict[str, int]]) -> None:
    out, _ = generated
    header, first = (out / "bureau_balance.csv").read_text().splitlines()[:2]
    assert header == "SK_ID_BUREAU,MONTHS_BALANCE,STATUS"
    assert "." not in first.split(",")[1]
    line = (out / "application_train.csv").open().readlines()[1].split(",")
    assert line[0].isdigit() and line[1] in ("0", "1")


def test_links_have_no_orphans(tables: dict[str, pd.DataFrame]) -> None:
    curr = pd.concat([tables[t]["SK_ID_CURR"] for t in APPLICATION_TABLES])
    assert curr.is_unique
    assert curr.between(100_001, 456_255).all()
    assert tables["bureau"]["SK_ID_BUREAU"].is_unique
    assert tables["previous_application"]["SK_ID_PREV"].is_unique
    for link in LINKS:
        parents = pd.concat([tables[p][link.column] for p in link.parents])
        assert tables[link.child][link.column].isin(parents).all(), link
    prev = tables["previous_application"].set_index("SK_ID_PREV")["SK_ID_CURR"]
    for child in ("POS_CASH_balance", "installments_payments", "credit_card_balance"):
        df = tables[child]
        assert (df["SK_ID_PREV"].map(prev) == df["SK_ID_CURR"]).all(), child


def test_structure_is_plausible(tables: dict[str, pd.DataFrame]) -> None:
    app = tables["application_train"]
    sentinel = app["DAYS_EMPLOYED"] == 365243
    assert 0.1 < sentinel.mean() < 0.3
    assert (app.loc[sentinel, "NAME_INCOME_TYPE"] == "Pensioner").all()
    building = app[["APARTMENTS_AVG", "APARTMENTS_MODE", "APARTMENTS_MEDI"]].isna()
    assert (building.sum(axis=1).isin([0, 3])).mean() > 0.9  # missing together
    assert app[["AMT_CREDIT", "AMT_GOODS_PRICE"]].corr(method="spearman").iloc[0, 1] > 0.8
    inst = tables["installments_payments"]
    assert inst["NUM_INSTALMENT_NUMBER"].min() == 1
    assert (tables["POS_CASH_balance"]["MONTHS_BALANCE"] < 0).all()


def test_positive_rate(tables: dict[str, pd.DataFrame]) -> None:
    assert 0.06 <= tables["application_train"]["TARGET"].mean() <= 0.10


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = (tmp_path / x for x in "abc")
    rows = generate(a, 800, seed=7, progress=False, chunk_clients=300)
    assert generate(b, 800, seed=7, progress=False, chunk_clients=300) == rows
    assert _digest(a) == _digest(b)
    generate(c, 800, seed=8, progress=False, chunk_clients=300)
    assert _digest(a)["application_train"] != _digest(c)["application_train"]
    assert not list(a.glob(".*tmp"))  # the temporary folder is gone


def _aggregates(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-client mean/max of every numeric child column (a quick, generic feature set)."""
    prev_curr = tables["bureau"].set_index("SK_ID_BUREAU")["SK_ID_CURR"]
    bb = tables["bureau_balance"].assign(
        SK_ID_CURR=lambda d: d["SK_ID_BUREAU"].map(prev_curr),
        BAD=lambda d: d["STATUS"].isin(list("12345")).astype(float),
    )
    parts = []
    for name, df in [(t, tables[t]) for t in TABLE_NAMES[2:] if t != "bureau_balance"] + [
        ("bureau_balance", bb)
    ]:
        df = df.copy()
        for col in df.select_dtypes("object"):
            # category shares via one-hot means
            df = df.join(pd.get_dummies(df.pop(col), prefix=col, dtype=float))
        num = df.drop(columns=["SK_ID_BUREAU", "SK_ID_PREV"], errors="ignore")
        agg = num.groupby("SK_ID_CURR").agg(["mean", "max"])
        agg.columns = [f"{name}_{a}_{b}" for a, b in agg.columns]
        parts += [agg, num.groupby("SK_ID_CURR").size().rename(f"{name}_count")]
    return pd.concat(parts, axis=1)


def _cv_auc(x: pd.DataFrame, y: pd.Series) -> float:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = x.astype(float)
    x.columns = [f"f{i}" for i in range(x.shape[1])]  # one-hot names hold commas etc.
    scores = np.zeros(len(y))
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 40,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.5,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0,
    }
    for fit_i, val_i in StratifiedKFold(3, shuffle=True, random_state=0).split(x, y):
        model = lgb.train(params, lgb.Dataset(x.iloc[fit_i], y.iloc[fit_i]), 200)
        scores[val_i] = model.predict(x.iloc[val_i])
    return float(roc_auc_score(y, scores))


def test_history_tables_carry_signal(tables: dict[str, pd.DataFrame]) -> None:
    app = tables["application_train"].set_index("SK_ID_CURR")
    y = app.pop("TARGET")
    app = app.apply(lambda s: s.astype("category").cat.codes if s.dtype == object else s)
    app_auc = _cv_auc(app, y)
    full_auc = _cv_auc(app.join(_aggregates(tables)), y)
    print(f"AUC application only {app_auc:.3f}, with all tables {full_auc:.3f}")
    assert app_auc > 0.62
    assert full_auc - app_auc > 0.02


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real Home Credit sample not found at {SAMPLE}")
def test_marginals_close_to_real_sample(tables: dict[str, pd.DataFrame]) -> None:
    real = pd.read_csv(SAMPLE / "application_train.csv.gz")
    syn = tables["application_train"]
    for col in ("AMT_CREDIT", "AMT_INCOME_TOTAL", "DAYS_BIRTH", "EXT_SOURCE_2"):
        assert syn[col].median() == pytest.approx(real[col].median(), rel=0.1), col
    miss_real, miss_syn = real.isna().mean(), syn.isna().mean()
    # statistics are fitted on train and test together, whose missing rates differ a little
    assert (miss_real - miss_syn).abs().max() < 0.1
    per_client_real = len(pd.read_csv(SAMPLE / "bureau.csv.gz")) / 10_000
    per_client_syn = len(tables["bureau"]) / N_CLIENTS
    assert per_client_syn == pytest.approx(per_client_real, rel=0.15)


def test_same_typed_schema_and_categories_as_real_sample(
    real_sample: Path, generated: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """Through the loader, synthetic and real files give identical typed tables (names,
    order, Arrow types); synthetic category values all occur in the real data."""
    out, _ = generated
    convert(real_sample, tmp_path / "real", progress=False)
    convert(out, tmp_path / "synthetic", progress=False)
    for name in TABLE_NAMES:
        real = pq.read_table(tmp_path / "real" / f"{name}.parquet")
        synthetic = pq.read_table(tmp_path / "synthetic" / f"{name}.parquet")
        assert synthetic.schema.equals(real.schema), name
        for field in real.schema:
            if pa.types.is_string(field.type):
                real_values = set(real.column(field.name).drop_null().unique().to_pylist())
                seen = set(synthetic.column(field.name).drop_null().unique().to_pylist())
                assert seen <= real_values, (name, field.name, seen - real_values)
