"""The v1 REST routes: each one parses, authorises and delegates to ``service``.

What a request means (scores, decisions logged before they are returned, explanations)
lives in ``service.CreditService``; proto <-> JSON in ``converters``; status codes in
``errors``. Ownership is checked here: another partner's decision answers as unknown.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway import converters, schemas
from services.gateway.auth import partner_key_ids, require, visible
from services.gateway.backends import Backends
from services.gateway.decisions import Decision
from services.gateway.errors import ApiError, problem_response, problem_responses
from services.gateway.keys import ApiKey
from services.gateway.service import NEIGHBOURS_K, Caller, CreditService
from services.gateway.settings import GatewaySettings

AUTH_ERRORS = (401, 403, 429)
BACKEND_ERRORS = (503, 504)

ClientPath = Annotated[
    int, Path(gt=0, le=schemas.INT64_MAX, description="SK_ID_CURR", examples=[100002])
]
LangQuery = Annotated[schemas.Lang, Query(description="Language of labels and texts")]
VersionQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9A-Za-z._-]{1,64}$", description="Model version; default: champion"),
]


# Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
# its threadpool, a thread hop per dependency per request for a mere attribute read.
async def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


async def get_service(request: Request) -> CreditService:
    service: CreditService = request.app.state.service
    return service


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


BackendsDep = Annotated[Backends, Depends(get_backends)]
ServiceDep = Annotated[CreditService, Depends(get_service)]

STRICT_ID = re.compile(r"[1-9][0-9]{0,18}")


async def strict_ids(request: Request) -> None:
    """A client id in a path or query only as plain decimal digits: the int parser alone
    also takes "+100002", " 100002 ", "100_002" and "0100002" (issue 17)."""
    for source in (request.path_params, request.query_params):
        raw = source.get("client_id")
        if raw is not None and not STRICT_ID.fullmatch(raw):
            raise ApiError(
                422,
                "client_id: a positive integer in plain decimal digits",
                slug="validation-error",
                field="client_id",
            )


v1 = APIRouter(prefix="/v1", dependencies=[Depends(strict_ids)])


# The dashboard signs its advisors in and sends who acts with each call under its key: the
# decision log records it (table decision_actors), so a shared key stays attributable.
AdvisorHeader = Annotated[
    str | None,
    Header(
        alias="X-Advisor",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="The person acting behind this key (the dashboard's advisor).",
    ),
]


@v1.post(
    "/scores",
    response_model=schemas.Score,
    tags=["scores"],
    summary="Score a known client or a new application",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def score(
    body: schemas.ScoreRequest,
    key: Annotated[ApiKey, Depends(require("score"))],
    service: ServiceDep,
    advisor: AdvisorHeader = None,
) -> schemas.Score:
    return await service.score(body, Caller(key, advisor))


@v1.post(
    "/scores/batch",
    response_model=schemas.BatchResponse,
    tags=["scores"],
    summary="Score up to GATEWAY_MAX_BATCH (default 100) known clients",
    responses=problem_responses(*AUTH_ERRORS, 422, *BACKEND_ERRORS),
)
async def score_batch(
    body: schemas.BatchRequest,
    key: Annotated[ApiKey, Depends(require("score"))],
    service: ServiceDep,
    advisor: AdvisorHeader = None,
) -> schemas.BatchResponse:
    return await service.score_batch(body.client_ids, Caller(key, advisor))


# A literal path of its own, so never taken for /clients/{client_id} (which only matches one
# more path segment); the prefix is checked here, as the scoring service checks it again.
@v1.get(
    "/clients",
    response_model=schemas.ClientSearch,
    tags=["clients"],
    summary="Stored clients whose number starts with a prefix (suggestions as one types)",
    responses=problem_responses(*AUTH_ERRORS, 422, *BACKEND_ERRORS),
)
async def search_clients(
    prefix: Annotated[
        str,
        Query(
            pattern=r"^[0-9]{1,12}$",
            description="The first digits of a client number (1 to 12 ASCII digits)",
            examples=["10000"],
        ),
    ],
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=20, description="At most this many ids")] = 10,
) -> schemas.ClientSearch:
    return await service.search_clients(prefix, limit)


@v1.get(
    "/clients/{client_id}",
    response_model=schemas.ClientProfile,
    tags=["clients"],
    summary="A stored client's profile, grouped and labelled",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def client_profile(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    service: ServiceDep,
    lang: LangQuery = "en",
) -> schemas.ClientProfile:
    return await service.client_profile(client_id, lang)


@v1.get(
    "/clients/{client_id}/explanation",
    response_model=schemas.Explanation,
    tags=["explanations"],
    summary="Why a stored client's score is what it is",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def client_explanation(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("explain"))],
    service: ServiceDep,
    lang: LangQuery = "en",
    top_k: Annotated[int, Query(ge=1, le=100)] = 10,
    model_version: VersionQuery = None,
) -> schemas.Explanation:
    return await service.explain_client(client_id, lang, top_k, model_version)


@v1.post(
    "/explanations",
    response_model=schemas.Explanation,
    tags=["explanations"],
    summary="Explain the score of a new application",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def explain_application(
    body: schemas.ExplainRequest,
    _: Annotated[ApiKey, Depends(require("explain"))],
    service: ServiceDep,
) -> schemas.Explanation:
    return await service.explain_application(body)


@v1.get(
    "/model",
    response_model=schemas.ModelCard,
    tags=["model"],
    summary="The champion model's card (any valid key)",
    responses=problem_responses(*AUTH_ERRORS, *BACKEND_ERRORS),
)
async def model_card(
    _: Annotated[ApiKey, Depends(require())],
    service: ServiceDep,
    lang: LangQuery = "en",
) -> schemas.ModelCard:
    return await service.model_card(lang)


@v1.get(
    "/population/features/{name}",
    response_model=schemas.Population,
    tags=["population"],
    summary="A feature's distribution in the training population, by outcome",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def population(
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,100}$", examples=["EXT_SOURCE_2"])],
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    service: ServiceDep,
    lang: LangQuery = "en",
    model_version: VersionQuery = None,
) -> schemas.Population:
    return await service.population(name, lang, model_version)


@v1.get(
    "/population/scores",
    response_model=schemas.ScoreDistribution,
    tags=["population"],
    summary="The model's probabilities of default over its reference population, by outcome, "
    "with the threshold",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def score_distribution(
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    service: ServiceDep,
    model_version: VersionQuery = None,
) -> schemas.ScoreDistribution:
    return await service.score_distribution(model_version)


@v1.get(
    "/clients/{client_id}/neighbours",
    response_model=schemas.Neighbours,
    tags=["clients"],
    summary="How the training clients most similar to a client fared (aggregate only)",
    description=f"The default rate among the {NEIGHBOURS_K} nearest training clients, and "
    "each neighbour's distance and requested feature values, anonymised: never another "
    "client's id, outcome or probability. The group size is fixed, so no two answers "
    "differ by a single client.",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def neighbours(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    service: ServiceDep,
    k: Annotated[
        int, Query(ge=NEIGHBOURS_K, le=NEIGHBOURS_K, description="Fixed group size")
    ] = NEIGHBOURS_K,
    features: Annotated[
        list[Annotated[str, Query(pattern=r"^[A-Za-z0-9_]{1,100}$")]],
        Query(max_length=8, description="Numeric features whose values each neighbour shows"),
    ] = [],  # noqa: B006 - FastAPI copies a query default; never mutated
    model_version: VersionQuery = None,
) -> schemas.Neighbours:
    return await service.neighbours(client_id, k, features, model_version)


async def _visible(
    service: CreditService, decision_id: UUID, request: Request, key: ApiKey
) -> Decision:
    """The logged decision (from the table or the archive); 404 when there is none or it
    is another partner's (the same answer: no probing which ids exist elsewhere)."""
    found = await service.logged(str(decision_id))
    if found is None or not visible(request, key, found.key_id):
        raise ApiError(404, f"unknown decision {decision_id}", slug="not-found")
    return found


@v1.get(
    "/decisions/{decision_id}",
    response_model=schemas.DecisionRecord,
    tags=["audit"],
    summary="The audit record of one of the partner's decisions (scope audit; audit:all "
    "for any partner's)",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, 503),
)
async def decision(
    decision_id: UUID,
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "audit:all"))],
    service: ServiceDep,
) -> schemas.DecisionRecord:
    return converters.decision_record(await _visible(service, decision_id, request, key))


@v1.get(
    "/decisions/{decision_id}/explanation",
    response_model=schemas.Explanation,
    tags=["audit", "explanations"],
    summary="Why a logged decision was made: its own inputs and model version "
    "(scope audit or explain)",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)
async def decision_explanation(
    decision_id: UUID,
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "explain", "audit:all"))],
    service: ServiceDep,
    lang: LangQuery = "en",
    top_k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> schemas.Explanation:
    """A client contesting a decision gets the reasons of that decision: its logged inputs
    and model version, whatever their stored features have become since."""
    found = await _visible(service, decision_id, request, key)
    return await service.explain_decision(found, lang, top_k)


def may_report_outcome(request: Request, key: ApiKey, decision: Decision) -> bool:
    """Whether ``key`` may report this decision's outcome: only the deciding partner's keys
    (not even ``audit:all``: auditors read, they do not write). The outcome row keeps the
    reporting key."""
    auth = request.app.state.auth
    return bool(auth.keys.partner_of(decision.key_id) == key.tenant)


@v1.put(
    "/decisions/{decision_id}/outcome",
    response_model=schemas.Outcome,
    tags=["outcomes"],
    summary="Report what became of a decision's loan (scope outcomes); idempotent",
    status_code=200,
    responses={
        201: {"model": schemas.Outcome, "description": "Recorded now"},
        **problem_responses(*AUTH_ERRORS, 404, 409, 422, 503),
    },
)
async def report_outcome(
    decision_id: UUID,
    body: schemas.OutcomeReport,
    request: Request,
    response: Response,
    key: Annotated[ApiKey, Depends(require("outcomes"))],
    service: ServiceDep,
) -> schemas.Outcome:
    """201 when the outcome is recorded now, 200 when this same outcome was recorded before
    (a retry is harmless), 409 when a different one was: outcomes are never overwritten."""
    found = await service.logged(str(decision_id))
    if found is None or not may_report_outcome(request, key, found):  # others' read as unknown
        raise ApiError(404, f"unknown decision {decision_id}", slug="not-found")
    new, recorded = await service.report_outcome(
        found, body.defaulted, body.observed_at, Caller(key)
    )
    response.status_code = 201 if new else 200
    return recorded


@v1.get(
    "/decisions",
    response_model=list[schemas.DecisionSummary],
    tags=["audit"],
    summary="The partner's most recent decisions first, optionally one client's (scope audit "
    "or read:clients; audit:all lists every partner's)",
    responses=problem_responses(*AUTH_ERRORS, 422, 503),
)
async def recent_decisions(
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "read:clients", "audit:all"))],
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    include_simulations: bool = False,
    client_id: Annotated[
        int | None,
        Query(
            gt=0,
            le=schemas.INT64_MAX,
            examples=[100002],
            description="Only this client's decisions (a client contesting one: what was "
            "decided for them, when, by which model). Archived decisions are not listed.",
        ),
    ] = None,
) -> list[schemas.DecisionSummary]:
    return await service.recent(
        limit, include_simulations, client_id, key_ids=partner_key_ids(request, key)
    )


ops = APIRouter(tags=["operations"])


@ops.get("/healthz", response_model=schemas.Health, summary="Liveness: the process runs")
async def healthz() -> schemas.Health:
    return schemas.Health(status="ok")


@ops.get(
    "/readyz",
    response_model=schemas.Health,
    summary="Readiness: backends SERVING",
    responses=problem_responses(503),
)
async def readyz(request: Request, backends: BackendsDep) -> Any:
    deadline = get_settings(request).health_deadline_seconds
    (scoring_ok, scoring), (explainer_ok, explainer) = await asyncio.gather(
        backends.scoring.serving(deadline), backends.explainer.serving(deadline)
    )
    checks = {"scoring": scoring, "explainer": explainer}
    if scoring_ok and explainer_ok:
        return schemas.Health(status="ok", checks=checks)
    failed = [name for name, ok in (("scoring", scoring_ok), ("explainer", explainer_ok)) if not ok]
    return problem_response(
        request,
        503,
        f"not ready: {', '.join(failed)} not serving",
        slug="not-ready",
        checks=checks,
        headers={"Retry-After": "1"},
    )


@ops.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
