"""Shared fixtures: the real Kaggle sample (when present) and tiny schema-valid CSV sets."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from serving_core.schema import TABLE_NAMES, kaggle_schema

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
REAL_SAMPLE = Path(
    os.environ.get("HOME_CREDIT_SAMPLE", REPO.parent / "shared" / "data" / "home-credit")
)


def missing_service(reason: str, *, module_level: bool = False) -> None:
    """A service or tool a test needs is absent: skip on a developer's machine, but fail in
    CI, where `.ci/run` and `make test` install and start everything (a skip there would
    hide a broken set-up behind a green run)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it)", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy, and return that; fail the test after
    ``timeout`` seconds (a bound for a slow machine, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(every)


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real linked Kaggle subset; tests using it skip when it is not on this machine."""
    if not (REAL_SAMPLE / "application_train.csv.gz").is_file():
        pytest.skip(f"real Home Credit sample not found at {REAL_SAMPLE} (set HOME_CREDIT_SAMPLE)")
    return REAL_SAMPLE


def _value(table: str, column: str, kind: str, categories: tuple[str, ...]) -> str:
    keys = {"SK_ID_CURR": "100001", "SK_ID_BUREAU": "5000001", "SK_ID_PREV": "2000001"}
    if column in keys:
        return keys[column]
    if kind == "int":
        return "0"
    if kind == "float":
        return "1.5"
    return categories[0]


def write_minimal_tables(folder: Path) -> Path:
    """One linked, schema-valid row per Kaggle table, as plain CSV files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in kaggle_schema().items():
        if name not in TABLE_NAMES:
            continue
        row = [_value(name, c.name, c.kind, c.categories) for c in table.columns]
        if name == "application_test":
            row[0] = "100002"
        with (folder / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.column_names)
            writer.writerow(row)
    return folder


@pytest.fixture
def minimal_tables(tmp_path: Path) -> Path:
    return write_minimal_tables(tmp_path / "source")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A decision log on each engine it runs on: a SQLite file in a folder that does not
    exist yet (the log creates it), and a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'decisions.db'}"
    else:
        from tests.test_gateway_support import postgres_database

        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """The real local stack (model, feature store, gRPC servers); built once per session."""
    from tests.stack import build_stack

    built = build_stack(tmp_path_factory.mktemp("stack"))
    yield built
    built.stop()
