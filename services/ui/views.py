"""What the dashboard shows, as plain functions of the gateway's answers: HTML fragments
(escaped, with roles for screen readers), each chart with its text alternative, and the
what-if application sent back to the gateway. No Gradio state here: ``app`` wires these
into the layout."""

from __future__ import annotations

import html
import math
from typing import Any

from services.ui import charts
from services.ui.texts import percent, t

# Typed fields of the gateway's Application (schemas.Application) by Kaggle column.
TYPED = {
    "NAME_CONTRACT_TYPE": "contract_type", "AMT_INCOME_TOTAL": "amt_income_total",
    "AMT_CREDIT": "amt_credit", "AMT_ANNUITY": "amt_annuity",
    "AMT_GOODS_PRICE": "amt_goods_price", "DAYS_BIRTH": "days_birth",
    "DAYS_EMPLOYED": "days_employed", "CNT_CHILDREN": "cnt_children",
    "CNT_FAM_MEMBERS": "cnt_fam_members", "CODE_GENDER": "code_gender",
    "FLAG_OWN_CAR": "flag_own_car", "FLAG_OWN_REALTY": "flag_own_realty",
    "NAME_INCOME_TYPE": "name_income_type", "NAME_EDUCATION_TYPE": "name_education_type",
    "NAME_FAMILY_STATUS": "name_family_status", "NAME_HOUSING_TYPE": "name_housing_type",
    "OCCUPATION_TYPE": "occupation_type", "ORGANIZATION_TYPE": "organization_type",
    "EXT_SOURCE_1": "ext_source_1", "EXT_SOURCE_2": "ext_source_2",
    "EXT_SOURCE_3": "ext_source_3",
}  # fmt: skip
INTEGER_TYPED = {"days_birth", "days_employed", "cnt_children"}
# The other columns of Home Credit's public application table, which the gateway accepts in
# numeric_fields / category_fields. A what-if re-sends them all (with the client id, so the
# stored credit history is reused): without them the simulated score would differ from the
# real one before anything was edited. Engineered features (ratios, bureau...) are recomputed.
OTHER_APPLICATION_COLUMNS = frozenset([
    "NAME_TYPE_SUITE", "REGION_POPULATION_RELATIVE", "DAYS_REGISTRATION", "DAYS_ID_PUBLISH",
    "OWN_CAR_AGE", "FLAG_MOBIL", "FLAG_EMP_PHONE", "FLAG_WORK_PHONE", "FLAG_CONT_MOBILE",
    "FLAG_PHONE", "FLAG_EMAIL", "REGION_RATING_CLIENT", "REGION_RATING_CLIENT_W_CITY",
    "WEEKDAY_APPR_PROCESS_START", "HOUR_APPR_PROCESS_START", "REG_REGION_NOT_LIVE_REGION",
    "REG_REGION_NOT_WORK_REGION", "LIVE_REGION_NOT_WORK_REGION", "REG_CITY_NOT_LIVE_CITY",
    "REG_CITY_NOT_WORK_CITY", "LIVE_CITY_NOT_WORK_CITY", "FONDKAPREMONT_MODE",
    "HOUSETYPE_MODE", "TOTALAREA_MODE", "WALLSMATERIAL_MODE", "EMERGENCYSTATE_MODE",
    "OBS_30_CNT_SOCIAL_CIRCLE", "DEF_30_CNT_SOCIAL_CIRCLE", "OBS_60_CNT_SOCIAL_CIRCLE",
    "DEF_60_CNT_SOCIAL_CIRCLE", "DAYS_LAST_PHONE_CHANGE", "AMT_REQ_CREDIT_BUREAU_HOUR",
    "AMT_REQ_CREDIT_BUREAU_DAY", "AMT_REQ_CREDIT_BUREAU_WEEK", "AMT_REQ_CREDIT_BUREAU_MON",
    "AMT_REQ_CREDIT_BUREAU_QRT", "AMT_REQ_CREDIT_BUREAU_YEAR",
    *[f"FLAG_DOCUMENT_{n}" for n in range(2, 22)],
    *[f"{area}_{stat}" for stat in ("AVG", "MODE", "MEDI") for area in (
        "APARTMENTS", "BASEMENTAREA", "YEARS_BEGINEXPLUATATION", "YEARS_BUILD", "COMMONAREA",
        "ELEVATORS", "ENTRANCES", "FLOORSMAX", "FLOORSMIN", "LANDAREA", "LIVINGAPARTMENTS",
        "LIVINGAREA", "NONLIVINGAPARTMENTS", "NONLIVINGAREA")],
])  # fmt: skip


def message(text: str, error: bool = False) -> str:
    # role=alert makes screen readers announce failures; status for the rest.
    role, cls = ("alert", "ui-msg error") if error else ("status", "ui-msg")
    return f'<div role="{role}" class="{cls}">{html.escape(text)}</div>'


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def reasons(lang: str, explanation: dict[str, Any]) -> str:
    def items(reasons: list[dict[str, Any]]) -> str:
        if not reasons:
            return f"- {t(lang, 'none')}"
        return "\n".join(f"- {r['text']}" for r in reasons)

    parts = [f"### {t(lang, 'raising')}", items(explanation["raising"]),
             f"### {t(lang, 'lowering')}", items(explanation["lowering"])]  # fmt: skip
    cf = explanation["counterfactual"]
    if cf["applicable"] and cf["text"]:
        parts += [f"### {t(lang, 'counterfactual')}", cf["text"]]
    return "\n\n".join(parts)


def decision_html(lang: str, probability: float, threshold: float, decision: str,
                   meta: str = "") -> str:  # fmt: skip
    refused = decision == "refused"
    gap = abs(probability - threshold) * 100
    side = "above" if probability > threshold else "below" if probability < threshold else "at"
    line = t(lang, "decision_line", mark="✗" if refused else "✓", word=t(lang, decision),
             p=percent(probability, lang), gap=f"{gap:.1f}".replace(".", "," if lang == "fr"
                                                                    else "."),
             side=t(lang, side), thr=percent(threshold, lang))  # fmt: skip
    # Markdown bold -> HTML by hand: gr.HTML renders no markdown.
    body = html.escape(line)
    while "**" in body:
        body = body.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
    extra = f"<p>{html.escape(meta)}</p>" if meta else ""
    return f'<div class="decision {decision}"><p style="font-size:1.2rem">{body}</p>{extra}</div>'


def waterfall(lang: str, explanation: dict[str, Any]) -> tuple[Any, str]:
    rows = [(f"{c['label']} ({c['display_value']})", c["contribution"])
            for c in explanation["contributions"]]  # fmt: skip
    labels = {"start": t(lang, "waterfall_start"), "others": t(lang, "waterfall_others"),
              "end": t(lang, "waterfall_end")}  # fmt: skip
    fig = charts.waterfall(rows, explanation["base_value"], explanation["other_contributions"],
                           labels, t(lang, "waterfall_title"), t(lang, "waterfall_x"))  # fmt: skip
    up = sum(1 for _, v in rows if v > 0)
    top = rows[0][0] if rows else "-"
    alt = t(lang, "waterfall_alt", up=up, down=len(rows) - up, top=top)
    return fig, alt


def gauge(lang: str, probability: float, threshold: float, decision: str,
           title: str) -> tuple[Any, str]:  # fmt: skip
    fig = charts.gauge(probability, threshold, title, decision == "refused", lang)
    alt = t(lang, "gauge_alt", p=percent(probability, lang), thr=percent(threshold, lang),
            word=t(lang, decision).lower())  # fmt: skip
    return fig, alt


def profile_html(profile: dict[str, Any]) -> str:
    sections = []
    for index, group in enumerate(profile["groups"]):
        rows = "".join(
            f'<tr><th scope="row">{html.escape(f["label"])}</th>'
            f"<td>{html.escape(f['display_value'])}</td></tr>"
            for f in group["fields"]
        )
        opened = " open" if index < 2 else ""  # identity and income first, the rest folded
        sections.append(
            f"<details{opened}><summary>{html.escape(group['label'])}</summary>"
            f"<table><caption class='sr-only' style='position:absolute;left:-9999px'>"
            f"{html.escape(group['label'])}</caption>{rows}</table></details>"
        )
    return f'<div class="profile">{"".join(sections)}</div>'


def whatif_application(values: dict[str, Any], client_id: int, edits: dict[str, Any]) -> dict:
    """The client's application fields (with the advisor's edits) in the gateway's shape."""
    merged = {**values, **{k: v for k, v in edits.items() if v is not None}}
    application: dict[str, Any] = {"client_id": client_id}
    numeric: dict[str, float] = {}
    categorical: dict[str, str] = {}
    for name, value in merged.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name in TYPED:
            field = TYPED[name]
            application[field] = round(value) if field in INTEGER_TYPED else value
        elif name in OTHER_APPLICATION_COLUMNS:
            if isinstance(value, str):
                categorical[name] = value
            else:
                numeric[name] = float(value)
    application["numeric_fields"] = numeric
    application["category_fields"] = categorical
    return application


def plotted(value: Any, unit: str) -> float | None:
    """Days before the application (negative) read better as years, as in the profile."""
    amount = number(value)
    if amount is not None and unit == "days" and amount <= 0:
        return -amount / charts.DAYS_PER_YEAR
    return amount


def axis(lang: str, label: str, unit: str) -> str:
    return f"{label} ({t(lang, 'years')})" if unit == "days" else label


def term(values: dict[str, Any]) -> float | None:
    credit, annuity = number(values.get("AMT_CREDIT")), number(values.get("AMT_ANNUITY"))
    return round(credit / annuity, 1) if credit and annuity else None


def neighbours_summary(code: str, k: int, d: int) -> str:
    """The similar clients as an aggregate: how many of the group defaulted, nobody's own."""
    summary = t(code, "neighbours_summary", k=k, d=d, rate=percent(d / max(k, 1), code, 0))
    return (f'<div class="profile"><h3>{t(code, "neighbours_title")}</h3>'
            f"<p>{html.escape(summary)}</p></div>")  # fmt: skip
