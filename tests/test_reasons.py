"""Principal reasons: the rules a lender's adverse-action notice must follow, pinned."""

from __future__ import annotations

import pytest

from services.explainer.reasons import MAX_REASONS, factor_of, principal_reasons

SPECS = {
    name: {"name": name, "dtype": "float", "unit": unit, "label": {"en": en, "fr": fr}}
    for name, unit, en, fr in [
        ("EXT_SOURCE_1", "score", "External score 1", "Score externe 1"),
        ("EXT_SOURCE_2", "score", "External score 2", "Score externe 2"),
        (
            "EXT_SOURCE_MEAN",
            "score",
            "Average of the external scores",
            "Moyenne des scores externes",
        ),
        ("EXT_SOURCE_MIN", "score", "Lowest external score", "Score externe le plus bas"),
        ("AMT_CREDIT", "money", "Credit amount", "Montant du crédit"),
        (
            "CREDIT_INCOME_RATIO",
            "ratio",
            "Credit as a multiple of income",
            "Crédit en multiple du revenu",
        ),
        (
            "ANNUITY_INCOME_RATIO",
            "share",
            "Annuity as a share of income",
            "Annuité en part du revenu",
        ),
        ("HOUR_APPR_PROCESS_START", "count", "Hour of the application", "Heure de la demande"),
        ("CODE_GENDER", "", "Gender", "Sexe"),
        ("DAYS_BIRTH", "days", "Age", "Âge"),
        ("INST_DPD_MAX", "day_count", "Most days paid late", "Retard de paiement maximal"),
        ("BUREAU_DEBT_RATIO_MAX_ACTIVE", "share", "Debt ratio", "Taux d'endettement"),
        ("PREV_REFUSED_SHARE", "share", "Share refused", "Part refusée"),
    ]
}
FEATURES = {
    "EXT_SOURCE_1": 0.2,
    "EXT_SOURCE_2": 0.3,
    "EXT_SOURCE_MEAN": 0.25,
    "EXT_SOURCE_MIN": 0.2,
    "AMT_CREDIT": 900_000.0,
    "CREDIT_INCOME_RATIO": 6.0,
    "ANNUITY_INCOME_RATIO": 0.4,
    "HOUR_APPR_PROCESS_START": 3.0,
    "CODE_GENDER": "M",
    "DAYS_BIRTH": -8_000.0,
    "INST_DPD_MAX": 30.0,
    "BUREAU_DEBT_RATIO_MAX_ACTIVE": 0.9,
    "PREV_REFUSED_SHARE": 0.5,
}


@pytest.mark.parametrize(
    "feature",
    [
        "CODE_GENDER",
        "DAYS_BIRTH",
        "HOUR_APPR_PROCESS_START",
        "WEEKDAY_APPR_PROCESS_START",
        "NAME_FAMILY_STATUS",
        "CNT_CHILDREN",
        "CNT_FAM_MEMBERS",
        "REGION_RATING_CLIENT",
        "REG_CITY_NOT_WORK_CITY",
        "DEF_30_CNT_SOCIAL_CIRCLE",
        "FLAG_DOCUMENT_3",
        "FLAG_EMAIL",
        "APARTMENTS_AVG",
        "WALLSMATERIAL_MODE",
        "NAME_TYPE_SUITE",
        "SOMETHING_NEW",
    ],
)
def test_never_cited(feature: str) -> None:
    """Time of application, protected attributes and their proxies, facts that are not the
    applicant's, and anything not on the allow-list: never a reason."""
    assert factor_of(feature) is None


def test_age_only_where_the_deployment_allows_it() -> None:
    assert factor_of("DAYS_BIRTH") is None
    factor = factor_of("DAYS_BIRTH", cite_age=True)
    assert factor is not None and factor.id == "age"
    assert factor_of("CODE_GENDER", cite_age=True) is None


def test_correlated_variants_count_as_one_reason_ranked_by_their_sum() -> None:
    contributions = {
        "EXT_SOURCE_1": 0.10,
        "EXT_SOURCE_2": 0.15,
        "EXT_SOURCE_MEAN": 0.30,
        "EXT_SOURCE_MIN": -0.05,
        "AMT_CREDIT": 0.20,
        "CREDIT_INCOME_RATIO": 0.25,
        "ANNUITY_INCOME_RATIO": 0.30,
        "HOUR_APPR_PROCESS_START": 2.0,
        "CODE_GENDER": 1.5,
        "DAYS_BIRTH": 1.0,
        "INST_DPD_MAX": 0.05,
        "BUREAU_DEBT_RATIO_MAX_ACTIVE": 0.04,
        "PREV_REFUSED_SHARE": 0.01,
    }
    reasons = principal_reasons(contributions, FEATURES, SPECS, "en", raising=True)
    assert len(reasons) == MAX_REASONS
    assert [r.factor for r in reasons] == [
        "external_scores",
        "credit_amount",
        "repayment_burden",
        "repayment_history",
    ]
    ext = reasons[0]
    assert ext.contribution == pytest.approx(0.10 + 0.15 + 0.30 - 0.05)  # net effect
    assert ext.feature == "EXT_SOURCE_MEAN"  # the variant that moved it most
    assert ext.features == ("EXT_SOURCE_MEAN", "EXT_SOURCE_2", "EXT_SOURCE_1")
    assert ext.text == (
        "External credit scores (average of the external scores: 0.25), which raises the risk."
    )
    assert reasons[1].contribution == pytest.approx(0.45)
    cited = {f for r in reasons for f in r.features}
    assert not cited & {"HOUR_APPR_PROCESS_START", "CODE_GENDER", "DAYS_BIRTH"}
    french = principal_reasons(contributions, FEATURES, SPECS, "fr", raising=True)
    assert french[0].text.startswith("Scores de crédit externes (moyenne des scores externes")
    assert french[0].text.endswith("ce qui augmente le risque.")
    assert "900\u202f000" in french[1].text or "6,00" in french[1].text


def test_lowering_reasons_and_a_factor_that_cancels_out() -> None:
    contributions = {
        "EXT_SOURCE_1": -0.3,
        "EXT_SOURCE_2": 0.1,
        "AMT_CREDIT": 0.2,
        "CREDIT_INCOME_RATIO": -0.25,
    }
    lowering = principal_reasons(contributions, FEATURES, SPECS, "en", raising=False)
    assert [(r.factor, round(r.contribution, 6)) for r in lowering] == [
        ("external_scores", -0.2),
        ("credit_amount", -0.05),
    ]
    assert all(r.text.endswith("which lowers the risk.") for r in lowering)
    # A factor whose variants net out downwards is no adverse reason.
    raising = principal_reasons(contributions, FEATURES, SPECS, "en", raising=True)
    assert raising == []


def test_application_features_are_classified_deliberately() -> None:
    """Of the application's own features, the protected and time-of-application ones are
    never cited; the external scores, amounts, income and employment are."""
    from serving_core.application import application_catalog

    names = {info.name for info in application_catalog()}
    citable = {n for n in names if factor_of(n) is not None}
    assert {
        "EXT_SOURCE_MEAN",
        "EXT_SOURCE_3",
        "AMT_CREDIT",
        "ANNUITY_INCOME_RATIO",
        "CREDIT_TERM_MONTHS",
        "AMT_INCOME_TOTAL",
        "DAYS_EMPLOYED",
        "NAME_EDUCATION_TYPE",
    } <= citable
    assert not citable & {
        "CODE_GENDER",
        "DAYS_BIRTH",
        "HOUR_APPR_PROCESS_START",
        "WEEKDAY_APPR_PROCESS_START",
        "NAME_FAMILY_STATUS",
        "CNT_CHILDREN",
        "REGION_RATING_CLIENT_W_CITY",
        "OBS_60_CNT_SOCIAL_CIRCLE",
    }


def test_counterfactual_at_the_smallest_amounts_finds_nothing_rather_than_failing() -> None:
    """An applicant already at the smallest credit and annuity an application may have: no
    realistic smaller loan exists, so the hint says so (found the fuzz test: a 502)."""
    from services.common.application import RANGES
    from services.explainer.handler import NOT_FOUND, ExplainerHandler

    features = {"AMT_CREDIT": RANGES["AMT_CREDIT"][0], "AMT_ANNUITY": RANGES["AMT_ANNUITY"][0]}
    handler = ExplainerHandler.__new__(ExplainerHandler)  # counterfactual needs no backend
    result = handler.counterfactual(None, features, 0.9, "refused", "en")  # type: ignore[arg-type]
    assert result.applicable and not result.found and result.text == NOT_FOUND["en"]
