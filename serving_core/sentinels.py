"""Turn Kaggle's in-band "no value" codes into real missing values (see serving_core.schema)."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from serving_core.schema import (
    CATEGORY_MISSING,
    DAYS_SENTINEL,
    DAYS_SENTINEL_COLUMNS,
    kaggle_schema,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def mask_sentinels(frame: Frame, table: str) -> Frame:
    """365243 day offsets and the XNA category become null; XAP stays (it is meaningful)."""
    present = set(frame.collect_schema().names())
    days = [c for c in DAYS_SENTINEL_COLUMNS.get(table, ()) if c in present]
    categories = [
        c.name for c in kaggle_schema()[table].columns if c.kind == "category" and c.name in present
    ]
    return frame.with_columns(
        *[
            pl.when(pl.col(c) == DAYS_SENTINEL).then(None).otherwise(pl.col(c)).alias(c)
            for c in days
        ],
        *[
            pl.when(pl.col(c) == CATEGORY_MISSING).then(None).otherwise(pl.col(c)).alias(c)
            for c in categories
        ],
    )
