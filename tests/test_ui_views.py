"""The dashboard's pure view functions (services/ui/views.py): the what-if application sent
to the gateway, and the escaped HTML the advisor sees."""

from __future__ import annotations

import math

from services.ui import views


def test_whatif_application_carries_the_edits_in_the_gateway_shape() -> None:
    values = {
        "AMT_CREDIT": 500_000.0, "AMT_ANNUITY": 25_000.0, "DAYS_BIRTH": -12_000.4,
        "NAME_CONTRACT_TYPE": "Cash loans", "FLAG_DOCUMENT_3": 1.0, "OWN_CAR_AGE": math.nan,
        "NAME_TYPE_SUITE": "Family", "BUREAU_DEBT_RATIO": 0.4,  # engineered: recomputed
    }  # fmt: skip
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
        {"groups": [{"label": "Identité", "fields": [
            {"label": "<b>Age</b>", "display_value": "40 ans", "value": -14_610.0,
             "unit": "days"}]}]}, "fr"
    )  # fmt: skip
    assert "&lt;b&gt;Age&lt;/b&gt;" in profile and "<details open>" in profile
