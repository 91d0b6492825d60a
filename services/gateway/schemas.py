"""The public JSON contract (v1): requests are strict (unknown fields rejected, types and
ranges checked) so a partner learns of a typo from a 422, not from a strange score."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from credit.v1 import common_pb2
from serving_core.fields import TYPED_FIELDS
from serving_core.ranges import kaggle_categories, numeric_ranges
from serving_core.schema import kaggle_schema

INT64_MAX = 2**63 - 1
# Field bounds from the data (serving_core.ranges), exactly as the services check them.
LIMITS = numeric_ranges()
NO_EMPLOYMENT = 365_243  # Kaggle's DAYS_EMPLOYED code for "no employment date"
# strict: a JSON integer only, never "100002", 100002.0 or true (issue 17).
ClientId = Annotated[
    int, Field(gt=0, le=INT64_MAX, strict=True, description="SK_ID_CURR", examples=[100002])
]
Lang = Literal["en", "fr"]
ModelVersion = Annotated[str, Field(pattern=r"^[0-9A-Za-z._-]{1,64}$", examples=["3"])]


def _encodable(value: str) -> str:
    # Lone surrogates are valid JSON escapes but not UTF-8: protobuf could not send them.
    value.encode("utf-8")
    return value


Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_encodable)]
FieldName = Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,100}$")]
ECHO = 20  # characters of a caller's value an error message may repeat


def echo(value: object) -> str:
    """A short prefix of a caller's value, for an error message (never the whole of it)."""
    text = str(value)
    return repr(text if len(text) <= ECHO else text[:ECHO] + "...")


def utc(value: datetime) -> datetime:
    """Times leave with their UTC offset (RFC 3339 date-time): naive ones are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(utc)]


class KaggleCategory:
    """``Annotated[str | None, KaggleCategory(column)]``: a value of Kaggle's data dictionary for
    ``column``, exactly what the services accept (``XNA`` included, scored as missing),
    listed as the field's ``enum`` in the OpenAPI."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.values = kaggle_categories()[column]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "enum": list(self.values)}, {"type": "null"}]}

    def _check(self, value: str | None) -> str | None:
        if value is not None and value not in self.values:
            raise ValueError(f"unknown value {echo(value)} of {self.column}")
        return value


# The application table's other fields, by kind; the typed ones cannot be given twice.
_TABLE = kaggle_schema()["application_test"]
_TYPED = set(TYPED_FIELDS.values())
NUMERIC_FIELDS = {
    c.name: LIMITS[c.name]
    for c in _TABLE.columns
    if c.kind in ("int", "float") and c.name not in _TYPED
}
CATEGORY_FIELDS = {
    c.name: kaggle_categories()[c.name]
    for c in _TABLE.columns
    if c.kind == "category" and c.name not in _TYPED
}


def _numeric_fields(values: dict[str, float]) -> dict[str, float]:
    for name, value in values.items():
        if name not in NUMERIC_FIELDS:
            raise ValueError(f"{echo(name)} is not a numeric Kaggle application field")
        low, high = NUMERIC_FIELDS[name]
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return values


def _category_fields(values: dict[str, str]) -> dict[str, str]:
    for name, value in values.items():
        if name not in CATEGORY_FIELDS:
            raise ValueError(f"{echo(name)} is not a categorical Kaggle application field")
        if value not in CATEGORY_FIELDS[name]:
            raise ValueError(f"unknown value {echo(value)} of {name}")
    return values


NumericFields = Annotated[
    dict[FieldName, Annotated[float, Field(allow_inf_nan=False)]],
    Field(max_length=200),
    AfterValidator(_numeric_fields),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": False,
            "description": "Other numeric Kaggle application fields, each within its range",
            "properties": {
                name: {"type": "number", "minimum": low, "maximum": high}
                for name, (low, high) in NUMERIC_FIELDS.items()
            },
        }
    ),
]
CategoryFields = Annotated[
    dict[FieldName, Text],
    Field(max_length=200),
    AfterValidator(_category_fields),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": False,
            "description": "Other categorical Kaggle application fields (data dictionary values)",
            "properties": {
                name: {"type": "string", "enum": list(values)}
                for name, values in CATEGORY_FIELDS.items()
            },
        }
    ),
]


class Strict(BaseModel):
    """A request body: unknown fields refused, and JSON types as the OpenAPI says them
    (no "10" for a number, 0 for a date or "true" for a boolean). An integer is a JSON
    integer literal: 100002.0 is refused, although JSON Schema counts it as an integer."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Application(Strict):
    """A new application; fields of Home Credit's application table (see common.proto).
    The annuity may not exceed the credit amount (`amt_annuity` <= `amt_credit`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contract_type": "Cash loans",
                    "amt_income_total": 202500.0,
                    "amt_credit": 406597.5,
                    "amt_annuity": 24700.5,
                    "amt_goods_price": 351000.0,
                    "days_birth": -9461,
                    "days_employed": -637,
                    "cnt_children": 0,
                    "name_income_type": "Working",
                    "ext_source_2": 0.26,
                    "ext_source_3": 0.14,
                    "numeric_fields": {"REGION_RATING_CLIENT": 2},
                    "category_fields": {"NAME_TYPE_SUITE": "Unaccompanied"},
                }
            ]
        },
    )

    client_id: ClientId | None = Field(None, description="SK_ID_CURR of a known client")
    contract_type: Literal["Cash loans", "Revolving loans"]
    amt_income_total: float = Field(
        ge=LIMITS["AMT_INCOME_TOTAL"][0], le=LIMITS["AMT_INCOME_TOTAL"][1], allow_inf_nan=False
    )
    amt_credit: float = Field(
        ge=LIMITS["AMT_CREDIT"][0], le=LIMITS["AMT_CREDIT"][1], allow_inf_nan=False
    )
    amt_annuity: float = Field(
        ge=LIMITS["AMT_ANNUITY"][0], le=LIMITS["AMT_ANNUITY"][1], allow_inf_nan=False
    )
    amt_goods_price: float | None = Field(
        None, ge=LIMITS["AMT_GOODS_PRICE"][0], le=LIMITS["AMT_GOODS_PRICE"][1], allow_inf_nan=False
    )
    days_birth: int = Field(
        ge=LIMITS["DAYS_BIRTH"][0],
        le=LIMITS["DAYS_BIRTH"][1],
        description="negative: 18 to 100 years",
    )
    # Kaggle's 365243 ("no employment date") is accepted, like leaving the field out.
    days_employed: (
        Annotated[
            int,
            Field(ge=LIMITS["DAYS_EMPLOYED"][0], le=NO_EMPLOYMENT),
            WithJsonSchema(
                {
                    "anyOf": [
                        {
                            "type": "integer",
                            "minimum": LIMITS["DAYS_EMPLOYED"][0],
                            "maximum": LIMITS["DAYS_EMPLOYED"][1],
                        },
                        {"type": "integer", "enum": [NO_EMPLOYMENT]},
                    ]
                }
            ),
        ]
        | None
    ) = Field(
        None,
        description="negative days; 365243 or absent: no employment (pensioner, unemployed)",
    )
    cnt_children: int | None = Field(
        None, ge=LIMITS["CNT_CHILDREN"][0], le=LIMITS["CNT_CHILDREN"][1]
    )
    cnt_fam_members: float | None = Field(
        None, ge=LIMITS["CNT_FAM_MEMBERS"][0], le=LIMITS["CNT_FAM_MEMBERS"][1], allow_inf_nan=False
    )
    code_gender: Annotated[str | None, KaggleCategory("CODE_GENDER")] = None
    flag_own_car: Literal["Y", "N"] | None = None
    flag_own_realty: Literal["Y", "N"] | None = None
    name_income_type: Annotated[str | None, KaggleCategory("NAME_INCOME_TYPE")] = None
    name_education_type: Annotated[str | None, KaggleCategory("NAME_EDUCATION_TYPE")] = None
    name_family_status: Annotated[str | None, KaggleCategory("NAME_FAMILY_STATUS")] = None
    name_housing_type: Annotated[str | None, KaggleCategory("NAME_HOUSING_TYPE")] = None
    occupation_type: Annotated[str | None, KaggleCategory("OCCUPATION_TYPE")] = None
    organization_type: Annotated[str | None, KaggleCategory("ORGANIZATION_TYPE")] = None
    ext_source_1: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    ext_source_2: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    ext_source_3: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    numeric_fields: NumericFields = Field(default_factory=dict)
    category_fields: CategoryFields = Field(default_factory=dict)

    @field_validator("days_employed")
    @classmethod
    def _employment(cls, value: int | None) -> int | None:
        high = LIMITS["DAYS_EMPLOYED"][1]
        if value is not None and high < value != NO_EMPLOYMENT:
            raise ValueError(f"must be at most {high:g}, or {NO_EMPLOYMENT} (no employment)")
        return value

    @field_validator("amt_annuity")
    @classmethod
    def _annuity(cls, value: float, info: ValidationInfo) -> float:
        # The services refuse it too (services.common.application); JSON Schema cannot
        # compare two fields, so the OpenAPI says it in the description.
        credit = info.data.get("amt_credit")
        if credit is not None and value > credit:
            raise ValueError("cannot exceed the credit amount (amt_credit)")
        return value

    def to_proto(self) -> common_pb2.Application:
        fields = self.model_dump(exclude_none=True)
        return common_pb2.Application(**fields)


def _exactly_one_of(schema: dict[str, Any]) -> None:
    # Never null (the oneOf counts a property as given when it is present): the OpenAPI
    # drops null from both, and the validators below refuse it.
    for name in ("client_id", "application"):
        prop = schema["properties"][name]
        kept = [branch for branch in prop.pop("anyOf", []) if branch.get("type") != "null"]
        if kept:
            prop.update(kept[0])
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["client_id"]}, {"required": ["application"]}]
    schema["examples"] = [{"client_id": 100002}, {"client_id": 100002, "simulation": True}]


class ScoreRequest(Strict):
    """Exactly one of `client_id` (a known client) or `application` (a new one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of)

    client_id: ClientId | None = None
    application: Application | None = None
    simulation: bool = Field(
        False,
        strict=True,  # true or false only: "yes" or 0 must not decide anything
        description="A what-if: scored and logged as a simulation, not a decision.",
    )

    @field_validator("client_id", "application", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScoreRequest:
        if (self.client_id is None) == (self.application is None):
            raise ValueError("give exactly one of client_id or application")
        return self


class Score(BaseModel):
    probability: float = Field(description="Calibrated probability of default", examples=[0.12])
    decision: Literal["granted", "refused", "review"] = Field(
        description="review: within review_band of the threshold, referred to an underwriter"
    )
    threshold: float = Field(description="Refused when probability >= threshold")
    distance_to_threshold: float = Field(description="probability - threshold")
    review_band: float = Field(
        0.0, description="review when |probability - threshold| < review_band (0: no band)"
    )
    model_version: str
    decision_id: str = Field(description="Audit record id (GET /v1/decisions/{id})")
    client_id: int | None = None
    simulation: bool = False
    treated_as_missing: list[str] = Field(
        default_factory=list,
        description="A new application's valid values the model never saw in training "
        "(FIELD=value), scored as missing",
        examples=[["ORGANIZATION_TYPE=Trade: type 5"]],
    )


class BatchRequest(Strict):
    client_ids: list[ClientId] = Field(min_length=1, examples=[[100002, 100003]])


class BatchItem(BaseModel):
    client_id: int
    score: Score | None = None
    error: str | None = Field(None, examples=["unknown client 123"])


class BatchResponse(BaseModel):
    model_version: str
    items: list[BatchItem]


class ProfileField(BaseModel):
    name: str = Field(examples=["AMT_INCOME_TOTAL"])
    label: str = Field(examples=["Annual income"])
    value: float | str | None
    display_value: str = Field(examples=["202,500"])
    unit: str


class ProfileGroup(BaseModel):
    id: str = Field(examples=["income_credit"])
    label: str = Field(examples=["Income and credit"])
    fields: list[ProfileField]


class ClientProfile(BaseModel):
    client_id: int
    model_version: str
    lang: Lang
    groups: list[ProfileGroup]


class Contribution(BaseModel):
    feature: str
    label: str
    display_value: str
    value: float | None
    contribution: float = Field(description="SHAP value, log-odds scale")


class Reason(BaseModel):
    feature: str = Field(description="The factor's leading feature for this client")
    text: str
    contribution: float = Field(description="The factor's net contribution (log-odds)")
    factor: str = Field("", description="The citable factor, e.g. external_scores")


class Change(BaseModel):
    feature: str
    label: str
    from_value: float
    to_value: float


class Counterfactual(BaseModel):
    applicable: bool
    found: bool
    changes: list[Change]
    new_probability: float
    text: str


class Explanation(BaseModel):
    model_version: str
    probability: float
    decision: Literal["granted", "refused"]
    threshold: float
    base_value: float
    raw_score: float
    contributions: list[Contribution]
    other_contributions: float
    raising: list[Reason]
    lowering: list[Reason]
    counterfactual: Counterfactual


class ExplainRequest(Strict):
    application: Application
    model_version: ModelVersion | None = Field(None, description="Default: the champion")
    lang: Lang = "en"
    top_k: int = Field(10, ge=1, le=100)


class Importance(BaseModel):
    feature: str
    label: str
    mean_abs_shap: float
    gain: float
    direction: Literal["raises", "lowers", "mixed"] = Field(
        description="What higher values of the feature do to the risk, over the model's "
        "reference sample (the sign of the Spearman correlation between the feature's value "
        "and its SHAP value): mixed when |rho| < 0.3, for a categorical feature, or when the "
        "explainer does not say.",
        examples=["lowers"],
    )


class ModelCard(BaseModel):
    model_version: str
    model_name: str
    trained_at: UtcDatetime | None = Field(description="When it was trained (UTC)")
    threshold: float
    metrics: dict[str, float]
    cost_false_negative: float
    cost_false_positive: float
    n_features: int
    global_importance: list[Importance] | None = Field(
        description="Top 20 features; null when the explainer is unavailable"
    )


class Population(BaseModel):
    model_version: str
    feature: str
    label: str
    dtype: str
    unit: str
    n: int
    default_rate: float
    missing_rate: float
    bin_edges: list[float]
    categories: list[str]
    repaid: list[int]
    defaulted: list[int]
    hidden: list[int] = Field(
        description="Per bin or category, clients counted whose outcome is not shown: when "
        "the whole feature holds fewer clients than a cell's minimum (20), they are never "
        "split by outcome (their repaid and defaulted counts are 0)."
    )
    quantiles: dict[str, float]


class ClientSearch(BaseModel):
    """Stored clients whose number starts with the prefix: suggestions as an advisor types."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"prefix": "10000", "clients": [100002, 100003]}]}
    )

    prefix: str = Field(description="The prefix searched, as sent")
    clients: list[int] = Field(
        description="Ids of the clients the online store holds (its last materialisation) "
        "whose decimal form starts with the prefix, ascending, at most `limit`; empty when "
        "none does."
    )


class ScoreBin(BaseModel):
    lower: float = Field(description="Probabilities from this value (included)")
    upper: float = Field(description="up to this one (excluded; included in the last bin)")
    repaid: int = Field(description="Clients of the bin who repaid")
    defaulted: int = Field(description="Clients of the bin who defaulted")
    hidden: int = Field(
        0,
        description="Clients of the bin whose outcome is not shown: a whole side of the "
        "threshold with fewer than `min_cell` clients is never split by outcome",
    )


class ScoreDistribution(BaseModel):
    """The model's probabilities of default over its reference population, by outcome,
    and the threshold: how many repaid and defaulted clients each decision side holds."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "3",
                    "threshold": 0.1,
                    "n": 5000,
                    "source": "the explainer's reference sample: 5,000 training clients "
                    "drawn at random, each with the probability of default an out-of-fold "
                    "model gave them (...)",
                    "out_of_fold": True,
                    "min_cell": 20,
                    "bins": [
                        {
                            "lower": 0.0,
                            "upper": 0.02,
                            "repaid": 1234,
                            "defaulted": 12,
                            "hidden": 0,
                        },
                        {
                            "lower": 0.02,
                            "upper": 0.04,
                            "repaid": 987,
                            "defaulted": 25,
                            "hidden": 0,
                        },
                    ],
                }
            ]
        }
    )

    model_version: str
    threshold: float = Field(description="Refused when probability >= threshold")
    n: int = Field(description="Clients counted: the sum of every bin's three counts")
    source: str = Field(description="Which clients and which probabilities, in plain words")
    out_of_fold: bool = Field(
        description="true: each probability comes from a cross-validation model not fitted "
        "on that client (what a new applicant would get); false: from the served model, "
        "fitted on these clients (in sample, optimistic)."
    )
    min_cell: int = Field(
        description="Adjacent bins on one side of the threshold are merged until each "
        "non-empty bin holds at least this many clients."
    )
    bins: list[ScoreBin] = Field(
        description="Contiguous from 0, covering every probability observed; the threshold "
        "is an edge, so each bin is wholly granted or wholly refused."
    )


class Neighbour(BaseModel):
    """One similar training client, anonymised: no id, outcome or probability."""

    distance: float
    values: dict[str, float] = Field(
        description="The requested features' values (`features=`); a missing one is absent."
    )


class Neighbours(BaseModel):
    client_id: int
    model_version: str
    k: int = Field(description="Size of the comparison group (fixed).")
    defaulted_count: int = Field(description="How many of the k defaulted.")
    default_rate: float = Field(description="Default rate among the k: an aggregate only.")
    features_used: list[str]
    neighbours: list[Neighbour]


class DecisionSummary(BaseModel):
    decision_id: str
    created_at: UtcDatetime
    client_id: int | None
    application_hash: str | None
    model_version: str
    probability: float
    decision: str
    threshold: float
    simulation: bool


class DecisionRecord(DecisionSummary):
    key_id: str
    advisor: str | None = Field(
        None, description="The advisor signed in to the dashboard when it made this decision."
    )
    features: dict[str, Any] = Field(description='{"numeric": {...}, "categorical": {...}}')
    exploration: bool = Field(
        False,
        description="Granted by the exploration share although the model refused "
        "(GATEWAY_EXPLORATION_SHARE; off by default).",
    )


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> Any:
    # Strict models take dates as date objects only; from JSON it is this string form only
    # (not 0, 1.5e9 or "2026-11-30T00:00").
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError("an ISO date, YYYY-MM-DD")
    return value


def _not_future(value: date) -> date:
    # A day of slack: the reporter's "today" may already be tomorrow in UTC+14.
    if value > (datetime.now(UTC) + timedelta(days=1)).date():
        raise ValueError("an outcome cannot be observed in the future")
    return value


class OutcomeReport(Strict):
    """What became of a granted loan."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"defaulted": False, "observed_at": "2026-11-30"}]},
    )

    defaulted: bool = Field(strict=True, description="The client defaulted on this loan.")
    observed_at: Annotated[date, BeforeValidator(_iso_date), AfterValidator(_not_future)] = Field(
        strict=False, description="When the outcome was established (ISO date, not in the future)."
    )


class Outcome(BaseModel):
    decision_id: str
    defaulted: bool
    observed_at: date
    reported_at: UtcDatetime = Field(description="When the outcome was first recorded.")
    status: Literal["new", "unchanged"] = Field(
        description="new (201): recorded now; unchanged (200): this outcome was recorded before."
    )


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
