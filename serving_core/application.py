"""Features of one application: raw fields (sentinels masked) and the analysts' ratios.

These functions serve both the batch pipeline and new applications posted to the API
(through Feast's on-demand features), so a partner's application is scored on features
computed by exactly the code that made the training set.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from serving_core.catalog import FeatureInfo, raw_application_info
from serving_core.schema import CATEGORY_MISSING, DAYS_SENTINEL, kaggle_schema
from serving_core.sentinels import mask_sentinels

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
EXT_SOURCES = ("EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3")
NOT_FEATURES = frozenset({"SK_ID_CURR", "TARGET"})


def safe_divide(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, missing (not infinite) when the denominator is 0 or missing."""
    return pl.when(denominator != 0).then(numerator / denominator).otherwise(None)


def _ext_std() -> pl.Expr:
    mean = pl.mean_horizontal(*EXT_SOURCES)
    mean_sq = pl.mean_horizontal(*[pl.col(c) ** 2 for c in EXT_SOURCES])
    return (mean_sq - mean**2).clip(lower_bound=0).sqrt()


DERIVED: tuple[tuple[FeatureInfo, pl.Expr], ...] = (
    (
        FeatureInfo(
            "CREDIT_TERM_MONTHS",
            "application",
            "Loan term in months",
            "Durée du prêt en mois",
            unit="count",
            actionable=True,
        ),
        # Kaggle's AMT_ANNUITY is the monthly instalment: credit / annuity = months.
        safe_divide(pl.col("AMT_CREDIT"), pl.col("AMT_ANNUITY")),
    ),
    (
        FeatureInfo(
            "ANNUITY_INCOME_RATIO",
            "application",
            "Annuity as a share of income",
            "Annuité en part du revenu",
            unit="share",
        ),
        safe_divide(pl.col("AMT_ANNUITY"), pl.col("AMT_INCOME_TOTAL")),
    ),
    (
        FeatureInfo(
            "CREDIT_INCOME_RATIO",
            "application",
            "Credit as a multiple of income",
            "Crédit en multiple du revenu",
            unit="ratio",
        ),
        safe_divide(pl.col("AMT_CREDIT"), pl.col("AMT_INCOME_TOTAL")),
    ),
    (
        FeatureInfo(
            "GOODS_CREDIT_RATIO",
            "application",
            "Goods price as a share of the credit",
            "Prix du bien en part du crédit",
            unit="share",
        ),
        safe_divide(pl.col("AMT_GOODS_PRICE"), pl.col("AMT_CREDIT")),
    ),
    (
        FeatureInfo(
            "EMPLOYED_AGE_RATIO",
            "application",
            "Share of life in the current job",
            "Part de la vie passée dans l'emploi actuel",
            unit="share",
        ),
        safe_divide(pl.col("DAYS_EMPLOYED"), pl.col("DAYS_BIRTH")),
    ),
    (
        FeatureInfo(
            "INCOME_PER_PERSON",
            "application",
            "Income per family member",
            "Revenu par membre de la famille",
            unit="money",
        ),
        safe_divide(pl.col("AMT_INCOME_TOTAL"), pl.col("CNT_FAM_MEMBERS")),
    ),
    (
        FeatureInfo(
            "EXT_SOURCE_MEAN",
            "application",
            "Average of the external scores",
            "Moyenne des scores externes",
            unit="score",
        ),
        pl.mean_horizontal(*EXT_SOURCES),
    ),
    (
        FeatureInfo(
            "EXT_SOURCE_MIN",
            "application",
            "Lowest external score",
            "Score externe le plus bas",
            unit="score",
        ),
        pl.min_horizontal(*EXT_SOURCES),
    ),
    (
        FeatureInfo(
            "EXT_SOURCE_MAX",
            "application",
            "Highest external score",
            "Score externe le plus haut",
            unit="score",
        ),
        pl.max_horizontal(*EXT_SOURCES),
    ),
    (
        FeatureInfo(
            "EXT_SOURCE_STD",
            "application",
            "Spread of the external scores",
            "Dispersion des scores externes",
            unit="score",
        ),
        _ext_std(),
    ),
    (
        FeatureInfo(
            "EXT_SOURCE_PROD",
            "application",
            "Product of the external scores",
            "Produit des scores externes",
            unit="score",
        ),
        pl.col("EXT_SOURCE_1") * pl.col("EXT_SOURCE_2") * pl.col("EXT_SOURCE_3"),
    ),
)
ANOMALY = FeatureInfo(
    "DAYS_EMPLOYED_ANOMALY",
    "application",
    "No employment date (pensioner or unemployed)",
    "Pas de date d'emploi (retraité ou sans emploi)",
    unit="flag",
)


def raw_columns() -> list[str]:
    return [c for c in kaggle_schema()["application_test"].column_names if c not in NOT_FEATURES]


def application_catalog() -> list[FeatureInfo]:
    """Catalogue entries, in output column order, of `application_features`."""
    table = kaggle_schema()["application_test"]
    raw = [
        raw_application_info(
            c.name,
            c.kind,
            c.description,
            tuple(v for v in c.categories if v != CATEGORY_MISSING),
        )
        for c in table.columns
        if c.name not in NOT_FEATURES
    ]
    return [*raw, ANOMALY, *(info for info, _ in DERIVED)]


def _typed(raw: Frame) -> Frame:
    """Every raw field with its schema type; absent optional fields become missing values."""
    present = set(raw.collect_schema().names())
    columns = []
    for column in kaggle_schema()["application_test"].columns:
        if column.name in NOT_FEATURES:
            continue
        dtype = pl.String if column.kind == "category" else pl.Float64
        expr = pl.col(column.name) if column.name in present else pl.lit(None)
        columns.append(expr.cast(dtype).alias(column.name))
    keep = [pl.col("SK_ID_CURR")] if "SK_ID_CURR" in present else []
    return raw.select(*keep, *columns)


def application_features(raw: Frame) -> Frame:
    """Raw application rows (Kaggle columns; SK_ID_CURR optional) -> application features."""
    typed = _typed(raw)
    flagged = typed.with_columns(
        pl.when(pl.col("DAYS_EMPLOYED").is_null())
        .then(None)
        .otherwise((pl.col("DAYS_EMPLOYED") == DAYS_SENTINEL).cast(pl.Float64))
        .alias(ANOMALY.name)
    )
    # Both applications share the feature schema; test rows carry no TARGET.
    masked = mask_sentinels(flagged, "application_test")
    return masked.with_columns(
        *[expr.cast(pl.Float64).alias(info.name) for info, expr in DERIVED],
    )
