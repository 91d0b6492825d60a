"""What the dashboard shows, as plain functions of the gateway's answers: HTML fragments
(escaped, with roles for screen readers), each chart with its text alternative, and the
what-if application sent back to the gateway. No Gradio state here: ``app`` wires these
into the layout."""

from __future__ import annotations

import html
import math
from typing import Any

from services.ui import charts, formats
from services.ui.texts import category, percent, t, tn
from serving_core.fields import FIELD_OF_COLUMN

MAX_REASONS = 4  # the explainer's own limit (services/explainer/reasons.py)

# Typed fields of the gateway's Application by Kaggle column (one definition:
# serving_core.fields, which the gateway's schema follows).
TYPED = FIELD_OF_COLUMN
INTEGER_TYPED = {"days_birth", "days_employed", "cnt_children"}
# The other columns of Home Credit's public application table, which the gateway accepts in
# numeric_fields / category_fields. A what-if re-sends them all (with the client id, so the
# stored credit history is reused): without them the simulated score would differ from the
# real one before anything was edited. Engineered features (ratios, bureau...) are recomputed.
OTHER_APPLICATION_COLUMNS = frozenset(
    [
        "NAME_TYPE_SUITE",
        "REGION_POPULATION_RELATIVE",
        "DAYS_REGISTRATION",
        "DAYS_ID_PUBLISH",
        "OWN_CAR_AGE",
        "FLAG_MOBIL",
        "FLAG_EMP_PHONE",
        "FLAG_WORK_PHONE",
        "FLAG_CONT_MOBILE",
        "FLAG_PHONE",
        "FLAG_EMAIL",
        "REGION_RATING_CLIENT",
        "REGION_RATING_CLIENT_W_CITY",
        "WEEKDAY_APPR_PROCESS_START",
        "HOUR_APPR_PROCESS_START",
        "REG_REGION_NOT_LIVE_REGION",
        "REG_REGION_NOT_WORK_REGION",
        "LIVE_REGION_NOT_WORK_REGION",
        "REG_CITY_NOT_LIVE_CITY",
        "REG_CITY_NOT_WORK_CITY",
        "LIVE_CITY_NOT_WORK_CITY",
        "FONDKAPREMONT_MODE",
        "HOUSETYPE_MODE",
        "TOTALAREA_MODE",
        "WALLSMATERIAL_MODE",
        "EMERGENCYSTATE_MODE",
        "OBS_30_CNT_SOCIAL_CIRCLE",
        "DEF_30_CNT_SOCIAL_CIRCLE",
        "OBS_60_CNT_SOCIAL_CIRCLE",
        "DEF_60_CNT_SOCIAL_CIRCLE",
        "DAYS_LAST_PHONE_CHANGE",
        "AMT_REQ_CREDIT_BUREAU_HOUR",
        "AMT_REQ_CREDIT_BUREAU_DAY",
        "AMT_REQ_CREDIT_BUREAU_WEEK",
        "AMT_REQ_CREDIT_BUREAU_MON",
        "AMT_REQ_CREDIT_BUREAU_QRT",
        "AMT_REQ_CREDIT_BUREAU_YEAR",
        *[f"FLAG_DOCUMENT_{n}" for n in range(2, 22)],
        *[
            f"{area}_{stat}"
            for stat in ("AVG", "MODE", "MEDI")
            for area in (
                "APARTMENTS",
                "BASEMENTAREA",
                "YEARS_BEGINEXPLUATATION",
                "YEARS_BUILD",
                "COMMONAREA",
                "ELEVATORS",
                "ENTRANCES",
                "FLOORSMAX",
                "FLOORSMIN",
                "LANDAREA",
                "LIVINGAPARTMENTS",
                "LIVINGAREA",
                "NONLIVINGAPARTMENTS",
                "NONLIVINGAREA",
            )
        ],
    ]
)


def message(text: str, error: bool = False) -> str:
    # role=alert makes screen readers announce failures; status for the rest.
    role, cls = ("alert", "ui-msg ui-error") if error else ("status", "ui-msg")
    return f'<div role="{role}" class="{cls}">{html.escape(text)}</div>'


def field_error(text: str) -> str:
    """The message under a what-if field (announced when it appears)."""
    return f'<p class="field-error" role="alert">{html.escape(text)}</p>'


def metric_text(key: str, value: float, lang: str) -> str:
    if key in ("approval_rate",):
        return formats.percent(value, lang)
    if key.startswith("business_cost"):
        return formats.number(value, lang, 2 if abs(value) < 100 else 0)
    return formats.number(value, lang, 3)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def tidy(label: str) -> str:
    """A label without a word said twice in a row ("highest highest amount overdue")."""
    words = label.split(" ")
    kept = [w for i, w in enumerate(words) if i == 0 or w.lower() != words[i - 1].lower()]
    return " ".join(kept)


def value_text(value: Any, unit: str, lang: str, shown: str = "") -> str:
    """A feature's value in the advisor's language and the feature's unit (as the gateway's
    ``display_value``, but with the locale's own formats, currency and category words)."""
    if isinstance(value, str):
        return category(lang, value)
    amount = number(value)
    if amount is None:
        return category(lang, shown) if shown else t(lang, "not_known")
    if unit == "money":
        return formats.money(amount, lang)
    if unit == "days":
        return f"{formats.number(abs(amount) / charts.DAYS_PER_YEAR, lang, 1)} {t(lang, 'years')}"
    if unit == "day_count":
        digits = 0 if amount == round(amount) else 1
        return f"{formats.number(amount, lang, digits)} {t(lang, 'days')}"
    if unit == "years":
        return f"{formats.number(amount, lang, 0)} {t(lang, 'years')}"
    if unit == "share":
        return formats.percent(amount, lang, 0)
    if unit == "flag":
        return t(lang, "yes") if amount >= 0.5 else t(lang, "no")
    if unit == "count":
        return formats.number(amount, lang, 0 if amount == round(amount) else 1)
    return formats.number(amount, lang, 2)


def reasons(
    lang: str,
    explanation: dict[str, Any],
    values: dict[str, Any] | None = None,
    units: dict[str, str] | None = None,
) -> str:
    """The principal reasons as the explainer words them (at most four each way), and what
    would change the decision, worded here from the counterfactual's figures."""
    values = values or {}

    def worded(reason: dict[str, Any]) -> str:
        text = str(reason["text"])
        raw = values.get(reason["feature"])
        if lang == "fr" and isinstance(raw, str):  # the explainer quotes Kaggle's English
            text = text.replace(f" : {raw}", f" : {category(lang, raw)}")
        return tidy(text)

    def items(reasons: list[dict[str, Any]]) -> str:
        if not reasons:
            return f"- {t(lang, 'none')}"
        return "\n".join(f"- {worded(r)}" for r in reasons[:MAX_REASONS])

    parts = [
        f"## {t(lang, 'raising')}",
        items(explanation["raising"]),
        f"## {t(lang, 'lowering')}",
        items(explanation["lowering"]),
    ]
    hint = counterfactual(lang, explanation, units or {})
    if hint:
        parts += [f"## {t(lang, 'counterfactual')}", hint]
    return "\n\n".join(parts)


def counterfactual(lang: str, explanation: dict[str, Any], units: dict[str, str]) -> str:
    cf = explanation["counterfactual"]
    if not cf["applicable"]:
        return ""
    thr = percent(explanation["threshold"], lang)
    if not cf["found"] or not cf["changes"]:
        return t(lang, "cf_none", thr=thr)
    changes = t(lang, "cf_and").join(
        t(
            lang,
            "cf_change",
            label=c["label"][:1].lower() + c["label"][1:],
            old=value_text(c["from_value"], units.get(c["feature"], "money"), lang),
            new=value_text(c["to_value"], units.get(c["feature"], "money"), lang),
        )
        for c in cf["changes"]
    )
    return t(lang, "cf_found", changes=changes, p=percent(cf["new_probability"], lang), thr=thr)


def decision_html(
    lang: str, probability: float, threshold: float, decision: str, meta: str = ""
) -> str:
    refused = decision == "refused"
    p, thr = percent(probability, lang), percent(threshold, lang)
    mark = "?" if decision == "review" else "✗" if refused else "✓"  # review: an underwriter
    word = t(lang, decision)
    # The gap as shown: the two percentages' difference, rounded like them, so the page
    # never says "0.0 points above" (nor "under 10%" next to "10.2%").
    gap = round(100 * probability, 1) - round(100 * threshold, 1)
    if round(gap, 1) == 0:
        line = t(lang, "decision_line_at", mark=mark, word=word, p=p, thr=thr)
    else:
        line = t(
            lang,
            "decision_line",
            mark=mark,
            word=word,
            p=p,
            thr=thr,
            gap=formats.points(abs(gap), lang, sign=False),
            side=t(lang, "above" if gap > 0 else "below"),
        )
    # Markdown bold -> HTML by hand: gr.HTML renders no markdown.
    body = html.escape(line)
    while "**" in body:
        body = body.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
    extra = f"<p>{html.escape(meta)}</p>" if meta else ""
    return f'<div class="decision {decision}"><p style="font-size:1.2rem">{body}</p>{extra}</div>'


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def probability_path(explanation: dict[str, Any]) -> tuple[float, list[float], float, float]:
    """The explanation's SHAP values (log-odds) as changes of the probability of default,
    in percentage points: (start %, one change per contribution shown, the change of all
    the others, end %).

    SHAP values add up in log-odds: ``raw = base + sum(contributions)``. Each bar is the
    difference of the sigmoid of the cumulative sums before and after it, in the order
    shown (strongest first, then the others):
    ``pp_i = 100 * (sigmoid(s + phi_1 + ... + phi_i) - sigmoid(s + phi_1 + ... + phi_(i-1)))``.
    The bars then add up exactly to end - start, but a bar depends on its place in the
    order (the curve is steeper near 50 %), which is why the order is fixed.

    ``s`` starts at ``base`` shifted by ``logit(probability) - raw``: the model's raw score
    is calibrated into the probability the decision uses, and this shift (the calibration
    seen as a constant move in log-odds at this client's score) makes the path end exactly
    at that probability, so the chart and the decision never disagree."""
    contributions = [float(c["contribution"]) for c in explanation["contributions"]]
    others = float(explanation["other_contributions"])
    base = float(explanation["base_value"])
    raw = base + sum(contributions) + others
    shift = logit(float(explanation["probability"])) - raw
    level = base + shift
    start = 100 * sigmoid(level)
    steps = []
    for phi in [*contributions, others]:
        before = sigmoid(level)
        level += phi
        steps.append(100 * (sigmoid(level) - before))
    return start, steps[:-1], steps[-1], 100 * sigmoid(level)


def waterfall(lang: str, explanation: dict[str, Any]) -> tuple[Any, str]:
    labels_ = [
        f"{tidy(c['label'])} ({category(lang, c['display_value'])})"
        for c in explanation["contributions"]
    ]
    start, steps, others, end = probability_path(explanation)
    rows = list(zip(labels_, steps, strict=True))
    names = {
        "start": t(lang, "waterfall_start"),
        "others": t(lang, "waterfall_others"),
        "end": t(lang, "waterfall_end"),
    }
    fig = charts.waterfall(
        rows, start, others, end, names, t(lang, "waterfall_title"), t(lang, "waterfall_x"), lang
    )
    up = sum(1 for _, v in rows if v > 0)
    strongest = max(rows, key=lambda r: abs(r[1]), default=("-", 0.0))
    alt = t(
        lang,
        "waterfall_alt",
        up=up,
        down=len(rows) - up,
        top=strongest[0],
        effect=formats.points(strongest[1], lang),
        start=formats.percent(start / 100, lang),
        end=formats.percent(end / 100, lang),
    )
    return fig, alt


def gauge(
    lang: str, probability: float, threshold: float, decision: str, title: str
) -> tuple[Any, str]:
    fig = charts.gauge(probability, threshold, title, decision == "refused", lang)
    alt = t(
        lang,
        "gauge_alt",
        p=percent(probability, lang),
        thr=percent(threshold, lang),
        word=t(lang, f"outcome_{decision}"),
    )
    return fig, alt


def profile_html(profile: dict[str, Any], lang: str) -> str:
    sections = []
    for index, group in enumerate(profile["groups"]):
        rows = "".join(
            f'<tr><th scope="row">{html.escape(tidy(f["label"]))}</th>'
            f"<td>{html.escape(value_text(f['value'], f['unit'], lang, f['display_value']))}"
            f"</td></tr>"
            for f in group["fields"]
        )
        opened = " open" if index < 2 else ""  # identity and income first, the rest folded
        sections.append(
            f"<details{opened}><summary>{html.escape(group['label'])}</summary>"
            f"<table><caption class='sr-only'>{html.escape(group['label'])}</caption>"
            f"{rows}</table></details>"
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
        elif name in OTHER_APPLICATION_COLUMNS or name in edits:  # edits: a factor moved
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
    summary = tn(
        code,
        "neighbours_summary",
        d,
        k=formats.number(k, code),
        d=formats.number(d, code),
        rate=percent(d / max(k, 1), code, 0),
    )
    return (
        f'<div class="profile"><h2>{t(code, "neighbours_title")}</h2>'
        f"<p>{html.escape(summary)}</p></div>"
    )


# ---- what-if on the client's principal factors --------------------------------------------
PRINCIPAL_FACTORS = 6  # the strongest contributions considered (the waterfall shows 10)
# The realistic range of a factor: the population's 1st to 99th percentile (as served by
# /v1/population/features/{name}), the same span the comparison histograms cover.
RANGE_QUANTILES = ("0.01", "0.99")


def editable_bounds(
    column: str, value: Any, limits: dict[str, tuple[float | None, float | None]]
) -> tuple[float, float] | None:
    """What the API accepts for ``column`` when the what-if may change it: a typed numeric
    field, or another numeric application column of ``numeric_fields``; None for the rest
    (history aggregates, engineered features, categories), and for a value that is not a
    number (a category, or not known: there is nothing to move from)."""
    if number(value) is None:
        return None
    low, high = limits.get(TYPED.get(column, column), (None, None))
    if low is None or high is None:
        return None
    return float(low), float(high)


def nice_step(span: float) -> float:
    """About a hundredth of ``span``, rounded to 1, 2 or 5 times a power of ten."""
    if span <= 0:
        return 1.0
    raw = span / 100
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def shown(value: float, unit: str) -> float:
    """A factor's value as its slider shows it: days before the application as years."""
    return -value / charts.DAYS_PER_YEAR if unit == "days" else value


def sent(value: float, unit: str) -> float:
    """A slider's value back in the column's own unit (the inverse of ``shown``)."""
    return -value * charts.DAYS_PER_YEAR if unit == "days" else value


def factor_slider(
    column: str,
    label: str,
    unit: str,
    value: float,
    quantiles: dict[str, float],
    bounds: tuple[float, float],
) -> dict[str, Any] | None:
    """A slider for one factor: from the population's 1st to its 99th percentile, widened
    to the client's own value, within what the API accepts; in shown units (years for days
    before the application), on a round step. None when the population has no range."""
    if not all(q in quantiles for q in RANGE_QUANTILES):
        return None
    low = max(min(quantiles[RANGE_QUANTILES[0]], value), bounds[0])
    high = min(max(quantiles[RANGE_QUANTILES[1]], value), bounds[1])
    ends = sorted((shown(low, unit), shown(high, unit)))
    step = 1.0 if unit in ("count", "day_count") else nice_step(ends[1] - ends[0])
    if unit == "flag":
        ends, step = [0.0, 1.0], 1.0
    # Ends on the step's grid, but never beyond what the API accepts.
    api = sorted((shown(bounds[0], unit), shown(bounds[1], unit)))
    lo = max(math.floor(ends[0] / step) * step, api[0])
    hi = min(math.ceil(ends[1] / step) * step, api[1])
    if hi <= lo:
        return None
    return {
        "column": column,
        "label": label,
        "unit": unit,
        # Rounding away the grid's float noise, never past what the API accepts.
        "minimum": max(round(lo, 10), api[0]),
        "maximum": min(round(hi, 10), api[1]),
        "step": step,
        # As the slider's grid shows it (no raw floats such as 7.7590691 years).
        "value": round(shown(value, unit), max(0, -math.floor(math.log10(step)))),
        # Whole days, children, flags: what the column holds (and the API's integer fields).
        "integer": TYPED.get(column) in INTEGER_TYPED
        or unit in ("days", "count", "day_count", "flag"),
    }


def slider_label(lang: str, factor: dict[str, Any]) -> str:
    unit = factor["unit"]
    if unit == "days":
        return f"{factor['label']} ({t(lang, 'years')})"
    if unit == "money":
        return f"{factor['label']} ({formats.currency_symbol(lang)})"
    return str(factor["label"])


def factor_edits(factors: list[dict[str, Any]], moved: list[float | None]) -> dict[str, float]:
    """The factors the advisor moved, by column, in the column's unit. A slider left where
    it started sends nothing: its grid may have rounded the client's value, and the what-if
    must re-score the client's own application until something is changed."""
    edits: dict[str, float] = {}
    for factor, value in zip(factors, moved, strict=False):
        if value is None or abs(float(value) - factor["value"]) < factor["step"] / 2:
            continue
        raw = sent(float(value), factor["unit"])
        edits[factor["column"]] = float(round(raw)) if factor["integer"] else raw
    return edits


# ---- score distribution, client search ----------------------------------------------------
def share_below(bins: list[dict[str, Any]], probability: float) -> float:
    """The share of the population whose probability of default is lower than
    ``probability``: the whole bins below it, and of the bin it falls in the part below it
    (spread evenly over the bin: the counts are all the gateway publishes)."""
    total = sum(charts.clients(b) for b in bins)
    if not total:
        return 0.0
    below = 0.0
    for b in bins:
        count = charts.clients(b)
        if b["upper"] <= probability:
            below += count
        elif b["lower"] < probability:
            below += count * (probability - b["lower"]) / (b["upper"] - b["lower"])
    return below / total


def score_distribution(
    lang: str, scores: dict[str, Any], probability: float, threshold: float
) -> tuple[Any, str]:
    """The score distribution chart and its text (where the client stands). The threshold
    is the client's decision's: the chart and the decision never disagree."""
    bins = scores["bins"]
    p, thr = percent(probability, lang), percent(threshold, lang)
    names = {
        "repaid": t(lang, "repaid"),
        "defaulted": t(lang, "defaulted"),
        "hidden": t(lang, "hidden"),
        "threshold": t(lang, "scores_threshold", thr=thr),
        "client": t(lang, "scores_client", p=p),
    }
    fig = charts.score_distribution(
        bins,
        threshold,
        probability,
        names,
        t(lang, "scores_title"),
        t(lang, "scores_x"),
        t(lang, "scores_y"),
        lang,
    )
    n = sum(charts.clients(b) for b in bins)
    share = percent(share_below(bins, probability), lang, 0)
    parts = [
        t(lang, "scores_alt", n=formats.number(n, lang), thr=thr, p=p),
        t(lang, "scores_position", share=share, p=p),
    ]
    parts.append(hidden_note(lang, sum(int(b.get("hidden", 0)) for b in bins)))
    return fig, " ".join(p for p in parts if p)


def hidden_note(lang: str, count: int) -> str:
    """The sentence naming the clients drawn grey (outcome not shown); "" when none."""
    return tn(lang, "hidden_alt", count, n=formats.number(count, lang)) if count else ""


def importance(lang: str, rows: list[dict[str, Any]]) -> tuple[Any, str]:
    """Global importance with each factor's direction (when the gateway gives it) in
    colour, pattern and words; the text names the factors of each direction."""
    data = [(tidy(i["label"]), float(i["mean_abs_shap"]), i.get("direction")) for i in rows]
    directions = {
        d: (t(lang, f"dir_legend_{d}"), t(lang, f"dir_{d}")) for d in ("raises", "lowers", "mixed")
    }
    fig = charts.importance(
        data, t(lang, "importance_title"), t(lang, "importance_x"), lang, directions
    )
    parts = [t(lang, "importance_alt", n=len(data), top=data[0][0])]
    for direction, (legend, _) in directions.items():
        names = [label for label, _, d in data if d == direction]
        if names:
            parts.append(t(lang, "importance_dir_alt", legend=legend, names=", ".join(names)))
    return fig, " ".join(parts)


MAX_SUGGESTIONS = 10


def suggestions(lang: str, prefix: str = "", ids: list[int] | None = None) -> str:
    """The client numbers matching what the advisor typed, as the listbox of the client
    number field (a WAI-ARIA combobox; app.HEAD's script opens it and moves in it).
    Always present, hidden until the script shows it: the field's aria-controls names it.
    ``data-prefix`` says what it answers, so a late answer is never shown for new text."""
    ids = (ids or [])[:MAX_SUGGESTIONS]
    if not ids:
        return f'<ul id="client-suggestions" data-prefix="{html.escape(prefix)}" hidden></ul>'
    items = "".join(
        f'<li id="client-option-{i}" role="option" aria-selected="false" '
        f'data-client="{cid}"><strong>{html.escape(str(cid)[: len(prefix)])}</strong>'
        f"{html.escape(str(cid)[len(prefix) :])}</li>"
        for i, cid in enumerate(ids)
    )
    label = html.escape(t(lang, "suggest_label"))
    count = html.escape(tn(lang, "suggest_count", len(ids), n=len(ids)))
    return (
        f'<ul id="client-suggestions" role="listbox" aria-label="{label}" '
        f'data-prefix="{html.escape(prefix)}" hidden>{items}</ul>'
        f'<p class="sr-only" role="status">{count}</p>'
    )
