"""Feature values and contributions in plain English and French, from the feature schema.

"Annuity as a share of income: 38%, which raises the risk." Values read in the feature's
unit (money, years, shares...), so an advisor can read the sentence to the client.
"""

from __future__ import annotations

import math
from typing import Any

Lang = str  # "en" | "fr"
DAYS_PER_YEAR = 365.25

WORDS = {
    "en": {
        "raises": "which raises the risk",
        "lowers": "which lowers the risk",
        "missing": "not known",
        "yes": "yes",
        "no": "no",
        "years": "years",
        "months": "months",
        "days": "days",
    },
    "fr": {
        "raises": "ce qui augmente le risque",
        "lowers": "ce qui diminue le risque",
        "missing": "inconnu",
        "yes": "oui",
        "no": "non",
        "years": "ans",
        "months": "mois",
        "days": "jours",
    },
}


def _number(value: float, decimals: int, lang: Lang) -> str:
    text = f"{value:,.{decimals}f}"
    if lang == "fr":  # 202 500,5
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def format_value(spec: dict[str, Any], value: Any, lang: Lang) -> str:
    words = WORDS[lang]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return words["missing"]
    unit = spec.get("unit", "")
    if spec.get("dtype") == "category" or isinstance(value, str):
        return str(value)
    value = float(value)
    if unit == "money":
        return _number(value, 0, lang)
    if unit == "days":
        return f"{_number(abs(value) / DAYS_PER_YEAR, 1, lang)} {words['years']}"
    if unit == "day_count":
        return f"{_number(value, 0 if value == round(value) else 1, lang)} {words['days']}"
    if unit == "years":
        return f"{_number(value, 0, lang)} {words['years']}"
    if unit == "share":
        return f"{_number(100 * value, 0, lang)}{' %' if lang == 'fr' else '%'}"
    if unit == "flag":
        return words["yes"] if value >= 0.5 else words["no"]
    if unit == "count":
        return _number(value, 0 if value == round(value) else 1, lang)
    return _number(value, 2, lang)


def label(spec: dict[str, Any], lang: Lang) -> str:
    return spec["label"].get(lang) or spec["label"]["en"]


def reason(spec: dict[str, Any], value: Any, contribution: float, lang: Lang) -> str:
    direction = WORDS[lang]["raises" if contribution > 0 else "lowers"]
    separator = " : " if lang == "fr" else ": "
    return f"{label(spec, lang)}{separator}{format_value(spec, value, lang)}, {direction}."
