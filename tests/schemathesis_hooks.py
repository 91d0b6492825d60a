"""Schemathesis hooks for tests/test_api_contract.py (loaded through SCHEMATHESIS_HOOKS).

Two rules of the API cannot be written in JSON Schema, which neither compares two fields
nor knows today's date. The OpenAPI states both in words, and the gateway refuses both with
422; only the *positive* cases schemathesis draws (bodies it believes valid) that break
them are dropped here. Negative cases are never dropped or changed: whatever makes them
invalid, the gateway must still refuse them.

* an application's annuity may not exceed its credit amount (``amt_annuity <= amt_credit``);
* an outcome cannot be observed in the future (``observed_at`` at most tomorrow, UTC).

A third is about JSON's spelling rather than its values: an integer must be written as an
integer literal (``100002``, never ``100002.0``: issue 17's strict inputs), while JSON
Schema counts 100002.0 as an integer. Positive bodies with an integral float in one of the
API's integer fields are dropped too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import schemathesis

INTEGER_FIELDS = {"client_id", "client_ids", "days_birth", "days_employed", "cnt_children", "top_k"}


def _float_integers(node: Any, integer: bool = False) -> bool:
    if isinstance(node, dict):
        return any(_float_integers(value, key in INTEGER_FIELDS) for key, value in node.items())
    if isinstance(node, list):
        return any(_float_integers(item, integer) for item in node)
    return integer and isinstance(node, float)


def _breaks_a_rule_schema_cannot_say(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if _float_integers(body):
        return True
    application = body.get("application")
    if isinstance(application, dict):
        annuity, credit = application.get("amt_annuity"), application.get("amt_credit")
        numbers = (int, float)
        if isinstance(annuity, numbers) and isinstance(credit, numbers) and annuity > credit:
            return True
    observed = body.get("observed_at")
    if isinstance(observed, str):
        try:
            day = date.fromisoformat(observed)
        except ValueError:
            return False
        return day > (datetime.now(UTC) + timedelta(days=1)).date()
    return False


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    return not (positive and _breaks_a_rule_schema_cannot_say(case.body))
