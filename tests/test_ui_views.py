"""The dashboard's pure view functions (services/ui/views.py): the what-if application sent
to the gateway, and the escaped HTML the advisor sees."""

from __future__ import annotations

import math

import pytest

from services.ui import formats, page, texts, views


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
