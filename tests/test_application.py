"""A partner's application -> raw Kaggle fields: training-consistent encoding of gaps."""

from __future__ import annotations

import polars as pl
import pytest

from credit.v1 import common_pb2
from services.common.application import application_to_raw
from services.common.errors import InvalidArgument
from training.features.application import application_features
from training.schema import DAYS_SENTINEL


def _application(**fields: object) -> common_pb2.Application:
    base = {
        "contract_type": "Cash loans",
        "amt_income_total": 120_000.0,
        "amt_credit": 500_000.0,
        "amt_annuity": 25_000.0,
        "days_birth": -20_000,
    }
    return common_pb2.Application(**{**base, **fields})  # type: ignore[arg-type]


def test_no_employment_date_is_encoded_as_kaggle_does():
    """Training never saw a missing DAYS_EMPLOYED: pensioners carry 365243, which the
    features turn into a flag. A partner leaving the field out must get the same flag."""
    raw = application_to_raw(_application())
    assert raw["DAYS_EMPLOYED"] == DAYS_SENTINEL
    features = application_features(pl.DataFrame([raw])).row(0, named=True)
    assert features["DAYS_EMPLOYED_ANOMALY"] == 1.0 and features["DAYS_EMPLOYED"] is None


def test_employment_date_is_kept():
    features = application_features(
        pl.DataFrame([application_to_raw(_application(days_employed=-1_000))])
    ).row(0, named=True)
    assert features["DAYS_EMPLOYED"] == -1_000 and features["DAYS_EMPLOYED_ANOMALY"] == 0.0
    assert features["EMPLOYED_AGE_RATIO"] == pytest.approx(1_000 / 20_000)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amt_credit": 0.0}, "amt_credit"),
        ({"days_employed": 10}, "days_employed"),
        ({"name_income_type": "Astronaut"}, "name_income_type"),
        ({"amt_annuity": 600_000.0}, "amt_annuity"),
        ({"numeric_fields": {"NOT_A_FIELD": 1.0}}, "numeric_fields[NOT_A_FIELD]"),
        ({"category_fields": {"AMT_CREDIT": "x"}}, "category_fields[AMT_CREDIT]"),
    ],
)
def test_invalid_fields_are_named(fields: dict, field: str):
    with pytest.raises(InvalidArgument) as error:
        application_to_raw(_application(**fields))
    assert error.value.field == field
