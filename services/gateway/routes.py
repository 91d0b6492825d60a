"""The v1 REST routes: each one validates, calls a backend, maps the answer to JSON.

Business logic lives in the backends; status codes come from ``errors``; decisions are
written (committed) by ``DecisionLog.write`` before any score is returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from credit.v1 import common_pb2, explainer_pb2, scoring_pb2
from services.gateway import schemas
from services.gateway.auth import partner_key_ids, require, visible
from services.gateway.backends import Backends
from services.gateway.decisions import Decision, DecisionLog, Outcome
from services.gateway.errors import ApiError, problem_response, problem_responses
from services.gateway.keys import ApiKey
from services.gateway.metrics import DECISIONS, PROBABILITIES
from services.gateway.profile import build_profile
from services.gateway.settings import GatewaySettings

DECISION_NAMES: dict[int, Literal["granted", "refused"]] = {
    common_pb2.DECISION_GRANTED: "granted",
    common_pb2.DECISION_REFUSED: "refused",
}
AUTH_ERRORS = (401, 403, 429)
BACKEND_ERRORS = (503, 504)

ClientPath = Annotated[int, Path(gt=0, le=schemas.INT64_MAX, description="SK_ID_CURR",
                                 examples=[100002])]  # fmt: skip
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


async def get_log(request: Request) -> DecisionLog:
    decisions: DecisionLog = request.app.state.decisions
    return decisions


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


BackendsDep = Annotated[Backends, Depends(get_backends)]
LogDep = Annotated[DecisionLog, Depends(get_log)]

STRICT_ID = re.compile(r"[1-9][0-9]{0,18}")
CANONICAL_VERSION = re.compile(r"[1-9][0-9]{0,9}")  # MLflow registry versions


async def strict_ids(request: Request) -> None:
    """A client id in a path or query only as plain decimal digits: the int parser alone
    also takes "+100002", " 100002 ", "100_002" and "0100002" (issue 17)."""
    for source in (request.path_params, request.query_params):
        raw = source.get("client_id")
        if raw is not None and not STRICT_ID.fullmatch(raw):
            raise ApiError(422, "client_id: a positive integer in plain decimal digits",
                           slug="validation-error", field="client_id")  # fmt: skip


v1 = APIRouter(prefix="/v1", dependencies=[Depends(strict_ids)])


def _decision_name(value: int) -> Literal["granted", "refused"]:
    if value not in DECISION_NAMES:
        raise ApiError(502, "the scoring service returned no decision", slug="backend-error")
    return DECISION_NAMES[value]


def logged_features(inputs: common_pb2.FeatureValues, names: Sequence[str]) -> dict[str, Any]:
    """The decision log's form of a score's inputs: the numbers that have a value by name
    (NaN means missing), and the categories."""
    numeric = inputs.numeric
    if len(numeric) != len(names):
        raise ApiError(502, "the scoring service sent features that do not match their names",
                       slug="backend-error")  # fmt: skip
    present = {name: value for name, value in zip(names, numeric, strict=True) if value == value}
    return {"numeric": present, "categorical": dict(inputs.categorical.items())}


def application_hash(application: schemas.Application) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, absent fields omitted)."""
    canonical = json.dumps(
        application.model_dump(mode="json", exclude_none=True),
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# The dashboard signs its advisors in and sends who acts with each call under its key: the
# decision log records it (table decision_actors), so a shared key stays attributable.
AdvisorHeader = Annotated[
    str | None,
    Header(alias="X-Advisor", pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
           description="The person acting behind this key (the dashboard's advisor)."),
]  # fmt: skip


def _decision(
    reply: scoring_pb2.ScoreResponse,
    names: Sequence[str],
    key: ApiKey,
    simulation: bool,
    app_hash: str | None = None,
    advisor: str | None = None,
) -> Decision:
    return Decision.new(
        advisor=advisor,
        key_id=key.id,
        client_id=reply.client_id if reply.HasField("client_id") else None,
        application_hash=app_hash,
        model_version=reply.model_version,
        probability=reply.probability,
        decision=_decision_name(reply.decision),
        threshold=reply.threshold,
        simulation=simulation,
        features=logged_features(reply.inputs, names),
    )


def _score(decision: Decision, reply: scoring_pb2.ScoreResponse) -> schemas.Score:
    return schemas.Score(
        probability=decision.probability, decision=decision.decision,
        threshold=decision.threshold, distance_to_threshold=reply.distance_to_threshold,
        model_version=decision.model_version, decision_id=decision.decision_id,
        client_id=decision.client_id, simulation=decision.simulation,
        treated_as_missing=list(reply.treated_as_missing),
    )  # fmt: skip


def _count(decisions: list[Decision]) -> None:
    for decision in decisions:
        if not decision.simulation:
            DECISIONS.labels(decision.decision).inc()
            PROBABILITIES.observe(decision.probability)


@v1.post(
    "/scores", response_model=schemas.Score, tags=["scores"],
    summary="Score a known client or a new application",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def score(
    body: schemas.ScoreRequest,
    key: Annotated[ApiKey, Depends(require("score"))],
    backends: BackendsDep,
    decisions: LogDep,
    advisor: AdvisorHeader = None,
) -> schemas.Score:
    if (body.client_id is None) == (body.application is None):
        raise ApiError(422, "give exactly one of client_id or application",
                       slug="validation-error", field="client_id")  # fmt: skip
    if body.application is not None:
        request = scoring_pb2.ScoreRequest(application=body.application.to_proto())
        app_hash: str | None = application_hash(body.application)
    else:
        request = scoring_pb2.ScoreRequest(client_id=body.client_id)
        app_hash = None
    reply, names = await backends.score(request)
    decision = _decision(reply, names, key, body.simulation, app_hash, advisor)
    await decisions.write([decision])  # durable before the answer leaves
    _count([decision])
    return _score(decision, reply)


@v1.post(
    "/scores/batch", response_model=schemas.BatchResponse, tags=["scores"],
    summary="Score up to GATEWAY_MAX_BATCH (default 100) known clients",
    responses=problem_responses(*AUTH_ERRORS, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def score_batch(
    body: schemas.BatchRequest,
    request: Request,
    key: Annotated[ApiKey, Depends(require("score"))],
    backends: BackendsDep,
    decisions: LogDep,
    advisor: AdvisorHeader = None,
) -> schemas.BatchResponse:
    limit = get_settings(request).max_batch
    if len(body.client_ids) > limit:
        raise ApiError(422, f"at most {limit} client ids per batch", slug="validation-error",
                       field="client_ids")  # fmt: skip
    reply = await backends.score_batch(scoring_pb2.ScoreBatchRequest(client_ids=body.client_ids))
    items: list[schemas.BatchItem] = []
    logged: list[Decision] = []
    names = tuple(reply.feature_names)
    for item in reply.items:
        if item.WhichOneof("outcome") == "score":
            decision = _decision(item.score, names, key, simulation=False, advisor=advisor)
            logged.append(decision)
            items.append(schemas.BatchItem(client_id=item.client_id,
                                           score=_score(decision, item.score)))  # fmt: skip
        else:
            items.append(schemas.BatchItem(client_id=item.client_id, error=item.error))
    await decisions.write(logged)
    _count(logged)
    return schemas.BatchResponse(model_version=reply.model_version, items=items)


@v1.get(
    "/clients/{client_id}", response_model=schemas.ClientProfile, tags=["clients"],
    summary="A stored client's profile, grouped and labelled",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def client_profile(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    backends: BackendsDep,
    lang: LangQuery = "en",
) -> schemas.ClientProfile:
    client = await backends.client(client_id)
    model = await backends.model_version_info(client.model_version)
    return build_profile(client, model, lang)


def _explanation(reply: explainer_pb2.Explanation) -> schemas.Explanation:
    cf = reply.counterfactual
    return schemas.Explanation(
        model_version=reply.model_version, probability=reply.probability,
        decision=_decision_name(reply.decision),
        threshold=reply.threshold, base_value=reply.base_value, raw_score=reply.raw_score,
        other_contributions=reply.other_contributions,
        contributions=[
            schemas.Contribution(
                feature=c.feature, label=c.label, display_value=c.display_value,
                value=c.value if c.HasField("value") else None, contribution=c.contribution,
            ) for c in reply.contributions
        ],
        raising=[schemas.Reason(feature=r.feature, text=r.text, contribution=r.contribution,
                                factor=r.factor) for r in reply.raising],
        lowering=[schemas.Reason(feature=r.feature, text=r.text, contribution=r.contribution,
                                 factor=r.factor) for r in reply.lowering],
        counterfactual=schemas.Counterfactual(
            applicable=cf.applicable, found=cf.found, new_probability=cf.new_probability,
            text=cf.text,
            changes=[schemas.Change(feature=c.feature, label=c.label, from_value=c.from_value,
                                    to_value=c.to_value) for c in cf.changes],
        ),
    )  # fmt: skip


async def _version(backends: Backends, requested: str | None) -> str:
    """The champion's version, or the requested one when canonical ("7", not "07", "." or
    ".."): anything else names no registered version, 404 before the explainer sees it."""
    if not requested:
        return (await backends.model()).model_version
    if not CANONICAL_VERSION.fullmatch(requested):
        raise ApiError(404, f"unknown model version {requested[:20]!r}", slug="not-found",
                       field="model_version")  # fmt: skip
    return requested


@v1.get(
    "/clients/{client_id}/explanation", response_model=schemas.Explanation,
    tags=["explanations"], summary="Why a stored client's score is what it is",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def client_explanation(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("explain"))],
    backends: BackendsDep,
    lang: LangQuery = "en",
    top_k: Annotated[int, Query(ge=1, le=100)] = 10,
    model_version: VersionQuery = None,
) -> schemas.Explanation:
    version = await _version(backends, model_version)
    reply = await backends.explain(explainer_pb2.ExplainRequest(
        client_id=client_id, model_version=version, lang=lang, top_k=top_k))  # fmt: skip
    return _explanation(reply)


@v1.post(
    "/explanations", response_model=schemas.Explanation, tags=["explanations"],
    summary="Explain the score of a new application",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def explain_application(
    body: schemas.ExplainRequest,
    _: Annotated[ApiKey, Depends(require("explain"))],
    backends: BackendsDep,
) -> schemas.Explanation:
    version = await _version(backends, body.model_version)
    reply = await backends.explain(explainer_pb2.ExplainRequest(
        application=body.application.to_proto(), model_version=version, lang=body.lang,
        top_k=body.top_k))  # fmt: skip
    return _explanation(reply)


@v1.get(
    "/model", response_model=schemas.ModelCard, tags=["model"],
    summary="The champion model's card (any valid key)",
    responses=problem_responses(*AUTH_ERRORS, *BACKEND_ERRORS),
)  # fmt: skip
async def model_card(
    _: Annotated[ApiKey, Depends(require())],
    backends: BackendsDep,
    lang: LangQuery = "en",
) -> schemas.ModelCard:
    info = await backends.model()
    importance: list[schemas.Importance] | None
    try:
        reply = await backends.importance(explainer_pb2.GlobalImportanceRequest(
            model_version=info.model_version, lang=lang, top_k=20))  # fmt: skip
        importance = [
            schemas.Importance(feature=f.feature, label=f.label, mean_abs_shap=f.mean_abs_shap,
                               gain=f.gain) for f in reply.features
        ]  # fmt: skip
    except ApiError as error:
        if error.status not in (503, 504):
            raise
        importance = None  # the card stays useful while the explainer is away
    return schemas.ModelCard(
        model_version=info.model_version, model_name=info.model_name,
        trained_at=info.trained_at.ToDatetime() if info.HasField("trained_at") else None,
        threshold=info.threshold, metrics=dict(info.metrics),
        cost_false_negative=info.cost_false_negative,
        cost_false_positive=info.cost_false_positive, n_features=len(info.feature_names),
        global_importance=importance,
    )  # fmt: skip


@v1.get(
    "/population/features/{name}", response_model=schemas.Population, tags=["population"],
    summary="A feature's distribution in the training population, by outcome",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def population(
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,100}$", examples=["EXT_SOURCE_2"])],
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    backends: BackendsDep,
    lang: LangQuery = "en",
    model_version: VersionQuery = None,
) -> schemas.Population:
    version = await _version(backends, model_version)
    info = await backends.model_version_info(version)
    if info.model_version == version and name not in info.feature_names:
        raise ApiError(404, f"unknown feature {name!r}", slug="not-found", field="name")
    reply = await backends.population(
        explainer_pb2.PopulationRequest(model_version=version, feature=name, lang=lang)
    )
    return schemas.Population(
        model_version=reply.model_version, feature=reply.feature, label=reply.label,
        dtype=reply.dtype, unit=reply.unit, n=reply.n, default_rate=reply.default_rate,
        missing_rate=reply.missing_rate, bin_edges=list(reply.bin_edges),
        categories=list(reply.categories), repaid=list(reply.repaid),
        defaulted=list(reply.defaulted), quantiles=dict(reply.quantiles),
    )  # fmt: skip


NEIGHBOURS_K = 30  # the explainer's fixed group size (services/explainer/population.py)


@v1.get(
    "/clients/{client_id}/neighbours", response_model=schemas.Neighbours, tags=["clients"],
    summary="How the training clients most similar to a client fared (aggregate only)",
    description=f"The default rate among the {NEIGHBOURS_K} nearest training clients, and "
    "each neighbour's distance and requested feature values, anonymised: never another "
    "client's id, outcome or probability. The group size is fixed, so no two answers "
    "differ by a single client.",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def neighbours(
    client_id: ClientPath,
    _: Annotated[ApiKey, Depends(require("read:clients"))],
    backends: BackendsDep,
    k: Annotated[
        int, Query(ge=NEIGHBOURS_K, le=NEIGHBOURS_K, description="Fixed group size")
    ] = NEIGHBOURS_K,
    features: Annotated[
        list[Annotated[str, Query(pattern=r"^[A-Za-z0-9_]{1,100}$")]],
        Query(max_length=8, description="Numeric features whose values each neighbour shows"),
    ] = [],  # noqa: B006 - FastAPI copies a query default; never mutated
    model_version: VersionQuery = None,
) -> schemas.Neighbours:
    version = await _version(backends, model_version)
    reply = await backends.neighbours(explainer_pb2.NeighboursRequest(
        client_id=client_id, model_version=version, k=k, features=features))  # fmt: skip
    return schemas.Neighbours(
        client_id=client_id, model_version=version, k=reply.k,
        defaulted_count=reply.defaulted_count, default_rate=reply.default_rate,
        features_used=list(reply.features_used),
        neighbours=[schemas.Neighbour(distance=n.distance, values=dict(n.values))
                    for n in reply.neighbours],
    )  # fmt: skip


async def _logged(
    decisions: DecisionLog, decision_id: UUID, request: Request, key: ApiKey
) -> Decision:
    """The logged decision (from the table or the archive); 404 when there is none or it
    is another partner's (the same answer: no probing which ids exist elsewhere)."""
    found = await decisions.get(str(decision_id))
    if found is None or not visible(request, key, found.key_id):
        raise ApiError(404, f"unknown decision {decision_id}", slug="not-found")
    return found


@v1.get(
    "/decisions/{decision_id}", response_model=schemas.DecisionRecord, tags=["audit"],
    summary="The audit record of one of the partner's decisions (scope audit; audit:all "
    "for any partner's)",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, 503),
)  # fmt: skip
async def decision(
    decision_id: UUID,
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "audit:all"))],
    decisions: LogDep,
) -> schemas.DecisionRecord:
    return schemas.DecisionRecord(**vars(await _logged(decisions, decision_id, request, key)))


@v1.get(
    "/decisions/{decision_id}/explanation", response_model=schemas.Explanation,
    tags=["audit", "explanations"],
    summary="Why a logged decision was made: its own inputs and model version "
    "(scope audit or explain)",
    responses=problem_responses(*AUTH_ERRORS, 404, 422, *BACKEND_ERRORS),
)  # fmt: skip
async def decision_explanation(
    decision_id: UUID,
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "explain", "audit:all"))],
    backends: BackendsDep,
    decisions: LogDep,
    lang: LangQuery = "en",
    top_k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> schemas.Explanation:
    """Explains the inputs the decision log holds for this decision, with the model version
    that made it: the same probability and decision as then, even if the client's stored
    features have changed since (a client contesting a decision gets the reasons of that
    decision)."""
    found = await _logged(decisions, decision_id, request, key)
    inputs = common_pb2.FeatureVector(
        numeric=found.features.get("numeric", {}),
        categorical=found.features.get("categorical", {}),
    )
    reply = await backends.explain(explainer_pb2.ExplainRequest(
        inputs=inputs, model_version=found.model_version, lang=lang, top_k=top_k))  # fmt: skip
    return _explanation(reply)


def may_report_outcome(request: Request, key: ApiKey, decision: Decision) -> bool:
    """Whether ``key`` may report this decision's outcome: only the deciding partner's keys
    (not even ``audit:all``: auditors read, they do not write). The outcome row keeps the
    reporting key."""
    auth = request.app.state.auth
    return bool(auth.keys.partner_of(decision.key_id) == key.tenant)


@v1.put(
    "/decisions/{decision_id}/outcome", response_model=schemas.Outcome, tags=["outcomes"],
    summary="Report what became of a decision's loan (scope outcomes); idempotent",
    status_code=200,
    responses={
        201: {"model": schemas.Outcome, "description": "Recorded now"},
        **problem_responses(*AUTH_ERRORS, 404, 409, 422, 503),
    },
)  # fmt: skip
async def report_outcome(
    decision_id: UUID,
    body: schemas.OutcomeReport,
    request: Request,
    response: Response,
    key: Annotated[ApiKey, Depends(require("outcomes"))],
    decisions: LogDep,
) -> schemas.Outcome:
    """201 when the outcome is recorded now, 200 when this same outcome was recorded before
    (a retry is harmless), 409 when a different one was: outcomes are never overwritten."""
    found = await decisions.get(str(decision_id))
    if found is None or not may_report_outcome(request, key, found):  # others' read as unknown
        raise ApiError(404, f"unknown decision {decision_id}", slug="not-found")
    status, recorded = await decisions.report_outcome(Outcome(
        decision_id=found.decision_id, defaulted=body.defaulted, observed_at=body.observed_at,
        reported_at=datetime.now(UTC), key_id=key.id, source="api",
    ))  # fmt: skip
    response.status_code = 201 if status == "new" else 200
    return schemas.Outcome(
        decision_id=recorded.decision_id, defaulted=recorded.defaulted,
        observed_at=recorded.observed_at, reported_at=recorded.reported_at,
        status="new" if status == "new" else "unchanged",
    )  # fmt: skip


@v1.get(
    "/decisions", response_model=list[schemas.DecisionSummary], tags=["audit"],
    summary="The partner's most recent decisions first, optionally one client's (scope audit "
    "or read:clients; audit:all lists every partner's)",
    responses=problem_responses(*AUTH_ERRORS, 422, 503),
)  # fmt: skip
async def recent_decisions(
    request: Request,
    key: Annotated[ApiKey, Depends(require("audit", "read:clients", "audit:all"))],
    decisions: LogDep,
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
    found = await decisions.recent(
        limit, include_simulations, client_id, key_ids=partner_key_ids(request, key)
    )
    return [schemas.DecisionSummary(**{k: v for k, v in vars(d).items()
                                       if k in schemas.DecisionSummary.model_fields})
            for d in found]  # fmt: skip


ops = APIRouter(tags=["operations"])


@ops.get("/healthz", response_model=schemas.Health, summary="Liveness: the process runs")
async def healthz() -> schemas.Health:
    return schemas.Health(status="ok")


@ops.get(
    "/readyz", response_model=schemas.Health, summary="Readiness: backends SERVING",
    responses=problem_responses(503),
)  # fmt: skip
async def readyz(request: Request, backends: BackendsDep) -> Any:
    deadline = get_settings(request).health_deadline_seconds
    (scoring_ok, scoring), (explainer_ok, explainer) = await asyncio.gather(
        backends.scoring.serving(deadline), backends.explainer.serving(deadline)
    )
    checks = {"scoring": scoring, "explainer": explainer}
    if scoring_ok and explainer_ok:
        return schemas.Health(status="ok", checks=checks)
    failed = [name for name, ok in (("scoring", scoring_ok), ("explainer", explainer_ok))
              if not ok]  # fmt: skip
    return problem_response(
        request, 503, f"not ready: {', '.join(failed)} not serving", slug="not-ready",
        checks=checks, headers={"Retry-After": "1"},
    )  # fmt: skip


@ops.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
