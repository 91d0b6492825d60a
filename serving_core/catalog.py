"""What each feature means, in plain English and French: the feature schema's vocabulary.

The explainer turns SHAP contributions into sentences and the dashboard labels its charts
from these words, so every feature the pipeline makes is declared here with a label, a
description and a unit (how its value reads: money, years, a share...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

# days: a date as an offset from the application (negative = past), read as a duration in
# years; day_count: a number of days (days past due, days paid early), read as days.
Unit = Literal[
    "money",
    "days",
    "day_count",
    "years",
    "ratio",
    "share",
    "score",
    "count",
    "flag",
    "category",
    "",
]


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    source: str
    label_en: str
    label_fr: str
    description_en: str = ""
    description_fr: str = ""
    unit: Unit = ""
    dtype: Literal["float", "category"] = "float"
    categories: tuple[str, ...] = ()
    protected: bool = False  # measured for fairness, not a model input by default
    actionable: bool = False  # the applicant can change it (what-if / counterfactuals)
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        out = {
            "name": self.name,
            "dtype": self.dtype,
            "source": self.source,
            "label": {"en": self.label_en, "fr": self.label_fr},
            "description": {
                "en": self.description_en or self.label_en,
                "fr": self.description_fr or self.label_fr,
            },
            "unit": self.unit,
            "protected": self.protected,
            "actionable": self.actionable,
        }
        if self.dtype == "category":
            out["categories"] = list(data["categories"])
        return out


TABLE_LABELS: dict[str, tuple[str, str]] = {
    "application": ("Application", "Demande"),
    "bureau": ("Credit bureau", "Bureau de crédit"),
    "bureau_balance": ("Credit bureau monthly status", "Bureau de crédit, statut mensuel"),
    "previous_application": ("Previous applications", "Demandes précédentes"),
    "POS_CASH_balance": ("Previous point-of-sale/cash loans", "Prêts précédents (magasin/espèces)"),
    "installments_payments": ("Past repayments", "Remboursements passés"),
    "credit_card_balance": ("Credit card", "Carte de crédit"),
}

HOW_LABELS: dict[str, tuple[str, str]] = {
    "mean": ("average", "moyenne"),
    "max": ("highest", "maximum"),
    "min": ("lowest", "minimum"),
    "sum": ("total", "total"),
    "count": ("number", "nombre"),
    "share": ("share", "part"),
    "last": ("latest", "dernier"),
}

SUBSET_LABELS: dict[str, tuple[str, str]] = {
    "": ("", ""),
    "active": ("active credits", "crédits en cours"),
    "closed": ("closed credits", "crédits clôturés"),
    "approved": ("approved applications", "demandes acceptées"),
    "refused": ("refused applications", "demandes refusées"),
    "recent": ("last 12 months", "12 derniers mois"),
}

# Plain words for the application fields an advisor talks about. Other raw fields get a
# label built from their Kaggle description (see raw_application_info).
APPLICATION_LABELS: dict[str, tuple[str, str, Unit]] = {
    "NAME_CONTRACT_TYPE": ("Type of loan", "Type de prêt", "category"),
    "CODE_GENDER": ("Gender", "Genre", "category"),
    "FLAG_OWN_CAR": ("Owns a car", "Possède une voiture", "category"),
    "FLAG_OWN_REALTY": ("Owns a home", "Possède un logement", "category"),
    "CNT_CHILDREN": ("Number of children", "Nombre d'enfants", "count"),
    "AMT_INCOME_TOTAL": ("Annual income", "Revenu annuel", "money"),
    "AMT_CREDIT": ("Credit amount", "Montant du crédit", "money"),
    "AMT_ANNUITY": ("Loan annuity", "Annuité du prêt", "money"),
    "AMT_GOODS_PRICE": ("Price of the goods", "Prix du bien financé", "money"),
    "NAME_TYPE_SUITE": ("Accompanied by", "Accompagné par", "category"),
    "NAME_INCOME_TYPE": ("Income type", "Type de revenu", "category"),
    "NAME_EDUCATION_TYPE": ("Education", "Niveau d'études", "category"),
    "NAME_FAMILY_STATUS": ("Family status", "Situation familiale", "category"),
    "NAME_HOUSING_TYPE": ("Housing", "Logement", "category"),
    "REGION_POPULATION_RELATIVE": (
        "Population density of the region",
        "Densité de population de la région",
        "ratio",
    ),
    "DAYS_BIRTH": ("Age", "Âge", "days"),
    "DAYS_EMPLOYED": ("Time in current job", "Ancienneté dans l'emploi", "days"),
    "DAYS_REGISTRATION": (
        "Time since registration changed",
        "Ancienneté de l'enregistrement",
        "days",
    ),
    "DAYS_ID_PUBLISH": (
        "Time since the ID document was issued",
        "Ancienneté de la pièce d'identité",
        "days",
    ),
    "OWN_CAR_AGE": ("Age of the car", "Âge de la voiture", "years"),
    "OCCUPATION_TYPE": ("Occupation", "Profession", "category"),
    "CNT_FAM_MEMBERS": ("Family members", "Membres de la famille", "count"),
    "REGION_RATING_CLIENT": ("Region rating", "Notation de la région", "score"),
    "REGION_RATING_CLIENT_W_CITY": (
        "Region rating (with city)",
        "Notation de la région (avec la ville)",
        "score",
    ),
    "WEEKDAY_APPR_PROCESS_START": (
        "Weekday of the application",
        "Jour de la semaine de la demande",
        "category",
    ),
    "HOUR_APPR_PROCESS_START": ("Hour of the application", "Heure de la demande", "count"),
    "ORGANIZATION_TYPE": ("Employer's sector", "Secteur de l'employeur", "category"),
    "EXT_SOURCE_1": ("External score 1", "Score externe 1", "score"),
    "EXT_SOURCE_2": ("External score 2", "Score externe 2", "score"),
    "EXT_SOURCE_3": ("External score 3", "Score externe 3", "score"),
    "DAYS_LAST_PHONE_CHANGE": (
        "Time since the phone was changed",
        "Ancienneté du téléphone",
        "days",
    ),
    "FONDKAPREMONT_MODE": ("Building: repair fund", "Immeuble : fonds de travaux", "category"),
    "HOUSETYPE_MODE": ("Building: type of house", "Immeuble : type de logement", "category"),
    "WALLSMATERIAL_MODE": ("Building: wall material", "Immeuble : matériau des murs", "category"),
    "EMERGENCYSTATE_MODE": ("Building: emergency state", "Immeuble : état d'urgence", "category"),
    "OBS_30_CNT_SOCIAL_CIRCLE": (
        "Social circle with 30-day overdue observed",
        "Entourage observé avec 30 j de retard",
        "count",
    ),
    "DEF_30_CNT_SOCIAL_CIRCLE": (
        "Social circle that defaulted (30 days)",
        "Entourage en défaut (30 jours)",
        "count",
    ),
    "OBS_60_CNT_SOCIAL_CIRCLE": (
        "Social circle with 60-day overdue observed",
        "Entourage observé avec 60 j de retard",
        "count",
    ),
    "DEF_60_CNT_SOCIAL_CIRCLE": (
        "Social circle that defaulted (60 days)",
        "Entourage en défaut (60 jours)",
        "count",
    ),
}

# Fields an applicant can change in a new application (what-if and counterfactual hints).
ACTIONABLE = frozenset({"AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE", "CREDIT_TERM_MONTHS"})
PROTECTED = frozenset({"CODE_GENDER"})

BUILDING_PARTS = {
    "APARTMENTS": ("apartment size", "taille de l'appartement"),
    "BASEMENTAREA": ("basement area", "surface de la cave"),
    "YEARS_BEGINEXPLUATATION": ("years since first use", "années depuis la mise en service"),
    "YEARS_BUILD": ("age of the building", "âge de l'immeuble"),
    "COMMONAREA": ("common area", "parties communes"),
    "ELEVATORS": ("elevators", "ascenseurs"),
    "ENTRANCES": ("entrances", "entrées"),
    "FLOORSMAX": ("highest floor", "étage le plus haut"),
    "FLOORSMIN": ("lowest floor", "étage le plus bas"),
    "LANDAREA": ("land area", "surface du terrain"),
    "LIVINGAPARTMENTS": ("living apartments", "appartements habités"),
    "LIVINGAREA": ("living area", "surface habitable"),
    "NONLIVINGAPARTMENTS": ("non-living apartments", "locaux non habités"),
    "NONLIVINGAREA": ("non-living area", "surface non habitable"),
    "TOTALAREA": ("total area", "surface totale"),
}
BUILDING_STATS = {
    "AVG": ("average", "moyenne"),
    "MODE": ("mode", "mode"),
    "MEDI": ("median", "médiane"),
}


def raw_application_info(
    name: str, kind: str, description: str, categories: tuple[str, ...]
) -> FeatureInfo:
    """The catalogue entry of a raw application field."""
    dtype: Literal["float", "category"] = "category" if kind == "category" else "float"
    if name in APPLICATION_LABELS:
        en, fr, unit = APPLICATION_LABELS[name]
    elif name.startswith("FLAG_DOCUMENT_"):
        number = name.removeprefix("FLAG_DOCUMENT_")
        en, fr, unit = f"Document {number} provided", f"Document {number} fourni", "flag"
    elif name.startswith("FLAG_") or name.startswith(("REG_", "LIVE_")):
        en, fr, unit = description or name, f"Indicateur {name}", "flag"
    elif name.startswith("AMT_REQ_CREDIT_BUREAU_"):
        period = name.removeprefix("AMT_REQ_CREDIT_BUREAU_").lower()
        en = f"Credit bureau enquiries ({period})"
        fr = f"Consultations du bureau de crédit ({period})"
        unit = "count"
    else:
        part, _, stat = name.rpartition("_")
        if part in BUILDING_PARTS and stat in BUILDING_STATS:
            en = f"Building: {BUILDING_PARTS[part][0]} ({BUILDING_STATS[stat][0]})"
            fr = f"Immeuble : {BUILDING_PARTS[part][1]} ({BUILDING_STATS[stat][1]})"
            unit = "ratio"
        else:
            en, fr, unit = description or name, name, ""
    return FeatureInfo(
        name=name,
        source="application",
        label_en=en,
        label_fr=fr,
        description_en=description or en,
        description_fr=fr,
        unit="category" if dtype == "category" else unit,
        dtype=dtype,
        categories=categories if dtype == "category" else (),
        protected=name in PROTECTED,
        actionable=name in ACTIONABLE,
    )


def aggregate_info(
    name: str,
    source: str,
    what: tuple[str, str],
    how: str,
    subset: str = "",
    unit: Unit = "",
) -> FeatureInfo:
    """Label of a per-client aggregate: '<table>: <how> <what> (<subset>)'."""
    table_en, table_fr = TABLE_LABELS[source]
    how_en, how_fr = HOW_LABELS[how]
    subset_en, subset_fr = SUBSET_LABELS[subset]
    suffix_en = f" ({subset_en})" if subset_en else ""
    suffix_fr = f" ({subset_fr})" if subset_fr else ""
    return FeatureInfo(
        name=name,
        source=source,
        label_en=f"{table_en}: {how_en} {what[0]}{suffix_en}",
        label_fr=f"{table_fr} : {what[1]} ({how_fr}){suffix_fr}",
        unit=unit,
    )
