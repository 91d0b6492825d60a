"""Outcomes in bulk: the back office's file import and the demonstration's simulated labels.

``import_outcomes`` records a whole file of outcomes (decision_id, defaulted, observed_at) in
ONE transaction: an error anywhere (database gone, the process interrupted) leaves the log as
it was, and the file can simply be imported again: outcomes already recorded identically
count as unchanged. A file is checked entirely before anything is written, so a bad value
fails the import naming its line and column. An outcome never overwrites a different one:
those are counted as conflicting and listed, not applied.

``simulate_outcomes`` labels logged decisions of known clients, so that a fresh ``make up``
has realised figures to show. Like real life, only granted decisions get an outcome unless
asked otherwise (a refused client took no loan). The honest labels are the synthetic set's
held-out truth of its test applicants (``heldout_targets``: clients the model never trained
on, as a lender's new clients; source ``simulated``). Training clients' own TARGET
(``training_targets``) can label decisions too, but the model was fitted on them: those
outcomes are in sample (source ``simulated-train``) and flatter the realised figures.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from services.gateway.decisions import DecisionRow, OutcomeRow

COLUMNS = ("decision_id", "defaulted", "observed_at")
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}
BATCH = 1_000  # ids per IN (...) query: well under SQLite's and PostgreSQL's bind limits


class OutcomeFileError(ValueError):
    """The file cannot be imported (unreadable, a column missing, a bad value)."""


@dataclass
class ImportSummary:
    rows: int = 0
    new: int = 0
    unchanged: int = 0
    conflicting: int = 0
    unknown: int = 0
    # (decision_id, recorded, offered) of the first conflicts, for the operator to check.
    conflicts: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)


def ensure_outcomes_table(engine: Engine) -> None:
    """A log last opened by a gateway older than outcomes has no table for them yet."""
    OutcomeRow.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]


def _where(index: int, suffix: str) -> str:
    # CSV: the line in the file (the header is line 1); Parquet: the row, counted from 1.
    return f"line {index + 2}" if suffix == ".csv" else f"row {index + 1}"


def read_outcome_file(path: Path) -> pd.DataFrame:
    """The file's outcomes, checked: ``decision_id`` (str, canonical UUID), ``defaulted``
    (bool), ``observed_at`` (date, not in the future). Raises ``OutcomeFileError``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise OutcomeFileError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raise OutcomeFileError(f"{path}: expected a .csv or .parquet file")
    except OutcomeFileError:
        raise
    except Exception as error:  # pandas/pyarrow name the problem; no traceback for it
        raise OutcomeFileError(f"{path}: unreadable ({str(error).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise OutcomeFileError(
            f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})"
        )
    latest = (datetime.now(UTC) + timedelta(days=1)).date()
    ids, flags, dates = [], [], []
    for index, (raw_id, raw_flag, raw_date) in enumerate(
        zip(raw["decision_id"], raw["defaulted"], raw["observed_at"], strict=True)
    ):
        where = _where(index, suffix)
        try:
            ids.append(str(uuid.UUID(str(raw_id).strip())))
        except ValueError:
            raise OutcomeFileError(
                f"{path}, {where}: decision_id: expected a UUID, found {str(raw_id)[:40]!r}"
            ) from None
        flags.append(_flag(raw_flag, f"{path}, {where}"))
        observed = _date(raw_date, f"{path}, {where}")
        if observed > latest:
            raise OutcomeFileError(
                f"{path}, {where}: observed_at: {observed.isoformat()} is in the future"
            )
        dates.append(observed)
    return pd.DataFrame({"decision_id": ids, "defaulted": flags, "observed_at": dates})


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise OutcomeFileError(f"{where}: defaulted: expected true/false or 1/0, found {text[:40]!r}")


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise OutcomeFileError(
            f"{where}: observed_at: expected a date (YYYY-MM-DD), found {str(value)[:40]!r}"
        ) from None


def import_outcomes(
    engine: Engine,
    outcomes: pd.DataFrame,
    *,
    key_id: str = "import",
    archive_dir: Path | None = None,
    batch_size: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
    keep: int = 20,
) -> ImportSummary:
    """Records ``outcomes`` (from ``read_outcome_file``) in one transaction; see the module
    docstring. ``on_batch`` is told the rows of each batch done (a progress bar)."""
    summary = ImportSummary(rows=len(outcomes))
    ensure_outcomes_table(engine)
    reported_at = datetime.now(UTC)
    seen: dict[str, tuple[bool, date]] = {}  # what this file recorded so far (duplicates)
    with engine.begin() as connection:
        for start in range(0, len(outcomes), batch_size):
            chunk = outcomes.iloc[start : start + batch_size]
            ids = list(dict.fromkeys(chunk["decision_id"]))
            real = {
                decision_id
                for decision_id, simulation in connection.execute(
                    select(DecisionRow.decision_id, DecisionRow.simulation).where(
                        DecisionRow.decision_id.in_(ids)
                    )
                )
                if not simulation
            }
            if archive_dir is not None:  # archived decisions still take outcomes
                from services.gateway.archive import find_archived

                for decision_id in set(ids) - real - set(seen):
                    found = find_archived(archive_dir, decision_id)
                    if found is not None and not found.simulation:
                        real.add(decision_id)
            recorded = {
                row.decision_id: (row.defaulted, row.observed_at)
                for row in connection.execute(
                    select(OutcomeRow).where(OutcomeRow.decision_id.in_(ids))
                )
            }
            recorded.update(seen)
            new_rows = []
            for decision_id, defaulted, observed_at in chunk.itertuples(index=False):
                offered = (bool(defaulted), observed_at)
                if decision_id in recorded:
                    if recorded[decision_id] == offered:
                        summary.unchanged += 1
                    else:
                        summary.conflicting += 1
                        if len(summary.conflicts) < keep:
                            was = recorded[decision_id]
                            summary.conflicts.append(
                                (
                                    decision_id,
                                    {"defaulted": was[0], "observed_at": was[1].isoformat()},
                                    {
                                        "defaulted": offered[0],
                                        "observed_at": observed_at.isoformat(),
                                    },
                                )
                            )
                elif decision_id in real or decision_id in seen:
                    summary.new += 1
                    recorded[decision_id] = seen[decision_id] = offered
                    new_rows.append(
                        {
                            "decision_id": decision_id,
                            "defaulted": offered[0],
                            "observed_at": observed_at,
                            "reported_at": reported_at,
                            "key_id": key_id,
                            "source": "import",
                        }
                    )
                else:
                    summary.unknown += 1
                    if len(summary.unknown_ids) < keep:
                        summary.unknown_ids.append(decision_id)
            if new_rows:
                connection.execute(insert(OutcomeRow), new_rows)
            if on_batch is not None:
                on_batch(len(chunk))
    return summary


SIMULATED, SIMULATED_TRAIN = "simulated", "simulated-train"
HELDOUT_TABLE = "application_test_target.parquet"  # training.loader.HELDOUT_TARGET


@dataclass
class SimulationSummary:
    labelled: int = 0
    defaulted: int = 0
    in_sample: int = 0  # of the labelled: training clients (source simulated-train)
    refused_skipped: int = 0
    unknown_client: int = 0  # new applications, or clients whose truth is not at hand


def training_targets(tables_dir: Path) -> pd.Series:
    """TARGET by SK_ID_CURR of the training clients (application_train)."""
    table = Path(tables_dir) / "application_train.parquet"
    if not table.is_file():
        raise FileNotFoundError(f"no {table}: run `make data` first")
    frame = pd.read_parquet(table, columns=["SK_ID_CURR", "TARGET"])
    return frame.set_index("SK_ID_CURR")["TARGET"].astype(int)


def heldout_targets(tables_dir: Path) -> pd.Series:
    """TARGET by SK_ID_CURR of the test applicants, held out by the synthetic generator (a
    real Kaggle folder has none: FileNotFoundError)."""
    table = Path(tables_dir) / HELDOUT_TABLE
    if not table.is_file():
        raise FileNotFoundError(
            f"no {table}: the test applicants' truth comes with the synthetic set only (run "
            "`credit data prepare --force` to regenerate it; with real data, "
            "--training-clients labels training clients, in sample)"
        )
    frame = pd.read_parquet(table, columns=["SK_ID_CURR", "TARGET"])
    return frame.set_index("SK_ID_CURR")["TARGET"].astype(int)


def simulate_outcomes(
    engine: Engine,
    targets: pd.Series,
    *,
    include_refused: bool = False,
    observed_at: date | None = None,
    in_sample: pd.Index | None = None,
) -> SimulationSummary:
    """Labels every real decision of a client with a known TARGET that has no outcome yet
    (source ``simulated``; ``simulated-train`` for clients in ``in_sample``, the training
    clients): granted ones only unless ``include_refused``."""
    summary = SimulationSummary()
    ensure_outcomes_table(engine)
    observed = observed_at or datetime.now(UTC).date()
    query = (
        select(DecisionRow.decision_id, DecisionRow.client_id, DecisionRow.decision)
        .outerjoin(OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id)
        .where(DecisionRow.simulation.is_(False), OutcomeRow.decision_id.is_(None))
    )
    now = datetime.now(UTC)
    with engine.begin() as connection:
        rows = []
        for decision_id, client_id, decision in connection.execute(query):
            if client_id is None or client_id not in targets.index:
                summary.unknown_client += 1
                continue
            if decision != "granted" and not include_refused:
                summary.refused_skipped += 1
                continue
            defaulted = bool(targets.at[client_id])
            trained_on = in_sample is not None and client_id in in_sample
            summary.labelled += 1
            summary.defaulted += defaulted
            summary.in_sample += trained_on
            rows.append(
                {
                    "decision_id": decision_id,
                    "defaulted": defaulted,
                    "observed_at": observed,
                    "reported_at": now,
                    "key_id": "simulate",
                    "source": SIMULATED_TRAIN if trained_on else SIMULATED,
                }
            )
        for start in range(0, len(rows), BATCH):
            connection.execute(insert(OutcomeRow), rows[start : start + BATCH])
    return summary
