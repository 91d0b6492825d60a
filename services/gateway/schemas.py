"""The public JSON contract (v1): requests are strict (unknown fields rejected, types and
ranges checked) so a partner learns of a typo from a 422, not from a strange score."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from credit.v1 import common_pb2
from serving_core.ranges import numeric_ranges

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Application(Strict):
    """A new application; fields of Home Credit's application table (see common.proto)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "contract_type": "Cash loans", "amt_income_total": 202500.0,
            "amt_credit": 406597.5, "amt_annuity": 24700.5, "amt_goods_price": 351000.0,
            "days_birth": -9461, "days_employed": -637, "cnt_children": 0,
            "name_income_type": "Working", "ext_source_2": 0.26, "ext_source_3": 0.14,
            "numeric_fields": {"REGION_RATING_CLIENT": 2},
            "category_fields": {"NAME_TYPE_SUITE": "Unaccompanied"},
        }]},
    )  # fmt: skip

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
    days_employed: int | None = Field(
        None, ge=LIMITS["DAYS_EMPLOYED"][0], le=NO_EMPLOYMENT,
        description="negative days; 365243 or absent: no employment (pensioner, unemployed)",
    )  # fmt: skip
    cnt_children: int | None = Field(
        None, ge=LIMITS["CNT_CHILDREN"][0], le=LIMITS["CNT_CHILDREN"][1]
    )
    cnt_fam_members: float | None = Field(
        None, ge=LIMITS["CNT_FAM_MEMBERS"][0], le=LIMITS["CNT_FAM_MEMBERS"][1], allow_inf_nan=False
    )
    code_gender: Text | None = None
    flag_own_car: Literal["Y", "N"] | None = None
    flag_own_realty: Literal["Y", "N"] | None = None
    name_income_type: Text | None = None
    name_education_type: Text | None = None
    name_family_status: Text | None = None
    name_housing_type: Text | None = None
    occupation_type: Text | None = None
    organization_type: Text | None = None
    ext_source_1: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    ext_source_2: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    ext_source_3: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    numeric_fields: dict[FieldName, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=200, description="Other numeric Kaggle fields"
    )
    category_fields: dict[FieldName, Text] = Field(
        default_factory=dict, max_length=200, description="Other categorical Kaggle fields"
    )

    @field_validator("days_employed")
    @classmethod
    def _employment(cls, value: int | None) -> int | None:
        high = LIMITS["DAYS_EMPLOYED"][1]
        if value is not None and high < value != NO_EMPLOYMENT:
            raise ValueError(f"must be at most {high:g}, or {NO_EMPLOYMENT} (no employment)")
        return value

    def to_proto(self) -> common_pb2.Application:
        fields = self.model_dump(exclude_none=True)
        return common_pb2.Application(**fields)


class ScoreRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"client_id": 100002}, {"client_id": 100002,
                                                                 "simulation": True}]},
    )  # fmt: skip

    client_id: ClientId | None = None
    application: Application | None = None
    simulation: bool = Field(
        False, strict=True,  # true or false only: "yes" or 0 must not decide anything
        description="A what-if: scored and logged as a simulation, not a decision.",
    )  # fmt: skip


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


class ModelCard(BaseModel):
    model_version: str
    model_name: str
    trained_at: datetime | None
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
    quantiles: dict[str, float]


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
    created_at: datetime
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
    observed_at: Annotated[date, AfterValidator(_not_future)] = Field(
        description="When the outcome was established (ISO date, not in the future)."
    )


class Outcome(BaseModel):
    decision_id: str
    defaulted: bool
    observed_at: date
    reported_at: datetime = Field(description="When the outcome was first recorded.")
    status: Literal["new", "unchanged"] = Field(
        description="new (201): recorded now; unchanged (200): this outcome was recorded before."
    )


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
