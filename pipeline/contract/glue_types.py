"""Avro schema -> Glue/Athena (Hive) column types: the one mapper behind the Glue tables and the Athena DDL.

Written here rather than borrowed: no maintained library maps Avro to Hive DDL types without pulling
in a JVM (Hive's AvroSerDe) or a Spark session, and the mapping is small and fully tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PRIMITIVES = {
    "string": "string",
    "int": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "bytes": "binary",
    "fixed": "binary",
    "enum": "string",
}
# Logical types whose Parquet/Athena form differs from their Avro base type.
_LOGICAL = {
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
    "date": "date",
    "uuid": "string",
    "time-millis": "int",
    "time-micros": "bigint",
}


@dataclass(frozen=True)
class GlueColumn:
    name: str
    type: str
    comment: str | None = None


def glue_type(avro: Any) -> str:
    """The Hive type of one Avro type (a name, a union list or a complex type dict)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            # Hive has no tagged unions; Athena's uniontype is unreadable from Parquet.
            raise ValueError(f"unions of several non-null types cannot map to a Glue column: {avro}")
        return glue_type(branches[0])
    if isinstance(avro, str):
        try:
            return _PRIMITIVES[avro]
        except KeyError:
            raise ValueError(
                f"named type references are not supported in the lake schemas: {avro!r}"
            ) from None
    logical = avro.get("logicalType")
    if logical == "decimal":
        return f"decimal({avro['precision']},{avro.get('scale', 0)})"
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    kind = avro["type"]
    if kind == "record":
        fields = ",".join(f"{f['name']}:{glue_type(f['type'])}" for f in avro["fields"])
        return f"struct<{fields}>"
    if kind == "array":
        return f"array<{glue_type(avro['items'])}>"
    if kind == "map":
        return f"map<string,{glue_type(avro['values'])}>"
    return glue_type(kind)


def glue_columns(record: dict[str, Any]) -> list[GlueColumn]:
    """One column per top-level field of an Avro record schema, docs kept as comments."""
    if record.get("type") != "record":
        raise ValueError(f"expected an Avro record schema, got type {record.get('type')!r}")
    return [GlueColumn(f["name"], glue_type(f["type"]), f.get("doc")) for f in record["fields"]]
