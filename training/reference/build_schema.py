"""Maintainer tool: derive ``schema.json`` from a folder of real Kaggle files.

Run once by a maintainer (``python -m training.reference.build_schema DIR``); the result is
committed, so neither the loader nor the synthetic generator ever read real data to know
the schema. Kinds come from how the Kaggle CSVs are written: integer columns never hold a
decimal point, float columns may be empty, text columns are categories.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from serving_core.schema import ID_COLUMNS, TABLE_NAMES, find_table_file

DESCRIPTION_TABLE = {
    "application_train": "application_{train|test}.csv",
    "application_test": "application_{train|test}.csv",
    "bureau": "bureau.csv",
    "bureau_balance": "bureau_balance.csv",
    "previous_application": "previous_application.csv",
    "POS_CASH_balance": "POS_CASH_balance.csv",
    "installments_payments": "installments_payments.csv",
    "credit_card_balance": "credit_card_balance.csv",
}


def _kind(name: str, dtype: object) -> str:
    if name in ID_COLUMNS:
        return "id"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "category"


def build(source: Path) -> dict:
    descriptions = pd.read_csv(
        source / "HomeCredit_columns_description.csv", encoding="latin-1", index_col=0
    )
    tables = {}
    for table in TABLE_NAMES:
        frame = pd.read_csv(find_table_file(source, table), low_memory=False)
        described = descriptions[descriptions["Table"] == DESCRIPTION_TABLE[table]]
        text = dict(zip(described["Row"], described["Description"], strict=True))
        columns = []
        for name in frame.columns:
            kind = _kind(name, frame[name].dtype)
            column: dict = {"name": name, "kind": kind, "description": text.get(name, "")}
            if kind == "category":
                column["categories"] = sorted(frame[name].dropna().astype(str).unique())
            columns.append(column)
        tables[table] = {"columns": columns}
    return {"source": "Kaggle Home Credit Default Risk (2018)", "tables": tables}


def main() -> None:
    source = Path(sys.argv[1])
    target = Path(__file__).parents[2] / "serving_core" / "reference" / "schema.json"
    target.write_text(json.dumps(build(source), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
