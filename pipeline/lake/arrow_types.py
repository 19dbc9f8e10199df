"""Avro schema -> Arrow schema: the Parquet layout of the lake comes from the newest Avro reader schema.

Written here (like `pipeline.contract.glue_types`) because no maintained library maps Avro schema JSON to
Arrow types without a JVM or Spark; it mirrors `glue_type` branch for branch so Parquet and Glue agree.
Every column is nullable: Athena and Glue have no NOT NULL, and a column added later is null in older files.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
    "fixed": pa.binary(),
    "enum": pa.string(),
}
# Naive timestamps (isAdjustedToUTC=false) read as Athena `timestamp`; every lake timestamp is UTC.
_LOGICAL: dict[str, pa.DataType] = {
    "timestamp-millis": pa.timestamp("ms"),
    "timestamp-micros": pa.timestamp("us"),
    "local-timestamp-millis": pa.timestamp("ms"),
    "local-timestamp-micros": pa.timestamp("us"),
    "date": pa.date32(),
    "uuid": pa.string(),
    "time-millis": pa.int32(),
    "time-micros": pa.int64(),
}


def arrow_type(avro: Any) -> pa.DataType:
    """The Arrow type of one Avro type (a name, a union list or a complex type dict)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions of several non-null types cannot map to a Parquet column: {avro}")
        return arrow_type(branches[0])
    if isinstance(avro, str):
        try:
            return _PRIMITIVES[avro]
        except KeyError:
            raise ValueError(
                f"named type references are not supported in the lake schemas: {avro!r}"
            ) from None
    logical = avro.get("logicalType")
    if logical == "decimal":
        return pa.decimal128(avro["precision"], avro.get("scale", 0))
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    kind = avro["type"]
    if kind == "record":
        return pa.struct([pa.field(f["name"], arrow_type(f["type"])) for f in avro["fields"]])
    if kind == "array":
        return pa.list_(arrow_type(avro["items"]))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro["values"]))
    return arrow_type(kind)


def arrow_schema(record: dict[str, Any]) -> pa.Schema:
    """One nullable Arrow field per top-level field of an Avro record schema."""
    if record.get("type") != "record":
        raise ValueError(f"expected an Avro record schema, got type {record.get('type')!r}")
    return pa.schema([pa.field(f["name"], arrow_type(f["type"])) for f in record["fields"]])
