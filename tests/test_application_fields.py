"""One definition of a new application's typed fields (serving_core.fields): the gRPC
contract and the REST schema declare exactly those, with the same optionality."""

from __future__ import annotations

from credit.v1 import common_pb2
from services.gateway.schemas import Application
from serving_core.fields import EXTRA_MAPS, FIELD_OF_COLUMN, REQUIRED, TYPED_FIELDS
from serving_core.schema import kaggle_schema


def test_the_proto_declares_exactly_the_typed_fields_and_the_maps() -> None:
    declared = [f.name for f in common_pb2.Application.DESCRIPTOR.fields]
    assert declared == ["client_id", *TYPED_FIELDS, *EXTRA_MAPS]


def test_the_rest_schema_declares_the_same_fields_and_requires_the_same_ones() -> None:
    fields = Application.model_fields
    typed = {name for name in fields if name not in (*EXTRA_MAPS, "client_id")}
    assert typed == set(TYPED_FIELDS)
    assert {name for name, info in fields.items() if info.is_required()} == set(REQUIRED)


def test_every_field_carries_a_real_application_column() -> None:
    table = kaggle_schema()["application_test"]
    assert all(table.column(column) for column in TYPED_FIELDS.values())
    assert {FIELD_OF_COLUMN[c]: c for c in FIELD_OF_COLUMN} == TYPED_FIELDS
