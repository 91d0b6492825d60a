"""Feature pipeline on hand-written tiny tables: known aggregates, exact values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from serving_core.application import application_features
from serving_core.frame import model_matrix
from tests.conftest import write_minimal_tables
from training.features.pipeline import build_features, load_feature_schema
from training.loader import convert

CLIENT, NEW_CLIENT = 100001, 100002


def _rows(tables: Path, table: str, changes: list[dict]) -> None:
    """Replace ``table`` by copies of its single valid row, each updated with ``changes``."""
    template = pd.read_parquet(tables / f"{table}.parquet").iloc[0]
    frame = pd.DataFrame([{**template.to_dict(), **change} for change in changes])
    frame = frame.astype(pd.read_parquet(tables / f"{table}.parquet").dtypes.to_dict())
    frame.to_parquet(tables / f"{table}.parquet", index=False)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, dict, Path]:
    root = tmp_path_factory.mktemp("features")
    tables = root / "tables"
    convert(write_minimal_tables(root / "source"), tables, progress=False)
    _rows(
        tables,
        "application_train",
        [
            {
                "SK_ID_CURR": CLIENT,
                "TARGET": 1,
                "AMT_CREDIT": 1000.0,
                "AMT_ANNUITY": 50.0,
                "AMT_INCOME_TOTAL": 10000.0,
                "DAYS_EMPLOYED": 365243,
                "EXT_SOURCE_1": 0.2,
                "EXT_SOURCE_2": 0.4,
                "EXT_SOURCE_3": None,
                "CODE_GENDER": "XNA",
            }
        ],
    )
    _rows(
        tables,
        "bureau",
        [
            {
                "SK_ID_BUREAU": 1,
                "CREDIT_ACTIVE": "Active",
                "AMT_CREDIT_SUM": 1000.0,
                "AMT_CREDIT_SUM_DEBT": 400.0,
                "CREDIT_DAY_OVERDUE": 5,
                "DAYS_CREDIT": -100,
            },
            {
                "SK_ID_BUREAU": 2,
                "CREDIT_ACTIVE": "Active",
                "AMT_CREDIT_SUM": 3000.0,
                "AMT_CREDIT_SUM_DEBT": 600.0,
                "CREDIT_DAY_OVERDUE": 0,
                "DAYS_CREDIT": -200,
            },
            {
                "SK_ID_BUREAU": 3,
                "CREDIT_ACTIVE": "Closed",
                "AMT_CREDIT_SUM": 2000.0,
                "AMT_CREDIT_SUM_DEBT": 0.0,
                "CREDIT_DAY_OVERDUE": 0,
                "DAYS_CREDIT": -1000,
            },
        ],
    )
    _rows(
        tables,
        "bureau_balance",
        [
            {"SK_ID_BUREAU": 1, "MONTHS_BALANCE": 0, "STATUS": "0"},
            {"SK_ID_BUREAU": 1, "MONTHS_BALANCE": -1, "STATUS": "1"},
            {"SK_ID_BUREAU": 1, "MONTHS_BALANCE": -2, "STATUS": "C"},
            {"SK_ID_BUREAU": 1, "MONTHS_BALANCE": -13, "STATUS": "X"},
            {"SK_ID_BUREAU": 2, "MONTHS_BALANCE": 0, "STATUS": "2"},
            {"SK_ID_BUREAU": 2, "MONTHS_BALANCE": -1, "STATUS": "0"},
        ],
    )
    _rows(
        tables,
        "previous_application",
        [
            {
                "SK_ID_PREV": 1,
                "NAME_CONTRACT_STATUS": "Approved",
                "AMT_CREDIT": 100.0,
                "AMT_APPLICATION": 120.0,
                "DAYS_DECISION": -100,
                "DAYS_LAST_DUE_1ST_VERSION": 365243,
            },
            {
                "SK_ID_PREV": 2,
                "NAME_CONTRACT_STATUS": "Refused",
                "AMT_CREDIT": 0.0,
                "AMT_APPLICATION": 500.0,
                "DAYS_DECISION": -500,
            },
            {
                "SK_ID_PREV": 3,
                "NAME_CONTRACT_STATUS": "Approved",
                "AMT_CREDIT": 300.0,
                "AMT_APPLICATION": 300.0,
                "DAYS_DECISION": -50,
                "DAYS_LAST_DUE_1ST_VERSION": 365243,
            },
        ],
    )
    _rows(
        tables,
        "installments_payments",
        [
            {
                "AMT_INSTALMENT": 100.0,
                "AMT_PAYMENT": 100.0,
                "DAYS_INSTALMENT": -12.0,
                "DAYS_ENTRY_PAYMENT": -10.0,
            },
            {
                "AMT_INSTALMENT": 100.0,
                "AMT_PAYMENT": 50.0,
                "DAYS_INSTALMENT": -25.0,
                "DAYS_ENTRY_PAYMENT": -30.0,
            },
        ],
    )
    out = build_features(tables, root / "features", progress=False)
    return pl.read_parquet(out), load_feature_schema(root / "features"), tables


def _value(features: pl.DataFrame, client: int, column: str) -> object:
    return features.filter(pl.col("SK_ID_CURR") == client)[column].item()


EXPECTED = {
    # application: ratios, sentinel masked and flagged, EXT_SOURCE combinations
    "CREDIT_TERM_MONTHS": 20.0,
    "ANNUITY_INCOME_RATIO": 0.005,
    "CREDIT_INCOME_RATIO": 0.1,
    "DAYS_EMPLOYED": None,
    "DAYS_EMPLOYED_ANOMALY": 1.0,
    "EXT_SOURCE_MEAN": 0.3,
    "EXT_SOURCE_MIN": 0.2,
    "EXT_SOURCE_MAX": 0.4,
    "EXT_SOURCE_STD": 0.1,
    "EXT_SOURCE_PROD": None,
    "CODE_GENDER": None,  # XNA is Kaggle's "not available"
    # bureau, split by status and by the last 12 months
    "BUREAU_COUNT": 3.0,
    "BUREAU_COUNT_ACTIVE": 2.0,
    "BUREAU_COUNT_CLOSED": 1.0,
    "BUREAU_COUNT_RECENT": 2.0,
    "BUREAU_AMT_CREDIT_SUM_SUM": 6000.0,
    "BUREAU_AMT_CREDIT_SUM_SUM_ACTIVE": 4000.0,
    "BUREAU_AMT_CREDIT_SUM_SUM_CLOSED": 2000.0,
    "BUREAU_AMT_CREDIT_SUM_DEBT_SUM_ACTIVE": 1000.0,
    "BUREAU_DEBT_RATIO_MEAN_ACTIVE": 0.3,
    "BUREAU_CREDIT_DAY_OVERDUE_MAX": 5.0,
    # bureau_balance through SK_ID_BUREAU: per credit first, then per client
    "BB_MONTHS_SUM": 6.0,
    "BB_LATE_SHARE_MEAN": 0.375,
    "BB_LATE_SHARE_MAX": 0.5,
    "BB_LATE_SHARE_MEAN_RECENT": (1 / 3 + 1 / 2) / 2,
    "BB_WORST_STATUS_MAX": 2.0,
    # previous applications, approved and refused apart
    "PREV_COUNT": 3.0,
    "PREV_COUNT_APPROVED": 2.0,
    "PREV_COUNT_REFUSED": 1.0,
    "PREV_REFUSED_SHARE": 1 / 3,
    "PREV_REFUSED_SHARE_RECENT": 0.0,
    "PREV_AMT_CREDIT_MEAN_APPROVED": 200.0,
    "PREV_APPLICATION_CREDIT_MEAN_APPROVED": 1.1,
    "PREV_APPLICATION_CREDIT_MEAN_REFUSED": None,  # credit 0: no ratio, not infinity
    "PREV_DAYS_LAST_DUE_1ST_VERSION_MAX_APPROVED": None,  # approved rows: only sentinels
    # installments: paid share and difference, days past and before due
    "INST_COUNT": 2.0,
    "INST_PAID_SHARE_MEAN": 0.75,
    "INST_PAID_SHARE_MIN": 0.5,
    "INST_PAID_DIFF_SUM": 50.0,
    "INST_DPD_MAX": 2.0,
    "INST_DPD_MEAN": 1.0,
    "INST_DBD_MEAN": 2.5,
    "INST_LATE_SHARE": 0.5,
}


@pytest.mark.parametrize(("column", "expected"), EXPECTED.items())
def test_known_values(features: tuple[pl.DataFrame, dict], column: str, expected: object):
    frame, _, _ = features
    value = _value(frame, CLIENT, column)
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected, rel=1e-12)


def test_client_without_history_has_missing_aggregates(features):
    frame, schema, _ = features
    row = frame.filter(pl.col("SK_ID_CURR") == NEW_CLIENT)
    assert row["split"].item() == "test" and row["TARGET"].item() is None
    history = [f["name"] for f in schema["features"] if f["source"] != "application"]
    assert history and all(row[name].item() is None for name in history)


def test_schema_describes_every_column_in_both_languages(features):
    frame, schema, _ = features
    names = [f["name"] for f in schema["features"]]
    assert frame.columns == ["SK_ID_CURR", "TARGET", "split", *names]
    assert len(set(names)) == len(names)
    sources = {f["source"] for f in schema["features"]}
    assert sources == {
        "application",
        "bureau",
        "bureau_balance",
        "previous_application",
        "POS_CASH_balance",
        "installments_payments",
        "credit_card_balance",
    }
    for feature in schema["features"]:
        assert feature["label"]["en"] and feature["label"]["fr"], feature["name"]
        assert feature["dtype"] in ("float", "category")
    gender = next(f for f in schema["features"] if f["name"] == "CODE_GENDER")
    assert gender["protected"] and "XNA" not in gender["categories"]
    json.dumps(schema)  # serialisable as written


def test_model_matrix_fixes_categories_and_types(features):
    frame, schema, _ = features
    matrix = model_matrix(frame.to_pandas(), schema)
    contract = matrix["NAME_CONTRACT_TYPE"]
    assert isinstance(contract.dtype, pd.CategoricalDtype)
    spec = next(f for f in schema["features"] if f["name"] == "NAME_CONTRACT_TYPE")
    assert list(contract.cat.categories) == spec["categories"]
    unseen = model_matrix(pd.DataFrame({"NAME_CONTRACT_TYPE": ["Space loans"]}), schema)
    assert unseen["NAME_CONTRACT_TYPE"].isna().all()  # unseen value -> missing, not a new code
    assert matrix["AMT_CREDIT"].dtype == "float64"


def test_one_posted_application_gets_the_batch_values(features):
    """A new application sent as JSON-like fields gets exactly the batch pipeline's values."""
    frame, schema, tables = features
    raw = pd.read_parquet(tables / "application_train.parquet").drop(columns="TARGET")
    posted = {k: [None if pd.isna(v) else v] for k, v in raw.iloc[0].to_dict().items()}
    single = application_features(pl.DataFrame(posted, strict=False))
    batch = frame.filter(pl.col("SK_ID_CURR") == CLIENT)
    names = [f["name"] for f in schema["features"] if f["source"] == "application"]
    assert single.select(names).rows() == batch.select(names).rows()
