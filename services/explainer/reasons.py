"""Principal reasons: what a lender may tell an applicant, from the model's contributions.

A refused applicant is owed the principal reasons that actually drove the decision,
specific and accurate, and more than four is not helpful (Regulation B, 12 CFR
1002.9(b)(2) and its commentary; CFPB Circular 2023-03); the EU AI Act (Art. 86) and GDPR
Art. 22 ask for the main elements of the decision in meaningful terms. So:

* features are grouped into **factors** a lender may cite (the allow-list below); correlated
  variants of one factor (the EXT_SOURCE family, the ratios of one amount) add up to one
  reason, so one cause is never listed three times;
* features outside the allow-list are never cited: the hour or weekday of the application,
  protected attributes (gender, marital or family status) and their direct proxies (age,
  unless the deployment allows it; address and neighbourhood), and facts that are not the
  applicant's (their social circle's defaults, the building they live in, which documents
  or phones they gave). They still count in the score and in the contributions listed
  beside the reasons; they just cannot be given as a reason;
* factors are ranked by their summed contribution (log-odds), largest first, at most
  ``MAX_REASONS`` per side; each reason names the factor in plain English or French and the
  applicant's value of its leading feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serving_core import wording

MAX_REASONS = 4


@dataclass(frozen=True)
class Factor:
    id: str
    en: str
    fr: str
    pattern: re.Pattern[str]


def _factor(id_: str, en: str, fr: str, pattern: str) -> Factor:
    return Factor(id_, en, fr, re.compile(pattern))


# Order matters: the first factor whose pattern matches a feature's name takes it.
FACTORS: tuple[Factor, ...] = (
    _factor(
        "external_scores", "External credit scores", "Scores de crédit externes", r"^EXT_SOURCE_"
    ),
    _factor(
        "credit_amount",
        "Amount of credit requested",
        "Montant du crédit demandé",
        r"^(AMT_CREDIT|AMT_GOODS_PRICE|GOODS_CREDIT_RATIO|CREDIT_INCOME_RATIO)$",
    ),
    _factor(
        "repayment_burden",
        "Size of the repayments",
        "Poids des remboursements",
        r"^(AMT_ANNUITY|ANNUITY_INCOME_RATIO|CREDIT_TERM_MONTHS)$",
    ),
    _factor(
        "income",
        "Income",
        "Revenus",
        r"^(AMT_INCOME_TOTAL|INCOME_PER_PERSON|"
        r"NAME_INCOME_TYPE)$",
    ),
    _factor(
        "employment",
        "Employment",
        "Emploi",
        r"^(DAYS_EMPLOYED|DAYS_EMPLOYED_ANOMALY|"
        r"EMPLOYED_AGE_RATIO|OCCUPATION_TYPE|ORGANIZATION_TYPE)$",
    ),
    _factor("education", "Education", "Niveau d'études", r"^NAME_EDUCATION_TYPE$"),
    _factor(
        "assets",
        "Home and car ownership",
        "Logement et véhicule",
        r"^(NAME_HOUSING_TYPE|FLAG_OWN_REALTY|FLAG_OWN_CAR|OWN_CAR_AGE)$",
    ),
    _factor(
        "loan_type", "Type of loan requested", "Type de crédit demandé", r"^NAME_CONTRACT_TYPE$"
    ),
    _factor(
        "credit_enquiries",
        "Recent credit enquiries",
        "Demandes de crédit récentes",
        r"^AMT_REQ_CREDIT_BUREAU_",
    ),
    _factor(
        "bureau_delinquency",
        "Late payments reported by other lenders",
        "Retards de paiement signalés par d'autres prêteurs",
        r"^(BUREAU_.*(OVERDUE|PROLONG).*|BB_(LATE|WORST).*)$",
    ),
    _factor(
        "bureau_debt",
        "Debts with other lenders",
        "Dettes auprès d'autres prêteurs",
        r"^BUREAU_(AMT_|DEBT_|CREDIT_CARD_SHARE|MICROLOAN)",
    ),
    _factor(
        "bureau_history",
        "Credit history with other lenders",
        "Historique de crédit auprès d'autres prêteurs",
        r"^(BUREAU_|BB_)",
    ),
    _factor(
        "previous_refusals",
        "Previous applications refused",
        "Demandes précédentes refusées",
        r"^PREV_.*REFUSED",
    ),
    _factor("previous_loans", "Previous loans with us", "Crédits précédents chez nous", r"^PREV_"),
    _factor(
        "repayment_history",
        "Late or partial repayments of previous loans",
        "Remboursements en retard ou partiels de crédits précédents",
        r"^(INST_|POS_|CC_SK_DPD)",
    ),
    _factor("revolving_credit", "Credit card use", "Utilisation de la carte de crédit", r"^CC_"),
)

# Never cited, whatever their contribution (checked before FACTORS, so no pattern above can
# let one through by mistake).
NEVER_CITED = re.compile(
    r"^(CODE_GENDER|NAME_FAMILY_STATUS|CNT_CHILDREN|CNT_FAM_MEMBERS|NAME_TYPE_SUITE"
    r"|WEEKDAY_APPR_PROCESS_START|HOUR_APPR_PROCESS_START|REGION_.*|REG_.*|LIVE_.*"
    r"|.*_SOCIAL_CIRCLE|FLAG_DOCUMENT_.*|FLAG_(MOBIL|EMP_PHONE|WORK_PHONE|CONT_MOBILE|PHONE"
    r"|EMAIL)|DAYS_(REGISTRATION|ID_PUBLISH|LAST_PHONE_CHANGE)"
    r"|.*_(AVG|MODE|MEDI)|FONDKAPREMONT_MODE|HOUSETYPE_MODE|WALLSMATERIAL_MODE"
    r"|EMERGENCYSTATE_MODE|TOTALAREA_MODE)$"
)
AGE = "DAYS_BIRTH"
AGE_FACTOR = Factor("age", "Age", "Âge", re.compile(r"^DAYS_BIRTH$"))


def factor_of(feature: str, *, cite_age: bool = False) -> Factor | None:
    """The citable factor a feature belongs to, or None when it may never be given as a
    reason. Age only where the deployment's law allows it (``cite_age``)."""
    if feature == AGE:
        return AGE_FACTOR if cite_age else None
    if NEVER_CITED.match(feature):
        return None
    return next((f for f in FACTORS if f.pattern.match(feature)), None)


@dataclass(frozen=True)
class Reason:
    factor: str
    feature: str  # the factor's leading feature for this client
    features: tuple[str, ...]  # every feature of the factor that moved the score this way
    text: str
    contribution: float  # the factor's summed contribution (log-odds)


DIRECTION = {
    "en": ("which raises the risk", "which lowers the risk"),
    "fr": ("ce qui augmente le risque", "ce qui diminue le risque"),
}


def _text(factor: Factor, spec: dict[str, Any], value: Any, raises: bool, lang: str) -> str:
    name = factor.fr if lang == "fr" else factor.en
    detail = wording.label(spec, lang)
    shown = wording.format_value(spec, value, lang)
    direction = DIRECTION[lang][0 if raises else 1]
    separator = " : " if lang == "fr" else ": "
    if detail.lower() == name.lower():
        return f"{name}{separator}{shown}, {direction}."
    return f"{name} ({detail[:1].lower()}{detail[1:]}{separator}{shown}), {direction}."


def principal_reasons(
    contributions: dict[str, float],
    features: dict[str, Any],
    specs: dict[str, dict[str, Any]],
    lang: str,
    *,
    raising: bool,
    limit: int = MAX_REASONS,
    cite_age: bool = False,
) -> list[Reason]:
    """At most ``limit`` citable factors moving the score up (``raising``) or down, by
    their summed contribution, largest first."""
    sign = 1.0 if raising else -1.0
    groups: dict[str, list[tuple[str, float]]] = {}
    factors: dict[str, Factor] = {}
    for feature, value in contributions.items():
        factor = factor_of(feature, cite_age=cite_age)
        if factor is not None and value != 0:
            groups.setdefault(factor.id, []).append((feature, value))
            factors[factor.id] = factor
    # A factor's effect is its net contribution: variants pulling both ways partly cancel.
    net = {factor_id: sum(v for _, v in members) for factor_id, members in groups.items()}
    ranked = sorted((f for f in net if net[f] * sign > 0), key=lambda f: -sign * net[f])
    reasons = []
    for factor_id in ranked[:limit]:
        members = sorted(
            (item for item in groups[factor_id] if item[1] * sign > 0),
            key=lambda item: -sign * item[1],
        )
        lead = members[0][0]
        reasons.append(
            Reason(
                factor=factor_id,
                feature=lead,
                features=tuple(name for name, _ in members),
                text=_text(factors[factor_id], specs[lead], features.get(lead), raising, lang),
                contribution=float(net[factor_id]),
            )
        )
    return reasons
