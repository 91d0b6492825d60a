"""A stored client's features, grouped and worded for the advisor's dashboard."""

from __future__ import annotations

from typing import Any

from credit.v1 import scoring_pb2
from services.gateway.schemas import ClientProfile, ProfileField, ProfileGroup
from serving_core import wording

# (group id, English, French); fields are assigned by the first rule that matches.
GROUPS: list[tuple[str, str, str]] = [
    ("identity", "Identity", "Identité"),
    ("income_credit", "Income and credit", "Revenus et crédit"),
    ("employment", "Employment", "Emploi"),
    ("family", "Family", "Famille"),
    ("housing", "Housing", "Logement"),
    ("external_scores", "External scores", "Scores externes"),
    ("bureau", "Credit bureau history", "Historique auprès du bureau de crédit"),
    ("previous_applications", "Previous applications", "Demandes précédentes"),
    ("repayments", "Repayment history", "Historique de remboursement"),
    ("other", "Other information", "Autres informations"),
]
EXACT = {
    "identity": {
        "CODE_GENDER",
        "DAYS_BIRTH",
        "NAME_EDUCATION_TYPE",
        "DAYS_ID_PUBLISH",
        "DAYS_REGISTRATION",
        "NAME_TYPE_SUITE",
        "DAYS_LAST_PHONE_CHANGE",
    },
    "income_credit": {
        "NAME_CONTRACT_TYPE",
        "NAME_INCOME_TYPE",
        "CREDIT_TERM_MONTHS",
        "INCOME_PER_PERSON",
    },
    "employment": {"OCCUPATION_TYPE", "ORGANIZATION_TYPE", "EMPLOYED_AGE_RATIO"},
    "family": {"CNT_CHILDREN", "CNT_FAM_MEMBERS", "NAME_FAMILY_STATUS"},
    "housing": {
        "NAME_HOUSING_TYPE",
        "FLAG_OWN_CAR",
        "FLAG_OWN_REALTY",
        "OWN_CAR_AGE",
        "REGION_POPULATION_RELATIVE",
        "REGION_RATING_CLIENT",
        "REGION_RATING_CLIENT_W_CITY",
    },
}
SOURCES = {
    "bureau": "bureau",
    "bureau_balance": "bureau",
    "previous_application": "previous_applications",
    "installments_payments": "repayments",
    "credit_card_balance": "repayments",
    "POS_CASH_balance": "repayments",
}


def group_of(spec: scoring_pb2.FeatureSpec) -> str:
    name = spec.name
    for group, names in EXACT.items():
        if name in names:
            return group
    if spec.source in SOURCES:
        return SOURCES[spec.source]
    if name.startswith("AMT_REQ_CREDIT_BUREAU"):
        return "bureau"
    if name.startswith(("AMT_", "ANNUITY_", "CREDIT_", "GOODS_")):
        return "income_credit"
    if name.startswith("DAYS_EMPLOYED"):
        return "employment"
    if name.startswith("EXT_SOURCE"):
        return "external_scores"
    if "SOCIAL_CIRCLE" in name:
        return "family"
    if name.endswith(("_AVG", "_MODE", "_MEDI")) or name.startswith(("REG_", "LIVE_")):
        return "housing"
    return "other"


def build_profile(
    client: scoring_pb2.ClientProfile, model: scoring_pb2.ModelInfo, lang: str
) -> ClientProfile:
    numeric, categorical = client.features.numeric, client.features.categorical
    fields: dict[str, list[ProfileField]] = {group: [] for group, _, _ in GROUPS}
    for spec in model.features:
        value: Any = categorical[spec.name] if spec.name in categorical else numeric.get(spec.name)
        as_dict = {"dtype": spec.dtype, "unit": spec.unit}
        fields[group_of(spec)].append(
            ProfileField(
                name=spec.name,
                label=(spec.label_fr if lang == "fr" else spec.label_en) or spec.name,
                value=value,
                display_value=wording.format_value(as_dict, value, lang),
                unit=spec.unit,
            )
        )
    groups = [
        ProfileGroup(id=group, label=fr if lang == "fr" else en, fields=fields[group])
        for group, en, fr in GROUPS
        if fields[group]
    ]
    return ClientProfile(
        client_id=client.client_id, model_version=client.model_version, lang=lang, groups=groups
    )
