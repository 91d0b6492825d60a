"""The Kaggle Home Credit schema: tables, columns, kinds, category sets, links, sentinels.

One source of truth for the loader, the synthetic generator and the feature pipeline. The
column list itself lives in ``reference/schema.json`` (built once from real files by
``reference/build_schema.py``); this module gives it types and names the rules around it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

Kind = Literal["id", "int", "float", "category"]

# Table names exactly as Kaggle spells the files, in the order a client's data is built.
TABLE_NAMES: tuple[str, ...] = (
    "application_train",
    "application_test",
    "bureau",
    "bureau_balance",
    "previous_application",
    "POS_CASH_balance",
    "installments_payments",
    "credit_card_balance",
)
APPLICATION_TABLES = ("application_train", "application_test")
ID_COLUMNS = frozenset({"SK_ID_CURR", "SK_ID_BUREAU", "SK_ID_PREV"})
DESCRIPTION_FILE = "HomeCredit_columns_description.csv"
CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclass(frozen=True)
class Link:
    """``child.column`` points to ``parent.column`` (a foreign key)."""

    child: str
    parent: str | tuple[str, ...]
    column: str

    @property
    def parents(self) -> tuple[str, ...]:
        return (self.parent,) if isinstance(self.parent, str) else self.parent


LINKS: tuple[Link, ...] = (
    Link("bureau", APPLICATION_TABLES, "SK_ID_CURR"),
    Link("bureau_balance", "bureau", "SK_ID_BUREAU"),
    Link("previous_application", APPLICATION_TABLES, "SK_ID_CURR"),
    Link("POS_CASH_balance", APPLICATION_TABLES, "SK_ID_CURR"),
    Link("POS_CASH_balance", "previous_application", "SK_ID_PREV"),
    Link("installments_payments", APPLICATION_TABLES, "SK_ID_CURR"),
    Link("installments_payments", "previous_application", "SK_ID_PREV"),
    Link("credit_card_balance", APPLICATION_TABLES, "SK_ID_CURR"),
    Link("credit_card_balance", "previous_application", "SK_ID_PREV"),
)

# Kaggle's in-band codes for "no value". The typed tables keep them as they are (no data is
# changed on conversion); the quality summary counts them and the feature pipeline turns
# them into missing values with `serving_core.sentinels`.
DAYS_SENTINEL = 365243  # "infinity" in day offsets: DAYS_EMPLOYED of pensioners/unemployed, ...
DAYS_SENTINEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "application_train": ("DAYS_EMPLOYED",),
    "application_test": ("DAYS_EMPLOYED",),
    "previous_application": (
        "DAYS_FIRST_DRAWING",
        "DAYS_FIRST_DUE",
        "DAYS_LAST_DUE_1ST_VERSION",
        "DAYS_LAST_DUE",
        "DAYS_TERMINATION",
    ),
}
# XNA = "not available" (a missing value); XAP = "not applicable" (a real, meaningful state).
CATEGORY_MISSING = "XNA"
CATEGORY_NOT_APPLICABLE = "XAP"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str = ""
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    by_name: dict[str, Column] = field(repr=False, compare=False, default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return self.by_name[name]


@cache
def kaggle_schema() -> dict[str, Table]:
    """All eight tables, in Kaggle's column order."""
    raw = json.loads(Path(__file__).with_name("reference").joinpath("schema.json").read_text())
    tables = {}
    for name in TABLE_NAMES:
        columns = tuple(
            Column(
                name=c["name"],
                kind=c["kind"],
                description=c.get("description", ""),
                categories=tuple(c.get("categories", ())),
            )
            for c in raw["tables"][name]["columns"]
        )
        tables[name] = Table(name, columns, {c.name: c for c in columns})
    return tables


def find_table_file(folder: Path, table: str) -> Path:
    """The CSV (plain or gzipped) holding ``table`` in ``folder``; FileNotFoundError if none."""
    for suffix in CSV_SUFFIXES:
        candidate = folder / f"{table}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{table}: no {table}.csv or {table}.csv.gz in {folder}")
