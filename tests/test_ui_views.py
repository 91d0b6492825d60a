"""The dashboard's pure view functions (services/ui/views.py): the what-if application sent
to the gateway, and the escaped HTML the advisor sees."""

from __future__ import annotations

import math

import pytest

from services.ui import charts, formats, page, texts, views


def test_whatif_application_carries_the_edits_in_the_gateway_shape() -> None:
    values = {
        "AMT_CREDIT": 500_000.0,
        "AMT_ANNUITY": 25_000.0,
        "DAYS_BIRTH": -12_000.4,
        "NAME_CONTRACT_TYPE": "Cash loans",
        "FLAG_DOCUMENT_3": 1.0,
        "OWN_CAR_AGE": math.nan,
        "NAME_TYPE_SUITE": "Family",
        "BUREAU_DEBT_RATIO": 0.4,  # engineered: recomputed
    }
    sent = views.whatif_application(values, 100_002, {"AMT_CREDIT": 400_000.0, "AMT_ANNUITY": None})
    assert sent["client_id"] == 100_002
    assert sent["amt_credit"] == 400_000.0  # edited
    assert sent["amt_annuity"] == 25_000.0  # an empty edit keeps the client's value
    assert sent["days_birth"] == -12_000  # integer field of the gateway's schema
    assert sent["contract_type"] == "Cash loans"
    assert sent["numeric_fields"] == {"FLAG_DOCUMENT_3": 1.0}  # NaN left out
    assert sent["category_fields"] == {"NAME_TYPE_SUITE": "Family"}
    assert "BUREAU_DEBT_RATIO" not in str(sent)


def test_term_plotted_and_number() -> None:
    assert views.term({"AMT_CREDIT": 500_000.0, "AMT_ANNUITY": 25_000.0}) == 20.0
    assert views.term({"AMT_CREDIT": 500_000.0, "AMT_ANNUITY": None}) is None
    assert views.plotted(-3652.5, "days") == 10.0  # days before the application -> years
    assert views.plotted(12.0, "") == 12.0
    assert views.number(True) is None and views.number(math.nan) is None
    assert views.number(3) == 3.0


def test_html_is_escaped_and_announced() -> None:
    shown = views.message("<script>x</script>", error=True)
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert 'role="alert"' in shown
    assert 'role="status"' in views.message("ok")
    profile = views.profile_html(
        {
            "groups": [
                {
                    "label": "Identité",
                    "fields": [
                        {
                            "label": "<b>Age</b>",
                            "display_value": "40 ans",
                            "value": -14_610.0,
                            "unit": "days",
                        }
                    ],
                }
            ]
        },
        "fr",
    )
    assert "&lt;b&gt;Age&lt;/b&gt;" in profile and "<details open>" in profile


def test_probability_path_adds_up_in_points_and_ends_at_the_decision() -> None:
    explanation = {
        "base_value": -2.0,
        "probability": 0.143,
        "other_contributions": 0.3,
        "contributions": [{"contribution": 0.9}, {"contribution": -0.4}, {"contribution": 0.2}],
    }
    start, steps, others, end = views.probability_path(explanation)
    assert end == pytest.approx(14.3)  # the calibrated probability the decision uses
    assert start + sum(steps) + others == pytest.approx(end)
    assert steps[0] > 0 > steps[1] and others > 0  # signs kept
    shift = views.logit(0.143) - (-2.0 + 0.9 - 0.4 + 0.2 + 0.3)
    assert start == pytest.approx(100 * views.sigmoid(-2.0 + shift))
    # The first bar: sigmoid of the cumulative sums, before and after it.
    first = 100 * (views.sigmoid(-2.0 + shift + 0.9) - views.sigmoid(-2.0 + shift))
    assert steps[0] == pytest.approx(first)


def test_locale_formats_come_from_babel() -> None:
    assert formats.percent(0.1023, "en") == "10.2%"
    assert formats.percent(0.1023, "fr") == "10,2\u00a0%"
    assert formats.number(17_264, "en") == "17,264"
    assert formats.number(17_264, "fr") == "17\u202f264"
    assert formats.money(202_500, "en") == "€202,500"
    assert formats.money(202_500, "fr") == "202\u202f500\u00a0€"
    assert formats.points(-1.234, "fr") == "\u22121,2\u00a0pts"
    assert formats.points(0.01, "en") == "0.0\u00a0pts"  # no sign on what rounds to zero
    # French: 0 and 1 take the singular.
    assert [formats.plural("fr", n) for n in (0, 1, 2)] == ["one", "one", "other"]
    assert [formats.plural("en", n) for n in (0, 1, 2)] == ["other", "one", "other"]
    assert texts.tn("fr", "neighbours_summary", 1, k=30, d=1, rate="3 %").endswith(
        "1 a fait défaut (3 %)."
    )
    assert "2 ont fait défaut" in texts.tn("fr", "neighbours_summary", 2, k=30, d=2, rate="7 %")


def test_words_categories_and_threshold_wording() -> None:
    assert texts.category("fr", "Cash loans") == "Prêt personnel"
    assert texts.category("fr", "Industry: type 3") == "Industrie : type 3"
    assert texts.category("en", "Working") == "Working"
    assert views.tidy("Credit bureau: highest highest amount overdue") == (
        "Credit bureau: highest amount overdue"
    )
    # Equal once rounded as shown: "at the threshold", never "0.0 points above".
    at = views.decision_html("en", 0.10204, 0.10196, "refused")
    assert "at the threshold of 10.2%" in at and "0.0" not in at
    above = views.decision_html("fr", 0.143, 0.078, "refused")
    assert "6,5\u00a0pts au-dessus du seuil de 7,8\u00a0%" in above
    assert views.value_text(157_500.0, "money", "fr") == "157\u202f500\u00a0€"
    assert views.value_text(-14_610.0, "days", "en") == "40.0 years"
    assert views.value_text(None, "money", "fr") == "inconnu"


def test_the_page_gets_its_language_and_title() -> None:
    gradio_page = '<!doctype html><html\n\tlang="en" style=""><head></head><body></body></html>'
    sign_in = gradio_page.replace("<body>", '<body>{"auth_required": true}')
    completed = page.complete(sign_in, "fr", "en")
    assert 'lang="fr"' in completed and "<title>Advisor sign-in" in completed
    assert 'setAttribute("role", "main")' in completed
    app_page = page.complete(gradio_page, "fr", "en")  # signed in: the dashboard's language
    assert 'lang="en"' in app_page and "<title>Credit advisor dashboard</title>" in app_page
    assert page.preferred("fr-FR,fr;q=0.9,en;q=0.8", "en") == "fr"
    assert page.preferred("de-DE,de;q=0.9", "en") == "en"


def test_share_below_counts_whole_bins_and_part_of_the_clients() -> None:
    bins = [
        {"lower": 0.0, "upper": 0.1, "repaid": 50, "defaulted": 10},
        {"lower": 0.1, "upper": 0.3, "repaid": 30, "defaulted": 10},
    ]
    assert views.share_below(bins, 0.1) == pytest.approx(0.6)
    assert views.share_below(bins, 0.2) == pytest.approx((60 + 20) / 100)  # half the bin
    assert views.share_below(bins, 0.0) == 0.0 and views.share_below(bins, 1.0) == 1.0
    assert views.share_below([], 0.5) == 0.0


def test_clients_whose_outcome_is_hidden_are_counted_and_drawn_grey() -> None:
    """A side of the threshold too small to split by outcome comes as ``hidden``: counted in
    the client's position and drawn as its own grey series, named in the text."""
    bins = [
        {"lower": 0.0, "upper": 0.1, "repaid": 80, "defaulted": 10, "hidden": 0},
        {"lower": 0.1, "upper": 1.0, "repaid": 0, "defaulted": 0, "hidden": 10},
    ]
    assert [charts.clients(b) for b in bins] == [90, 10]
    assert views.share_below(bins, 0.1) == pytest.approx(0.9)
    fig, alt = views.score_distribution("en", {"bins": bins}, 0.05, 0.1)
    assert [trace.name for trace in fig.data] == ["Repaid", "Defaulted", "Outcome not shown"]
    assert "The outcome of 10 clients (grey) is not shown" in alt
    assert "100 clients" in alt
    shown = [dict(b, hidden=0) for b in bins[:1]]
    assert [
        trace.name for trace in views.score_distribution("en", {"bins": shown}, 0.05, 0.1)[0].data
    ] == [
        "Repaid",
        "Defaulted",
    ]


def test_factor_slider_spans_the_population_and_the_client_within_the_api() -> None:
    quantiles = {"0.01": -11_000.0, "0.99": -120.0}
    # Days before the application, shown in years; the client's 40 years widen the range,
    # the API's -21,824 days (59.75 years) cap it.
    slider = views.factor_slider(
        "DAYS_EMPLOYED", "Time in job", "days", -14_610.0, quantiles, (-21_824.0, 0.0)
    )
    assert slider is not None
    assert slider["minimum"] == 0.0 and slider["maximum"] == pytest.approx(40.0, abs=0.5)
    assert slider["value"] == 40.0 and slider["integer"]
    capped = views.factor_slider(
        "DAYS_EMPLOYED", "Time in job", "days", -30_000.0, quantiles, (-21_824.0, 0.0)
    )
    assert capped is not None and capped["maximum"] <= 21_824 / 365.25
    score = views.factor_slider(
        "EXT_SOURCE_2", "External score 2", "score", 0.512345, {"0.01": 0.07, "0.99": 0.8}, (0, 1)
    )
    assert score is not None and (score["minimum"], score["maximum"]) == (0.07, 0.8)
    assert score["value"] == 0.51 and score["step"] == 0.01  # on the grid, no raw float
    assert views.factor_slider("X", "x", "", 1.0, {}, (0.0, 2.0)) is None  # no range known
    limits = {"days_employed": (-21_824.0, 0.0), "OWN_CAR_AGE": (0.0, 100.0)}
    assert views.editable_bounds("DAYS_EMPLOYED", -100.0, limits) == (-21_824.0, 0.0)
    assert views.editable_bounds("OWN_CAR_AGE", 3.0, limits) == (0.0, 100.0)
    assert views.editable_bounds("BUREAU_COUNT", 3.0, limits) is None  # history aggregate
    assert views.editable_bounds("OWN_CAR_AGE", None, limits) is None  # not known


def test_only_moved_factors_are_sent_in_the_columns_unit() -> None:
    factors = [
        {"column": "DAYS_EMPLOYED", "unit": "days", "value": 7.8, "step": 0.5, "integer": True},
        {"column": "EXT_SOURCE_2", "unit": "score", "value": 0.51, "step": 0.01, "integer": False},
    ]
    assert views.factor_edits(factors, [7.8, 0.51]) == {}
    assert views.factor_edits(factors, [10.0, 0.512]) == {"DAYS_EMPLOYED": -3652.0}
    assert views.factor_edits(factors, [None, 0.7]) == {"EXT_SOURCE_2": 0.7}
    sent = views.whatif_application({}, 100_002, {"DAYS_REGISTRATION": -100.0})
    assert sent["numeric_fields"] == {"DAYS_REGISTRATION": -100.0}  # a moved factor is sent


def test_suggestions_are_a_listbox_of_at_most_ten_escaped_numbers() -> None:
    empty = views.suggestions("en", "12<")
    assert 'id="client-suggestions"' in empty and "listbox" not in empty and "12&lt;" in empty
    shown = views.suggestions("fr", "1000", list(range(100_000, 100_015)))
    assert shown.count('role="option"') == 10 and 'role="listbox"' in shown
    assert 'aria-label="Numéros de client correspondants"' in shown
    assert "<strong>1000</strong>00" in shown and "10 numéros de client" in shown
