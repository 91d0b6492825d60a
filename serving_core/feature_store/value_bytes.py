"""Feast's serialised ``Value`` of a double, shared by the fast writers and the reader.

``ValueProto(double_val=x).SerializeToString()`` is the field tag 0x29 (field 5, wire type 1:
fixed 64 bits) followed by the IEEE 754 bits, little-endian: 9 bytes. A missing value is the
empty ``Value`` (``b""``). The writers build these bytes in bulk instead of a proto per value;
``check_double_encoding`` makes them refuse to run on a protobuf runtime that differs.
"""

from __future__ import annotations

import struct

from feast.protos.feast.types.Value_pb2 import Value as ValueProto

DOUBLE_TAG = 0x29
DOUBLE_SIZE = 9
DOUBLE = struct.Struct("<d")


def check_double_encoding() -> None:
    for value in (1.5, -0.0, float("inf"), 5e-324):
        expected = bytes([DOUBLE_TAG]) + DOUBLE.pack(value)
        if ValueProto(double_val=value).SerializeToString() != expected:
            raise RuntimeError(f"unexpected ValueProto encoding of {value!r}")
