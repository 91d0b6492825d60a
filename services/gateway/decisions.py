"""The decision log: every decision the gateway returns, committed before it is returned.

SQLAlchemy 2 with a synchronous engine on a thread of the log's own: the async engine needs
greenlet (and aiosqlite for SQLite), which this environment lacks; the event loop is never
blocked either way. SQLite by default, PostgreSQL in production. Decisions are written with
one Core ``INSERT`` per group commit (the ORM's unit of work cost more than the fsync) and
their feature vectors encoded by orjson.

With SQLite, WAL checkpoints (copying committed pages into the database file, then an
fsync of it) run on a thread of their own every second, not inside a commit: SQLite's
automatic checkpoint made the decision that crossed 1,000 WAL pages wait for it, ~100 ms of
stall every ~400 decisions. Decision ids are UUIDv7 (time-ordered): each insert lands at the
right edge of the primary-key index instead of on a random page of it.

A registered challenger's shadow score of a decision (model version, probability, decision)
goes into ``shadow_scores``, in the decision's transaction; it is never returned to partners.

A refusal granted by the exploration share (``GATEWAY_EXPLORATION_SHARE``, off by default)
is logged as granted and listed in ``decision_explorations``.

Simulations (dashboard what-ifs) are logged too, flagged ``simulation=True``, so the audit
trail shows what an advisor tried; they never count as decisions (metrics, default list).

Outcomes (did the client default?) arrive months after the decision, from partners
(``PUT /v1/decisions/{id}/outcome``) or the back office (``credit outcomes import``). They live
in a table of their own, ``outcomes``, keyed by decision id and created when absent: a log
written by an earlier version gains it without touching ``decisions``, and an outcome
survives its decision's move into the Parquet archive (hence no foreign key).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog
import uuid6
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Index,
    String,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.concurrency import run_in_threadpool

from services.gateway.metrics import DECISION_COMMITS, DECISION_LOG_FAILURES, DECISIONS_PER_COMMIT

log = structlog.get_logger(__name__)
CHECKPOINT_SECONDS = 1.0
WAL_RESTART_FRAMES = 8192  # pages (4 KiB): ~6 s of decisions at ~900/s
PASSIVE_ROUNDS = 12
QUIET_SECONDS = 0.001


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_created_at", "created_at"),)

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    application_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Double)
    decision: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Double)
    simulation: Mapped[bool] = mapped_column(Boolean, default=False)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutcomeRow(Base):
    """What became of a decision's loan: one outcome per decision, never overwritten."""

    __tablename__ = "outcomes"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    defaulted: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[date] = mapped_column(Date)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The reporting key: once keys belong to partners (tenants), whose outcome this is.
    key_id: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))  # api | import | simulated


class ActorRow(Base):
    """Who acted behind a shared key: the advisor the dashboard signed in (``X-Advisor``).
    A table of its own, created when absent like ``outcomes``: a log of an earlier version
    needs no migration, and the attribution survives the decision's archiving."""

    __tablename__ = "decision_actors"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    advisor: Mapped[str] = mapped_column(String(64))


class ShadowRow(Base):
    """The challenger's score of a decision, made in shadow (never returned to the partner):
    the material of ``credit challenger report`` before a promotion. A table of its own,
    created when absent like ``outcomes`` (a log of an earlier version needs no migration),
    kept when its decision is archived."""

    __tablename__ = "shadow_scores"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    probability: Mapped[float] = mapped_column(Double)
    decision: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Double)


class ExplorationRow(Base):
    """A would-be refusal the gateway's exploration share granted (``EXPLORATION_SHARE``): its
    outcome is known although the model refused, so realised figures of that slice carry no
    selection bias (``credit performance report``). A table of its own, created when absent
    like ``outcomes``; kept when its decision is archived."""

    __tablename__ = "decision_explorations"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)


# Built once: a statement built per write had its cache key computed again every time.
INSERT = insert(DecisionRow)
INSERT_EXPLORATION = insert(ExplorationRow)
INSERT_ACTOR = insert(ActorRow)
INSERT_SHADOW = insert(ShadowRow)
OutcomeStatus = Literal["new", "unchanged", "conflicting"]


@dataclass(frozen=True)
class Outcome:
    decision_id: str
    defaulted: bool
    observed_at: date
    reported_at: datetime
    key_id: str
    source: str

    def same_as(self, other: Outcome) -> bool:
        return (self.defaulted, self.observed_at) == (other.defaulted, other.observed_at)


class UnknownDecision(Exception):
    """No decision with this id, in the log's table or its archive."""

    def __init__(self, decision_id: str) -> None:
        super().__init__(f"unknown decision {decision_id}")
        self.decision_id = decision_id


class OutcomeConflict(Exception):
    """A different outcome is already recorded for this decision (outcomes are never
    overwritten: a correction is a back-office act, not a retry)."""

    def __init__(self, recorded: Outcome) -> None:
        super().__init__(
            f"decision {recorded.decision_id} already has the outcome defaulted="
            f"{str(recorded.defaulted).lower()} observed {recorded.observed_at.isoformat()}"
        )
        self.recorded = recorded


class SimulationOutcome(Exception):
    """A what-if (simulation) granted no loan: it can have no outcome."""

    def __init__(self, decision_id: str) -> None:
        super().__init__(f"decision {decision_id} is a simulation (what-if): no loan, no outcome")
        self.decision_id = decision_id


def record_outcome(connection: Connection, outcome: Outcome) -> tuple[OutcomeStatus, Outcome]:
    """Inserts ``outcome`` unless one is recorded: ("new", it), ("unchanged", the recorded
    one) or ("conflicting", the recorded one). Inside the caller's transaction; a concurrent
    insert of the same id is caught by the primary key and compared like any other."""
    found = connection.execute(
        select(OutcomeRow).where(OutcomeRow.decision_id == outcome.decision_id)
    ).first()
    if found is None:
        try:
            with connection.begin_nested():  # a savepoint: a lost race keeps the transaction
                connection.execute(insert(OutcomeRow), [vars(outcome)])
            return "new", outcome
        except IntegrityError:
            found = connection.execute(
                select(OutcomeRow).where(OutcomeRow.decision_id == outcome.decision_id)
            ).one()
    recorded = Outcome(
        decision_id=found.decision_id,
        defaulted=found.defaulted,
        observed_at=found.observed_at,
        reported_at=as_utc(found.reported_at),
        key_id=found.key_id,
        source=found.source,
    )
    return ("unchanged" if recorded.same_as(outcome) else "conflicting"), recorded


@dataclass(frozen=True)
class ShadowScore:
    """What the challenger would have decided (model version, probability, decision at its
    own threshold)."""

    model_version: str
    probability: float
    decision: str
    threshold: float


@dataclass(frozen=True)
class Decision:
    decision_id: str
    created_at: datetime
    key_id: str
    client_id: int | None
    application_hash: str | None
    model_version: str
    probability: float
    decision: str
    threshold: float
    simulation: bool
    features: dict[str, Any]
    advisor: str | None = None  # the signed-in advisor behind the dashboard's key
    shadow: ShadowScore | None = None  # the challenger's score (table shadow_scores)
    exploration: bool = False  # granted by the exploration share (table decision_explorations)

    @staticmethod
    def new(**fields: Any) -> Decision:
        return Decision(decision_id=str(uuid6.uuid7()), created_at=datetime.now(UTC), **fields)


SIDE_FIELDS = frozenset(
    {"advisor", "shadow", "exploration"}
)  # Decision fields kept in tables of their own


def as_utc(created: datetime) -> datetime:
    """A stored decision time, with its offset: SQLite keeps none, and every time the log
    writes is UTC."""
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)


def _from_row(row: DecisionRow) -> Decision:
    """The table's columns are the decision's fields, but for those kept in tables of their
    own (``SIDE_FIELDS``); tests/test_gateway_decisions.py checks the two agree."""
    fields = {column.key: getattr(row, column.key) for column in DecisionRow.__table__.columns}
    return Decision(**{**fields, "created_at": as_utc(row.created_at)})


def _sqlite_wal(connection: Any, _record: Any) -> None:
    # WAL with synchronous=FULL still syncs every commit to disk before it returns (the log
    # stays durable), with one fsync instead of the rollback journal's several: ~1 ms
    # instead of ~5 ms per decision here.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # the log's checkpoint thread does them
    cursor.close()


class DecisionLog:
    def __init__(
        self,
        url: str,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        restart_frames: int = WAL_RESTART_FRAMES,
        archive_dir: Path | None = None,
    ) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True, json_serializer=_json)
        self.archive_dir = archive_dir  # where services.gateway.archive moved old decisions
        self._checkpoint_seconds = checkpoint_seconds
        self._restart_frames = restart_frames
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_wal)
            self._checkpointer = threading.Thread(
                target=self._checkpoint_until_closed, name="decision-log-checkpoint", daemon=True
            )
        # Group commit: decisions waiting while a transaction commits go together into the
        # next one (one fsync for many), each caller answered only once its own is durable.
        self._pending: list[tuple[list[Decision], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # One writer thread is all group commit needs, and cheaper to reach than anyio's
        # shared threadpool; reads keep using that pool.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decision-log")

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    def open(self) -> None:
        """Creates the tables if missing and starts the checkpoint thread (SQLite)."""
        self.create_tables()
        if self._checkpointer is not None and not self._checkpointer.is_alive():
            self._checkpointer.start()

    def _checkpoint_until_closed(self) -> None:
        # PASSIVE copies committed pages without blocking the writer or readers, and once
        # the whole WAL is in the database the next commit starts the WAL over by itself.
        # One PASSIVE copies only what was committed when it began, so a busy writer stays
        # ahead of it: more rounds, each copying what came in during the last, catch up in a
        # gap between two commits (a round finding nothing new is confirmed 1 ms later: a
        # commit under way then would append to the WAL). A writer that never pauses (the
        # WAL grew to 250 MB) defeats them: once the WAL holds ``restart_frames`` pages, a
        # RESTART resets it, making the writer wait (up to ~13 ms at 1,000 decisions/s).
        while not self._closing.wait(self._checkpoint_seconds):
            try:
                with self.engine.connect() as connection:
                    previous, quiet = -1, False
                    for _ in range(PASSIVE_ROUNDS):
                        _, frames, _ = connection.execute(
                            text("PRAGMA wal_checkpoint(PASSIVE)")
                        ).one()
                        if frames < previous:
                            break  # a commit has already started the WAL over
                        if frames == previous:
                            if quiet:
                                break  # nothing new twice: no commit was under way either
                            quiet = True
                            time.sleep(QUIET_SECONDS)  # longer than a commit takes
                            continue
                        previous, quiet = frames, False
                    if frames >= self._restart_frames:  # not started over for a while
                        connection.execute(text("PRAGMA wal_checkpoint(RESTART)"))
            except Exception as error:  # a missed checkpoint only lets the WAL grow
                log.warning("decision_log_checkpoint_failed", error=str(error))

    def _write(self, decisions: list[Decision]) -> None:
        started = time.perf_counter()
        rows = [vars(d) for d in decisions]
        actors = [
            {"decision_id": r["decision_id"], "advisor": r["advisor"]} for r in rows if r["advisor"]
        ]
        shadows = [
            {"decision_id": d.decision_id, **vars(d.shadow)}
            for d in decisions
            if d.shadow is not None
        ]
        with self.engine.begin() as connection:  # one transaction: all or nothing
            connection.execute(
                INSERT, [{k: v for k, v in r.items() if k not in SIDE_FIELDS} for r in rows]
            )
            if actors:
                connection.execute(INSERT_ACTOR, actors)
            if shadows:
                connection.execute(INSERT_SHADOW, shadows)
            explored = [{"decision_id": d.decision_id} for d in decisions if d.exploration]
            if explored:
                connection.execute(INSERT_EXPLORATION, explored)
        DECISION_COMMITS.observe(time.perf_counter() - started)
        DECISIONS_PER_COMMIT.observe(len(decisions))

    def _get(self, decision_id: str) -> Decision | None:
        with Session(self.engine) as session:
            row = session.get(DecisionRow, decision_id)
            found = None if row is None else _from_row(row)
            actor = session.get(ActorRow, decision_id)
            explored = session.get(ExplorationRow, decision_id) is not None
        if found is None and self.archive_dir is not None:
            from services.gateway.archive import find_archived  # pyarrow only on this path

            found = find_archived(self.archive_dir, decision_id)
        if found is not None and actor is not None:
            found = dataclasses.replace(found, advisor=actor.advisor)
        if found is not None and explored:
            found = dataclasses.replace(found, exploration=True)
        return found

    def _shadow(self, decision_id: str) -> ShadowScore | None:
        with Session(self.engine) as session:
            row = session.get(ShadowRow, decision_id)
        if row is None:
            return None
        return ShadowScore(
            model_version=row.model_version,
            probability=row.probability,
            decision=row.decision,
            threshold=row.threshold,
        )

    async def shadow(self, decision_id: str) -> ShadowScore | None:
        """The challenger's shadow score of a decision, if one was logged (for reports and
        tests; the API never returns it)."""
        return await run_in_threadpool(self._shadow, decision_id)

    def _recent(
        self,
        limit: int,
        simulations: bool,
        client_id: int | None = None,
        key_ids: list[str] | None = None,
    ) -> list[Decision]:
        query = select(DecisionRow).order_by(DecisionRow.created_at.desc()).limit(limit)
        if not simulations:
            query = query.where(DecisionRow.simulation.is_(False))
        if client_id is not None:
            query = query.where(DecisionRow.client_id == client_id)
        if key_ids is not None:  # one partner's decisions (tenancy)
            query = query.where(DecisionRow.key_id.in_(key_ids))
        with Session(self.engine) as session:
            return [_from_row(row) for row in session.scalars(query)]

    async def write(self, decisions: list[Decision]) -> None:
        """Returns once ``decisions`` are committed: the caller answers only after. One
        writer at a time (SQLite would otherwise make concurrent writers sleep and retry),
        each transaction carrying every decision that arrived meanwhile."""
        if not decisions:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((decisions, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._write, [d for group, _ in batch for d in group]
                )
            except Exception as error:  # nothing of this batch is durable: all callers fail
                DECISION_LOG_FAILURES.inc()
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def get(self, decision_id: str) -> Decision | None:
        return await run_in_threadpool(self._get, decision_id)

    def _report_outcome(self, outcome: Outcome) -> tuple[OutcomeStatus, Outcome]:
        decision = self._get(outcome.decision_id)
        if decision is None:
            raise UnknownDecision(outcome.decision_id)
        if decision.simulation:
            raise SimulationOutcome(outcome.decision_id)
        with self.engine.begin() as connection:
            return record_outcome(connection, outcome)

    async def report_outcome(self, outcome: Outcome) -> tuple[OutcomeStatus, Outcome]:
        """Records a decision's outcome once: "new" or "unchanged" (the same outcome again);
        raises ``UnknownDecision``, ``SimulationOutcome`` or ``OutcomeConflict``."""
        status, recorded = await run_in_threadpool(self._report_outcome, outcome)
        if status == "conflicting":
            raise OutcomeConflict(recorded)
        return status, recorded

    async def recent(
        self,
        limit: int,
        simulations: bool = False,
        client_id: int | None = None,
        key_ids: list[str] | None = None,
    ) -> list[Decision]:
        """Newest first; only ``client_id``'s when given, only those made by ``key_ids``
        when given (decisions still in the table, not archived ones)."""
        return await run_in_threadpool(self._recent, limit, simulations, client_id, key_ids)

    def close(self) -> None:
        self._writer.shutdown(wait=True)  # a write in progress completes
        self._closing.set()
        if self._checkpointer is not None and self._checkpointer.is_alive():
            self._checkpointer.join()
        self.engine.dispose()  # the last connection closed checkpoints the rest


def _json(value: Any) -> str:
    numeric = value.get("numeric", {}) if isinstance(value, dict) else {}
    # The sum is finite only if every value is (an overflow merely takes the slow path).
    if math.isfinite(sum(numeric.values())):
        return orjson.dumps(value).decode()
    return json.dumps(value)  # orjson would write an infinity as null: keep what was used
