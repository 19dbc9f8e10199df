"""Avro binary bodies from encoders compiled once per schema: the same bytes as fastavro's
`schemaless_writer` (the codec's), several times faster.

Why not just fastavro: the producer must generate and encode 100k events/s per core, and fastavro's
per-datum generic dispatch (union branch checks, logical-type hooks) costs 12-20 us per event here,
most of the budget. Only the types the contract uses are compiled (records, enums, null unions,
strings, numbers, booleans, uuid and timestamp-millis as their underlying types); any other schema
raises `NotImplementedError`, and the caller uses the codec. Byte equality with the codec is tested
over whole workloads (tests/unit/produce/test_avro_writer.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pipeline.contract import WireFormat
from pipeline.contract.codec import GLUE_COMPRESSION_NONE, GLUE_HEADER_VERSION, SINGLE_OBJECT_MAGIC
from pipeline.contract.schemas import SchemaVersion

Encoder = Callable[[Any], bytes]

_SMALL = [bytes([n]) for n in range(128)]
_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack
_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


def _varint(n: int) -> bytes:
    """Unsigned LEB128, unrolled for the common sizes (event times in millis take 6 bytes)."""
    if n < 0x80:
        return _SMALL[n]
    if n < 1 << 14:
        return bytes((n & 127 | 128, n >> 7))
    if n < 1 << 21:
        return bytes((n & 127 | 128, n >> 7 & 127 | 128, n >> 14))
    if n < 1 << 28:
        return bytes((n & 127 | 128, n >> 7 & 127 | 128, n >> 14 & 127 | 128, n >> 21))
    if n < 1 << 42:
        return bytes(
            (
                n & 127 | 128,
                n >> 7 & 127 | 128,
                n >> 14 & 127 | 128,
                n >> 21 & 127 | 128,
                n >> 28 & 127 | (128 if n >= 1 << 35 else 0),
                *((n >> 35,) if n >= 1 << 35 else ()),
            )
        )
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


def compile_schema(schema: Any) -> Encoder:
    """An encoder of datums of `schema` (a JSON-ready schema dict, not fastavro's parsed form).

    The schema becomes the source of one straight-line Python function (as fastjsonschema does for
    validators): no per-field calls or type dispatch at run time, which is where the time goes.
    """
    namespace: dict[str, Any] = {"_S": _SMALL, "_varint": _varint, "_F": _FLOAT, "_D": _DOUBLE}
    lines = ["def encode(d):", "    out = []", "    a = out.append"]
    _emit(schema, "d", 1, lines, namespace)
    lines.append("    return b''.join(out)")
    exec(compile("\n".join(lines), f"<avro encoder {schema.get('name', '?')}>", "exec"), namespace)
    encoder: Encoder = namespace["encode"]
    return encoder


def _emit(schema: Any, expr: str, depth: int, lines: list[str], ns: dict[str, Any]) -> None:
    pad = "    " * depth
    var = f"v{len(lines)}"  # unique per emitted line: nested unions and records never clash
    if isinstance(schema, dict) and schema.get("logicalType") in ("uuid", "timestamp-millis"):
        schema = schema["type"]  # a uuid string and epoch millis are written as their base type
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"only [null, T] unions are compiled, not {schema!r}")
        null_index = schema.index("null")
        lines.append(f"{pad}{var} = {expr}")
        lines.append(f"{pad}if {var} is None:")
        lines.append(f"{pad}    a({_long(null_index)!r})")
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    a({_long(1 - null_index)!r})")
        _emit(schema[1 - null_index], var, depth + 1, lines, ns)
    elif schema in ("string", "bytes"):
        encode = ".encode()" if schema == "string" else ""
        lines.append(f"{pad}{var} = {expr}{encode}")
        lines.append(f"{pad}n = len({var}) << 1")
        lines.append(f"{pad}a(_S[n] if n < 128 else _varint(n))")
        lines.append(f"{pad}a({var})")
    elif schema in ("int", "long"):
        lines.append(f"{pad}n = {expr}")
        lines.append(f"{pad}n = (n << 1) ^ (n >> 63)")
        lines.append(f"{pad}a(_S[n] if n < 128 else _varint(n))")
    elif schema == "float":
        lines.append(f"{pad}a(_F({expr}))")
    elif schema == "double":
        lines.append(f"{pad}a(_D({expr}))")
    elif schema == "boolean":
        lines.append(f"{pad}a(b'\\x01' if {expr} else b'\\x00')")
    elif schema == "null":
        lines.append(f"{pad}pass")
    elif isinstance(schema, dict) and schema["type"] == "record":
        lines.append(f"{pad}{var} = {expr}")
        for field in schema["fields"]:
            _emit(field["type"], f"{var}[{field['name']!r}]", depth, lines, ns)
    elif isinstance(schema, dict) and schema["type"] == "enum":
        table = f"_E{len(ns)}"
        ns[table] = {symbol: _long(i) for i, symbol in enumerate(schema["symbols"])}
        lines.append(f"{pad}a({table}[{expr}])")
    elif isinstance(schema, dict) and schema["type"] in _PRIMITIVES and "logicalType" not in schema:
        _emit(schema["type"], expr, depth, lines, ns)
    else:
        raise NotImplementedError(f"no compiled encoder for {schema!r}")


def wire_prefix(sv: SchemaVersion, wire_format: WireFormat) -> bytes:
    """The header the codec puts before an Avro body (uncompressed Glue, or single-object)."""
    if wire_format is WireFormat.AVRO_GLUE:
        return bytes([GLUE_HEADER_VERSION, GLUE_COMPRESSION_NONE]) + sv.local_uuid.bytes
    if wire_format is WireFormat.AVRO_SINGLE_OBJECT:
        return SINGLE_OBJECT_MAGIC + sv.fingerprint
    raise ValueError(f"not an Avro wire format: {wire_format}")
