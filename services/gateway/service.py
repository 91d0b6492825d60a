"""The gateway's domain layer: what a request means, apart from HTTP.

Routes (``routes.py``) parse, authorise and delegate here; this module calls the backends,
builds and logs decisions, counts them, and maps replies through ``converters``. It knows
nothing of FastAPI: the same calls serve any other transport.

Invariants, tested in tests/test_gateway*.py:
* a decision is durable (``DecisionLog.write`` committed) before its score is returned;
* simulations are logged but never counted in ``credit_decisions_total``;
* a logged decision is explained from its own logged inputs and model version;
* a model version is the champion's or a canonical registered number ("7", never "07");
* with an exploration share (``GATEWAY_EXPLORATION_SHARE``, 0 by default) that share of
  would-be refusals, drawn from the decision id's hash, is granted and flagged
  ``exploration`` in the log (never a simulation, never a review).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from credit.v1 import explainer_pb2, scoring_pb2
from services.gateway import converters, schemas
from services.gateway.backends import Backends
from services.gateway.decisions import Decision, DecisionLog, Outcome
from services.gateway.errors import ApiError
from services.gateway.keys import ApiKey
from services.gateway.metrics import DECISIONS, EXPLORATION_GRANTS, PROBABILITIES
from services.gateway.profile import build_profile

CANONICAL_VERSION = re.compile(r"[1-9][0-9]{0,9}")  # MLflow registry versions
NEIGHBOURS_K = 30  # the explainer's fixed group size (services/explainer/population.py)


def application_hash(application: schemas.Application) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, absent fields omitted)."""
    canonical = json.dumps(
        application.model_dump(mode="json", exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def explored(decision_id: str, share: float) -> bool:
    """Whether the exploration share grants this would-be refusal: a deterministic draw from
    the decision id's hash (the same id, the same answer), true for ``share`` of ids."""
    if share <= 0:
        return False
    draw = int.from_bytes(hashlib.sha256(decision_id.encode()).digest()[:8], "big")
    return draw < share * 2**64


@dataclass(frozen=True)
class Caller:
    """Who acts: the API key, and the advisor behind it when the dashboard calls."""

    key: ApiKey
    advisor: str | None = None


def _count(decisions: Sequence[Decision]) -> None:
    for decision in decisions:
        if not decision.simulation:
            DECISIONS.labels(decision.decision).inc()
            PROBABILITIES.observe(decision.probability)
            if decision.exploration:
                EXPLORATION_GRANTS.inc()


class CreditService:
    """Scores, explanations, profiles and the decision log, over the two gRPC backends."""

    def __init__(
        self, backends: Backends, log: DecisionLog, max_batch: int, exploration_share: float = 0.0
    ) -> None:
        self.backends = backends
        self.log = log
        self.max_batch = max_batch
        self.exploration_share = exploration_share

    # --- decisions ---------------------------------------------------------------------

    def _decision(
        self,
        reply: scoring_pb2.ScoreResponse,
        names: Sequence[str],
        caller: Caller,
        simulation: bool,
        app_hash: str | None = None,
    ) -> Decision:
        decision = Decision.new(
            advisor=caller.advisor,
            key_id=caller.key.id,
            client_id=reply.client_id if reply.HasField("client_id") else None,
            application_hash=app_hash,
            model_version=reply.model_version,
            probability=reply.probability,
            decision=converters.decision_name(reply.decision),
            threshold=reply.threshold,
            simulation=simulation,
            features=converters.logged_features(reply.inputs, names),
            shadow=converters.shadow(reply),  # logged, never returned
        )
        if (
            decision.decision == "refused"
            and not simulation
            and explored(decision.decision_id, self.exploration_share)
        ):
            decision = dataclasses.replace(decision, decision="granted", exploration=True)
        return decision

    async def score(self, body: schemas.ScoreRequest, caller: Caller) -> schemas.Score:
        """Score a known client or a new application; the decision is logged (committed)
        before it is returned."""
        if (body.client_id is None) == (body.application is None):
            raise ApiError(
                422,
                "give exactly one of client_id or application",
                slug="validation-error",
                field="client_id",
            )
        if body.application is not None:
            request = scoring_pb2.ScoreRequest(application=body.application.to_proto())
            app_hash: str | None = application_hash(body.application)
        else:
            request = scoring_pb2.ScoreRequest(client_id=body.client_id)
            app_hash = None
        reply, names = await self.backends.score(request)
        decision = self._decision(reply, names, caller, body.simulation, app_hash)
        await self.log.write([decision])  # durable before the answer leaves
        _count([decision])
        return converters.score(decision, reply)

    async def score_batch(self, client_ids: Sequence[int], caller: Caller) -> schemas.BatchResponse:
        """Score known clients; each item is a score or its own error, and the scores are
        logged together (one commit) before any is returned."""
        if len(client_ids) > self.max_batch:
            raise ApiError(
                422,
                f"at most {self.max_batch} client ids per batch",
                slug="validation-error",
                field="client_ids",
            )
        request = scoring_pb2.ScoreBatchRequest(client_ids=client_ids)
        reply = await self.backends.score_batch(request)
        items: list[schemas.BatchItem] = []
        logged: list[Decision] = []
        names = tuple(reply.feature_names)
        for item in reply.items:
            if item.WhichOneof("outcome") == "score":
                decision = self._decision(item.score, names, caller, simulation=False)
                logged.append(decision)
                scored = converters.score(decision, item.score)
                items.append(schemas.BatchItem(client_id=item.client_id, score=scored))
            else:
                items.append(schemas.BatchItem(client_id=item.client_id, error=item.error))
        await self.log.write(logged)
        _count(logged)
        return schemas.BatchResponse(model_version=reply.model_version, items=items)

    async def logged(self, decision_id: str) -> Decision | None:
        """The logged decision (table or archive), whoever it belongs to: the caller checks
        ownership, so another partner's decision and an unknown id answer the same."""
        return await self.log.get(decision_id)

    async def report_outcome(
        self, decision: Decision, defaulted: bool, observed_at: date, caller: Caller
    ) -> tuple[bool, schemas.Outcome]:
        """Record what became of a decision's loan: (recorded now, the recorded outcome).
        Never overwritten: a different outcome than the recorded one is a 409."""
        status, recorded = await self.log.report_outcome(
            Outcome(
                decision_id=decision.decision_id,
                defaulted=defaulted,
                observed_at=observed_at,
                reported_at=datetime.now(UTC),
                key_id=caller.key.id,
                source="api",
            )
        )
        return status == "new", converters.outcome(recorded, status)

    async def recent(
        self,
        limit: int,
        include_simulations: bool,
        client_id: int | None,
        key_ids: list[str] | None,
    ) -> list[schemas.DecisionSummary]:
        found = await self.log.recent(limit, include_simulations, client_id, key_ids=key_ids)
        return [converters.decision_summary(d) for d in found]

    # --- explanations and model information --------------------------------------------

    async def version(self, requested: str | None) -> str:
        """The champion's version, or the requested one when canonical ("7", not "07", "."
        or ".."): anything else names no registered version, 404 before the explainer."""
        if not requested:
            return (await self.backends.model()).model_version
        if not CANONICAL_VERSION.fullmatch(requested):
            raise ApiError(
                404,
                f"unknown model version {requested[:20]!r}",
                slug="not-found",
                field="model_version",
            )
        return requested

    async def explain(self, request: explainer_pb2.ExplainRequest) -> schemas.Explanation:
        return converters.explanation(await self.backends.explain(request))

    async def explain_client(
        self, client_id: int, lang: str, top_k: int, model_version: str | None
    ) -> schemas.Explanation:
        version = await self.version(model_version)
        return await self.explain(
            explainer_pb2.ExplainRequest(
                client_id=client_id, model_version=version, lang=lang, top_k=top_k
            )
        )

    async def explain_application(self, body: schemas.ExplainRequest) -> schemas.Explanation:
        version = await self.version(body.model_version)
        return await self.explain(
            explainer_pb2.ExplainRequest(
                application=body.application.to_proto(),
                model_version=version,
                lang=body.lang,
                top_k=body.top_k,
            )
        )

    async def explain_decision(
        self, decision: Decision, lang: str, top_k: int
    ) -> schemas.Explanation:
        """The decision's own logged inputs and model version: the same probability and
        decision as then, even if the client's stored features have changed since."""
        return await self.explain(
            explainer_pb2.ExplainRequest(
                inputs=converters.feature_vector(decision.features),
                model_version=decision.model_version,
                lang=lang,
                top_k=top_k,
            )
        )

    async def client_profile(self, client_id: int, lang: str) -> schemas.ClientProfile:
        client = await self.backends.client(client_id)
        model = await self.backends.model_version_info(client.model_version)
        return build_profile(client, model, lang)

    async def search_clients(self, prefix: str, limit: int) -> schemas.ClientSearch:
        """Stored clients whose number starts with ``prefix`` (the scoring service's index
        of the online store)."""
        reply = await self.backends.search_clients(
            scoring_pb2.SearchClientsRequest(prefix=prefix, limit=limit)
        )
        return converters.client_search(prefix, reply)

    async def model_card(self, lang: str) -> schemas.ModelCard:
        """The champion's card; without global importance while the explainer is away."""
        info = await self.backends.model()
        importance: list[schemas.Importance] | None
        try:
            reply = await self.backends.importance(
                explainer_pb2.GlobalImportanceRequest(
                    model_version=info.model_version, lang=lang, top_k=20
                )
            )
            importance = converters.importance(reply)
        except ApiError as error:
            if error.status not in (503, 504):
                raise
            importance = None
        return converters.model_card(info, importance)

    async def population(
        self, name: str, lang: str, model_version: str | None
    ) -> schemas.Population:
        version = await self.version(model_version)
        info = await self.backends.model_version_info(version)
        if info.model_version == version and name not in info.feature_names:
            raise ApiError(404, f"unknown feature {name!r}", slug="not-found", field="name")
        reply = await self.backends.population(
            explainer_pb2.PopulationRequest(model_version=version, feature=name, lang=lang)
        )
        return converters.population(reply)

    async def score_distribution(self, model_version: str | None) -> schemas.ScoreDistribution:
        """The version's (default: the champion's) probabilities over its reference
        population, by outcome, with its threshold."""
        version = await self.version(model_version)
        reply = await self.backends.score_distribution(
            explainer_pb2.ScoreDistributionRequest(model_version=version)
        )
        return converters.score_distribution(reply)

    async def neighbours(
        self, client_id: int, k: int, features: Sequence[str], model_version: str | None
    ) -> schemas.Neighbours:
        version = await self.version(model_version)
        reply = await self.backends.neighbours(
            explainer_pb2.NeighboursRequest(
                client_id=client_id, model_version=version, k=k, features=features
            )
        )
        return converters.neighbours(client_id, version, reply)
