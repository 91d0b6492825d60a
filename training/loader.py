"""Kaggle CSVs -> typed Parquet, checked against the schema, all-or-nothing.

``convert(source, dest)`` reads the eight Home Credit tables (``.csv`` or ``.csv.gz``) from
``source``, checks every expected column and its kind, streams each file into
``dest/<table>.parquet`` with fixed Arrow types, and only then swaps the new files into
place: a failure on any table leaves ``dest`` exactly as it was.

Values are not changed on conversion (the Kaggle sentinels stay in the typed tables and are
counted by the quality summary); what a column *is* is fixed here once, so every later step
reads the same types whatever produced the CSV.

The synthetic set's held-out truth of its test applicants (``HELDOUT_TARGET``: SK_ID_CURR,
TARGET; see ``training/synthetic/generate.py``) travels with the tables as
``dest/application_test_target.parquet`` when the source has it; no job trains on it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import structlog
from rich.progress import Progress

from serving_core.schema import (
    DESCRIPTION_FILE,
    TABLE_NAMES,
    Kind,
    Table,
    find_table_file,
    kaggle_schema,
)

log = structlog.get_logger(__name__)
# The synthetic generator's truth of its test applicants (a real Kaggle folder has none).
HELDOUT_TARGET = "application_test_target"

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "id": pa.int64(),
    "int": pa.int64(),
    "float": pa.float64(),
    "category": pa.string(),
}
KIND_WORDS: dict[Kind, str] = {
    "id": "an integer identifier",
    "int": "an integer",
    "float": "a number",
    "category": "a text category",
}
BLOCK_SIZE = 32 << 20  # bytes of CSV per streamed batch: bounds memory on 27 M-row tables
_ARROW_COLUMN_ERROR = re.compile(
    r"CSV column #(\d+):(?: Row #(\d+):)? CSV conversion error to (\w+): (.*)"
)


class DataValidationError(ValueError):
    """A source file does not match the Kaggle schema; names the file and the column."""

    def __init__(self, file: Path | str, message: str, column: str | None = None) -> None:
        self.file = str(file)
        self.column = column
        where = f"{self.file}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


@dataclass
class TableReport:
    table: str
    source: str
    rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    unknown_categories: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ConversionReport:
    source: str
    dest: str
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        notes = []
        for report in self.tables.values():
            if report.extra_columns:
                notes.append(
                    f"{report.source}: extra columns kept as found: {report.extra_columns}"
                )
            for column, values in report.unknown_categories.items():
                notes.append(
                    f"{report.source}, column {column}: categories not in the Kaggle "
                    f"schema kept as found: {values[:10]}"
                )
        return notes


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file, or a clear error for empty, binary or broken files."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as raw:
            first = raw.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataValidationError(path, f"cannot be read as a CSV file ({exc})") from exc
    if not first.strip():
        raise DataValidationError(path, "is empty (no header line)")
    if b"\x00" in first:
        raise DataValidationError(path, "is not a CSV text file (binary content)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(path, "is not a CSV text file (not UTF-8 text)") from exc
    header = next(csv.reader(io.StringIO(text)))
    names = [name.strip() for name in header]
    if len(names) < 2:
        raise DataValidationError(path, "is not a comma-separated file (one column in header)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataValidationError(path, f"has duplicated columns {duplicates}")
    return names


def _column_types(table: Table, header: list[str], path: Path) -> dict[str, pa.DataType]:
    missing = [name for name in table.column_names if name not in header]
    if missing:
        raise DataValidationError(
            path,
            f"missing {len(missing)} expected column(s) of table {table.name}: {missing}",
            column=missing[0],
        )
    return {c.name: ARROW_TYPES[c.kind] for c in table.columns}


def _explain_arrow_error(
    exc: pa.ArrowInvalid, path: Path, header: list[str], table: Table
) -> DataValidationError:
    match = _ARROW_COLUMN_ERROR.search(str(exc))
    if not match:
        return DataValidationError(path, f"is not a valid CSV file ({exc})")
    name = header[int(match.group(1))]
    row = f" (line {match.group(2)})" if match.group(2) else ""
    value = match.group(4)
    kind = table.column(name).kind if name in table.by_name else "float"
    return DataValidationError(
        path, f"expected {KIND_WORDS[kind]} in every row, found {value}{row}", column=name
    )


def _batches(path: Path, table: Table, header: list[str]) -> Iterator[pa.RecordBatch]:
    convert_options = pa_csv.ConvertOptions(
        column_types=_column_types(table, header, path),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        stream = pa.input_stream(str(path), compression="detect")
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=BLOCK_SIZE),
            convert_options=convert_options,
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        raise _explain_arrow_error(exc, path, header, table) from exc
    except OSError as exc:
        raise DataValidationError(path, f"cannot be read ({exc})") from exc


def _check_batch(batch: pa.RecordBatch, table: Table, path: Path, report: TableReport) -> None:
    for column in table.columns:
        values = batch.column(column.name)
        if column.kind == "id" and values.null_count:
            raise DataValidationError(path, "identifier is empty in some rows", column.name)
        if column.kind == "category" and column.categories:
            found = pc.unique(values.drop_null()).to_pylist()
            unknown = sorted(set(found) - set(column.categories))
            if unknown:
                known = report.unknown_categories.setdefault(column.name, [])
                known.extend(v for v in unknown if v not in known)


def convert_table(table: Table, path: Path, target: Path, progress: Progress | None) -> TableReport:
    """Stream one CSV into one typed Parquet file at ``target``."""
    header = read_header(path)
    report = TableReport(table=table.name, source=str(path))
    report.extra_columns = [name for name in header if name not in table.by_name]
    task = progress.add_task(f"{table.name}", total=None) if progress else None
    writer: pq.ParquetWriter | None = None
    try:
        for batch in _batches(path, table, header):
            _check_batch(batch, table, path, report)
            # Kaggle column order first, then extras as found.
            ordered = batch.select(table.column_names + report.extra_columns)
            if writer is None:
                writer = pq.ParquetWriter(target, ordered.schema, compression="zstd")
            writer.write_batch(ordered)
            report.rows += ordered.num_rows
            if progress and task is not None:
                progress.update(task, advance=ordered.num_rows, description=table.name)
    finally:
        if writer is not None:
            writer.close()
    if report.rows == 0:
        raise DataValidationError(path, "has a header but no rows")
    if report.extra_columns:
        log.warning("extra_columns_kept", file=str(path), columns=report.extra_columns)
    for column, values in report.unknown_categories.items():
        log.warning("unknown_categories_kept", file=str(path), column=column, values=values[:10])
    return report


def _convert_descriptions(source: Path, staging: Path) -> None:
    path = source / DESCRIPTION_FILE
    if not path.is_file():
        return
    # Kaggle ships this one file in cp1252 (a latin-1 superset: 0x85 is "…"), unlike the
    # UTF-8 data files; plain latin-1 is the fallback for bytes cp1252 leaves undefined.
    raw = path.read_bytes()
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    table = pa_csv.read_csv(io.BytesIO(text.encode("utf-8")))
    pq.write_table(table, staging / "column_descriptions.parquet")


def convert(
    source: Path, dest: Path, *, tables: tuple[str, ...] = TABLE_NAMES, progress: bool = True
) -> ConversionReport:
    """Convert every table of ``source`` into ``dest``; all tables or none are replaced."""
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise DataValidationError(source, "is not a folder")
    schema = kaggle_schema()
    paths = {}
    for name in tables:
        try:
            paths[name] = find_table_file(source, name)
        except FileNotFoundError as exc:
            raise DataValidationError(source / f"{name}.csv", "file not found") from exc
    dest.mkdir(parents=True, exist_ok=True)
    report = ConversionReport(source=str(source), dest=str(dest))
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
    try:
        with Progress(disable=not progress, transient=False) as bar:
            for name, path in paths.items():
                report.tables[name] = convert_table(
                    schema[name], path, staging / f"{name}.parquet", bar if progress else None
                )
        _convert_descriptions(source, staging)
        heldout = source / f"{HELDOUT_TARGET}.csv"
        if heldout.is_file():
            truth = pa_csv.read_csv(
                heldout,
                convert_options=pa_csv.ConvertOptions(
                    column_types={"SK_ID_CURR": pa.int64(), "TARGET": pa.int64()}
                ),
            )
            pq.write_table(
                truth.select(["SK_ID_CURR", "TARGET"]),
                staging / heldout.with_suffix(".parquet").name,
            )
        else:  # no truth of another data set's test applicants left behind
            (dest / f"{HELDOUT_TARGET}.parquet").unlink(missing_ok=True)
        for produced in staging.iterdir():
            produced.replace(dest / produced.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "converted",
        source=str(source),
        dest=str(dest),
        rows={name: r.rows for name, r in report.tables.items()},
    )
    return report
