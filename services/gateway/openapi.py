"""What the OpenAPI says beyond the routes' own declarations, so that it says what the
gateway answers (checked by schemathesis with every check: tests/test_api_contract.py).

* Every ``/v1`` operation may answer 400 (a body that is not UTF-8 JSON, an invalid
  ``Content-Length``), 401 (the edge checks the key first, ``edge.py``), 408 (a body too
  slow), 413 (the body cap) and 422 (a parameter or the body rejected), all as
  ``application/problem+json``: FastAPI's own 422 entry describes a JSON body the gateway
  never sends.
* Integer bounds stay integers: FastAPI's OpenAPI models hold ``maximum`` as a float, so
  the int64 maximum came out as ``9.223372036854776e+18`` (2**63, one more than allowed).
* A batch's size limit is the settings' (``GATEWAY_MAX_BATCH``), not a constant.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from services.gateway.errors import PROBLEM_MEDIA_TYPE
from services.gateway.schemas import INT64_MAX

EDGE_STATUSES = (400, 401, 408, 413, 422)
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"


def problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _integer_bounds(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for bound in BOUNDS:
                value = node.get(bound)
                if isinstance(value, float) and value.is_integer():
                    node[bound] = INT64_MAX if value == float(INT64_MAX) else int(value)
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)


def document_edges(schema: dict[str, Any], max_batch: int) -> dict[str, Any]:
    _integer_bounds(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    batch = components.get("BatchRequest", {}).get("properties", {}).get("client_ids")
    if batch is not None:
        batch["maxItems"] = max_batch
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                refs = [
                    c.get("schema", {}).get("$ref") for c in response.get("content", {}).values()
                ]
                if FASTAPI_VALIDATION in refs:
                    responses[status] = problem(int(status))
            if path.startswith("/v1/"):
                for status in EDGE_STATUSES:
                    responses.setdefault(str(status), problem(status))
            operation["responses"] = dict(sorted(responses.items()))
    if FASTAPI_VALIDATION not in repr(schema["paths"]):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema
