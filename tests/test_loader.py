"""Kaggle CSV -> typed Parquet: the real sample, and every bad input with its clear error."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving_core.schema import TABLE_NAMES, kaggle_schema
from training.loader import DataValidationError, convert
from training.quality import summarize

# Row counts documented in the sample's README.
REAL_ROWS = {
    "application_train": 5_000,
    "application_test": 5_000,
    "bureau": 49_227,
    "bureau_balance": 1_207_059,
    "previous_application": 49_100,
    "POS_CASH_balance": 287_697,
    "installments_payments": 1_369,
    "credit_card_balance": 113_392,
}
ARROW_KINDS = {"id": pa.int64(), "int": pa.int64(), "float": pa.float64(), "category": pa.string()}


def _replace_in_header(path: Path, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[0] = ",".join(new if name == old else name for name in lines[0].split(","))
    path.write_text("\n".join(lines) + "\n")


def _set_value(path: Path, column: str, value: str) -> None:
    """Rewrite the single-row CSV at ``path`` with ``column`` set to the raw text ``value``."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame[column] = value
    frame.to_csv(path, index=False)


@pytest.mark.realdata
def test_real_sample_converts_with_types_counts_and_linkage(real_sample: Path, tmp_path: Path):
    report = convert(real_sample, tmp_path / "tables", progress=False)
    assert {name: r.rows for name, r in report.tables.items()} == REAL_ROWS
    assert report.warnings == []
    for name, table in kaggle_schema().items():
        schema = pq.read_schema(tmp_path / "tables" / f"{name}.parquet")
        assert schema.names == table.column_names
        assert [schema.field(c.name).type for c in table.columns] == [
            ARROW_KINDS[c.kind] for c in table.columns
        ]
    descriptions = pd.read_parquet(tmp_path / "tables" / "column_descriptions.parquet")
    assert len(descriptions) == 219
    # cp1252's ellipsis (byte 0x85) decoded as text, not as a control character.
    assert descriptions["Description"].str.contains("…").sum() >= 2
    summary = summarize(tmp_path / "tables")
    assert summary["target_rate"] == pytest.approx(386 / 5000, abs=1e-4)
    assert summary["tables"]["application_train"]["sentinels"]["DAYS_EMPLOYED=365243"] == 904
    assert summary["tables"]["application_test"]["sentinels"]["DAYS_EMPLOYED=365243"] == 965
    # README: every child SK_ID_CURR is an application; every bureau_balance row has its bureau.
    orphans = summary["orphan_rows"]
    assert orphans["bureau.SK_ID_CURR -> application"] == 0
    assert orphans["bureau_balance.SK_ID_BUREAU -> bureau"] == 0
    assert orphans["POS_CASH_balance.SK_ID_PREV -> previous_application"] > 0  # as in Kaggle
    assert summary["clients_without_rows"]["application_train"]["bureau"] == pytest.approx(
        0.142, abs=1e-3
    )


def test_minimal_tables_convert_and_gzip_is_read(minimal_tables: Path, tmp_path: Path):
    plain = minimal_tables / "bureau.csv"
    with plain.open("rb") as source, gzip.open(minimal_tables / "bureau.csv.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    plain.unlink()
    report = convert(minimal_tables, tmp_path / "tables", progress=False)
    assert set(report.tables) == set(TABLE_NAMES)
    bureau = pd.read_parquet(tmp_path / "tables" / "bureau.parquet")
    assert bureau["SK_ID_BUREAU"].tolist() == [5000001]


def test_missing_file_is_named(minimal_tables: Path, tmp_path: Path):
    (minimal_tables / "bureau_balance.csv").unlink()
    with pytest.raises(DataValidationError, match=r"bureau_balance\.csv: file not found"):
        convert(minimal_tables, tmp_path / "tables", progress=False)


def test_missing_column_is_named(minimal_tables: Path, tmp_path: Path):
    _replace_in_header(minimal_tables / "bureau.csv", "AMT_CREDIT_SUM", "AMT_CREDIT_SUMM")
    with pytest.raises(DataValidationError) as error:
        convert(minimal_tables, tmp_path / "tables", progress=False)
    assert error.value.column == "AMT_CREDIT_SUM"
    assert "bureau.csv" in str(error.value) and "missing 1 expected column" in str(error.value)


@pytest.mark.parametrize(
    ("table", "column", "value", "expected"),
    [
        ("application_train", "AMT_INCOME_TOTAL", "lots", "expected a number"),
        ("bureau", "CREDIT_DAY_OVERDUE", "1.5", "expected an integer"),
        ("previous_application", "SK_ID_PREV", "abc", "expected an integer identifier"),
    ],
)
def test_wrong_kind_names_file_column_and_value(
    minimal_tables: Path, tmp_path: Path, table: str, column: str, value: str, expected: str
):
    _set_value(minimal_tables / f"{table}.csv", column, value)
    with pytest.raises(DataValidationError) as error:
        convert(minimal_tables, tmp_path / "tables", progress=False)
    assert error.value.column == column
    assert f"{table}.csv" in error.value.file
    assert expected in str(error.value) and value in str(error.value)


def test_empty_identifier_is_rejected(minimal_tables: Path, tmp_path: Path):
    _set_value(minimal_tables / "bureau.csv", "SK_ID_CURR", "")
    with pytest.raises(DataValidationError, match="identifier is empty") as error:
        convert(minimal_tables, tmp_path / "tables", progress=False)
    assert error.value.column == "SK_ID_CURR"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file"),
        (b"\x00\x01\x02,\x03\n", "binary content"),
        (b"just some words without commas\nmore words\n", "one column in header"),
    ],
)
def test_empty_or_non_csv_file(minimal_tables: Path, tmp_path: Path, content: bytes, expected):
    (minimal_tables / "bureau.csv").write_bytes(content)
    with pytest.raises(DataValidationError, match=expected):
        convert(minimal_tables, tmp_path / "tables", progress=False)


def test_corrupt_gzip_is_a_clear_error(minimal_tables: Path, tmp_path: Path):
    (minimal_tables / "bureau.csv").unlink()
    (minimal_tables / "bureau.csv.gz").write_bytes(b"not really gzip")
    with pytest.raises(DataValidationError, match="cannot be read"):
        convert(minimal_tables, tmp_path / "tables", progress=False)


def test_header_without_rows(minimal_tables: Path, tmp_path: Path):
    path = minimal_tables / "credit_card_balance.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataValidationError, match="header but no rows"):
        convert(minimal_tables, tmp_path / "tables", progress=False)


def test_extra_columns_and_unknown_categories_are_kept_with_a_warning(
    minimal_tables: Path, tmp_path: Path
):
    path = minimal_tables / "bureau.csv"
    header, row = path.read_text().splitlines()
    path.write_text(f"{header},MY_NOTE\n{row},hello\n")
    _set_value(minimal_tables / "bureau_balance.csv", "STATUS", "Z")
    report = convert(minimal_tables, tmp_path / "tables", progress=False)
    bureau = pd.read_parquet(tmp_path / "tables" / "bureau.parquet")
    assert bureau.columns[-1] == "MY_NOTE" and bureau["MY_NOTE"].tolist() == ["hello"]
    balance = pd.read_parquet(tmp_path / "tables" / "bureau_balance.parquet")
    assert balance["STATUS"].tolist() == ["Z"]
    assert any("MY_NOTE" in w for w in report.warnings)
    assert any("STATUS" in w and "'Z'" in w for w in report.warnings)


def test_failure_leaves_previous_tables_untouched(minimal_tables: Path, tmp_path: Path):
    dest = tmp_path / "tables"
    convert(minimal_tables, dest, progress=False)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    _set_value(minimal_tables / "application_train.csv", "AMT_CREDIT", "999.5")  # valid change
    _set_value(minimal_tables / "credit_card_balance.csv", "AMT_BALANCE", "oops")  # last table
    with pytest.raises(DataValidationError):
        convert(minimal_tables, dest, progress=False)
    after = {p.name: p.read_bytes() for p in dest.iterdir()}
    assert after == before  # nothing half-written, no staging folder left


def test_not_a_folder(tmp_path: Path):
    with pytest.raises(DataValidationError, match="is not a folder"):
        convert(tmp_path / "nowhere", tmp_path / "tables", progress=False)
